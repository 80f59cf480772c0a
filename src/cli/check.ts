/**
 * `roster check -f manifest.yaml`: runs the health checks of the
 * ServiceInstances in a manifest once, from this machine, and prints the
 * verdicts — a way to debug a health check without a cluster. A
 * DiscoveryPolicy in the same manifest applies to its service's instances;
 * otherwise the operator's default policy does.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import {
  type DiscoveryPolicy,
  formatFieldErrors,
  parseDuration,
  type ServiceInstance,
  validateRosterObject,
} from "../api/index.ts";
import { parseConfig } from "../config/index.ts";
import { createProbeEngine, type TargetSummary } from "../health/index.ts";
import { effectiveSettings, instanceTarget, rankPolicies } from "../operator/effective.ts";
import { CliError, flags } from "./common.ts";

const USAGE = `Usage: roster check -f FILE [-f FILE...] [--allow-loopback] [--secrets DIR] [--timeout SECONDS]

Probes every ServiceInstance in the files from this machine with its effective health check (its
own, else its service's DiscoveryPolicy in the files, else the operator's default), until the
thresholds give a verdict, and prints the verdicts. Probes run at most a second apart. Exit code
0 when all are healthy, 1 otherwise.

  --allow-loopback   allow probing 127.0.0.0/8 and ::1 (denied by default, as in the operator)
  --secrets DIR      read the Secret and ConfigMap keys probes refer to (passwords, header values,
                     CA bundles, client certificates: tls.crt and tls.key) from DIR/NAME/KEY, the
                     layout of a mounted Secret per NAME; without it such probes are refused
  --timeout S        give up waiting for verdicts after S seconds (default: from the checks)
`;

/** A Secret's or ConfigMap's key from DIR/NAME/KEY, or undefined when absent (or no DIR). */
function localKey(dir: string | undefined, name: string, key: string): string | undefined {
  if (!dir) return undefined;
  try {
    return readFileSync(join(dir, name, key), "utf8");
  } catch {
    return undefined;
  }
}

/** The longest pause between two probes of one instance during a check. */
const CHECK_INTERVAL_MS = 1000;

export async function check(args: string[]): Promise<number> {
  const { values } = flags(
    args,
    {
      file: { type: "string", short: "f", multiple: true },
      "allow-loopback": { type: "boolean" },
      timeout: { type: "string" },
      secrets: { type: "string" },
    },
    USAGE,
  );
  if (!values.file?.length) throw new CliError("-f FILE is required", { exitCode: 2, usage: USAGE });
  const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeoutS !== undefined && !(timeoutS > 0)) {
    throw new CliError("--timeout must be a positive number of seconds", { exitCode: 2, usage: USAGE });
  }
  const instances: ServiceInstance[] = [];
  const policies: DiscoveryPolicy[] = [];
  const problems: string[] = [];
  for (const file of values.file) {
    let docs: unknown[];
    try {
      docs = loadAll(readFileSync(file, "utf8"));
    } catch (err) {
      throw new CliError(`${file}: ${(err as Error).message}`);
    }
    for (const doc of docs) {
      if (!doc || typeof doc !== "object") continue;
      const r = validateRosterObject(doc);
      if (!r.ok) {
        const name = (doc as { metadata?: { name?: string } }).metadata?.name ?? "?";
        problems.push(`${file}: ${name}:\n${formatFieldErrors(r.errors)}`);
      } else if (r.value.kind === "ServiceInstance") instances.push(r.value as ServiceInstance);
      else policies.push(r.value as DiscoveryPolicy);
    }
  }
  if (problems.length) throw new CliError(`invalid objects:\n${problems.join("\n")}`);
  if (instances.length === 0) throw new CliError("no ServiceInstance in the given files");

  const defaults = parseConfig("").defaultPolicy;
  const engine = createProbeEngine({ policy: { allowLoopback: values["allow-loopback"] ?? false } });
  let waitMs = 0;
  const refused = new Map<string, string>();
  for (const si of instances) {
    si.metadata.namespace ??= "default";
    const policy = rankPolicies(policies.filter((p) => p.spec.service === si.spec.service))[0];
    const effective = effectiveSettings(policy, defaults, si);
    if (effective.healthCheckError) {
      refused.set(si.metadata.name!, `InvalidHealthCheck: ${effective.healthCheckError}`);
      continue;
    }
    const hc = effective.healthCheck;
    const t = instanceTarget(si, hc, (name, key) => localKey(values.secrets, name, key));
    if (!t.ok) {
      const local = /^(Secret|ConfigMap)NotFound$/.test(t.reason)
        ? values.secrets
          ? ` (looked in ${values.secrets}/NAME/KEY)`
          : " (roster check reads no cluster: pass --secrets DIR with the key at DIR/NAME/KEY)"
        : "";
      refused.set(si.metadata.name!, `${t.reason}: ${t.message}${local}`);
      continue;
    }
    // Probes run back to back, at most a second apart, without delay or
    // jitter: the verdict needs max(failureThreshold, successThreshold)
    // probes, and waiting the production interval between them (10s by
    // default) would make checking a failing instance take half a minute.
    const intervalMs = Math.min(parseDuration(hc.interval), CHECK_INTERVAL_MS);
    const timeoutMs = parseDuration(hc.timeout);
    engine.set({
      ...t.target,
      check: { ...t.target.check, intervalMs, initialDelayMs: 0, jitterMs: 0 },
    });
    const rounds = Math.max(hc.failureThreshold, hc.successThreshold);
    // The first probe lands within one interval (the target's phase); a probe
    // slower than the interval delays the next one.
    waitMs = Math.max(waitMs, (rounds + 1) * Math.max(intervalMs, timeoutMs) + timeoutMs + 1000);
  }
  const deadline = Date.now() + (timeoutS !== undefined ? timeoutS * 1000 : waitMs);
  const settled = () => [...engine.summaries()].every((s) => s.verdict !== "Unknown");
  while (Date.now() < deadline && !settled()) await new Promise((r) => setTimeout(r, 100));
  const summaries = new Map<string, TargetSummary>([...engine.summaries()].map((s) => [s.id, s]));
  engine.close();

  const rows = [["INSTANCE", "ADDRESS", "VERDICT", "REASON", "MESSAGE"]];
  let healthy = true;
  for (const si of instances) {
    const s = summaries.get(`${si.metadata.namespace}/${si.metadata.name}`);
    const verdict = refused.has(si.metadata.name!) ? "Refused" : (s?.verdict ?? "Unknown");
    if (verdict !== "Healthy") healthy = false;
    rows.push([
      si.metadata.name!,
      si.spec.address,
      verdict,
      s?.reason ?? "",
      refused.get(si.metadata.name!) ?? s?.message ?? "",
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows)
    process.stdout.write(
      `${r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join("  ")
        .trimEnd()}\n`,
    );
  const loopbackDenied = [...summaries.values()].some(
    (s) => s.reason === "DestinationDenied" && /loopback/.test(s.message ?? ""),
  );
  if (loopbackDenied && !values["allow-loopback"]) {
    process.stderr.write("roster check: loopback targets are denied by default; pass --allow-loopback\n");
  }
  return healthy ? 0 : 1;
}
