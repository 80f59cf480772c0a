/**
 * `roster selftest`: the Helm chart's test hook (`helm test`). Checks that the
 * operator answers over its Service and that a Roster object is reconciled:
 *   1. GET --readyz-url and --metrics-url (each when given) answer 200, and
 *      /metrics has the controller metrics;
 *   2. a DiscoveryPolicy (probe type none: nothing is contacted) and a
 *      ServiceInstance are created in the namespace, and the operator writes
 *      the instance's status for its generation;
 *   3. both are deleted, whatever happened.
 * Prints one line, "selftest ok: ..." or "selftest failed: ...", and exits 0 or 1.
 */

import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { parseDuration } from "../api/common.ts";
import type { Condition } from "../api/index.ts";
import { ApiError, type KubeClient, kubeClient, resourcePath } from "../kube/index.ts";
import { rosterResources } from "../operator/context.ts";
import { CliError, flags, loadKubeConfig, rootMessage } from "./common.ts";

const USAGE = `Usage: roster selftest [--readyz-url URL] [--metrics-url URL] [-n NS] [--timeout 60s] [--kubeconfig PATH]

Checks a running operator: its endpoints answer, and a test ServiceInstance (with a
DiscoveryPolicy probing nothing) created in the namespace is reconciled; then deletes both.
Exit code 0 when all checks pass, 1 otherwise, with one line saying which.

  --readyz-url URL     the operator's /readyz, e.g. http://roster-health.NS.svc:8081/readyz
  --metrics-url URL    the operator's /metrics, e.g. http://roster-metrics.NS.svc:8080/metrics
  -n, --namespace NS   where the test objects go (default: the pod's namespace, else the kubeconfig's)
  --timeout DURATION   how long to wait for each step (default 60s)
  --kubeconfig PATH    kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)
`;

const podNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const podTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/** A metric every Roster operator exports once its controllers run (controller-runtime's name). */
export const REQUIRED_METRIC = "controller_runtime_reconcile_total";

/**
 * Why a /metrics body is not Roster's, or undefined when it is: it declares
 * (`# TYPE`) or has a series of the controller metric. A fresh operator with
 * nothing to reconcile declares it without a series yet.
 */
export function metricsProblem(body: string): string | undefined {
  const names = new Set<string>();
  for (const line of body.split("\n")) {
    const declared = /^# TYPE (\S+) /.exec(line)?.[1];
    if (declared) names.add(declared);
    else if (line && !line.startsWith("#")) names.add(line.split(/[{\s]/, 1)[0]!);
  }
  return names.has(REQUIRED_METRIC) ? undefined : `has no ${REQUIRED_METRIC} metric`;
}

/** The test objects: a policy that probes nothing and one instance of its service. */
export function selftestObjects(namespace: string, suffix: string) {
  const name = `roster-selftest-${suffix}`;
  const labels = { "app.kubernetes.io/created-by": "roster-selftest" };
  return {
    name,
    policy: {
      apiVersion: "roster.dev/v1alpha1",
      kind: "DiscoveryPolicy",
      metadata: { name, namespace, labels },
      spec: { service: name, healthCheck: { probes: [{ type: "none", name: "none" }] } },
    },
    instance: {
      apiVersion: "roster.dev/v1alpha1",
      kind: "ServiceInstance",
      metadata: { name, namespace, labels },
      // Benchmark range (RFC 2544): never routed; a none probe does not contact it anyway.
      spec: { service: name, address: "198.18.0.1", ports: [{ name: "http", port: 80 }] },
    },
  };
}

interface Reconcilable {
  metadata?: { generation?: number };
  status?: { observedGeneration?: number; conditions?: Condition[] };
}

/** Whether the operator wrote the object's status for its current generation. */
export function reconciled(obj: Reconcilable): boolean {
  const gen = obj.metadata?.generation;
  if (gen === undefined || !obj.status) return false;
  return (
    obj.status.observedGeneration === gen ||
    (obj.status.conditions ?? []).some((c) => c.observedGeneration === gen)
  );
}

/** The namespace for the test objects: the flag, the pod's, the kubeconfig context's, or default. */
export function selftestNamespace(
  flag: string | undefined,
  podNamespace: string | undefined,
  contextNamespace: string | undefined,
): string {
  return flag || podNamespace || contextNamespace || "default";
}

async function get(url: string, timeoutMs: number, token?: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      // The metrics endpoint may require a bearer token (metrics authentication): send the pod's.
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  } catch (err) {
    throw new Error(`${url}: ${rootMessage(err)}`);
  }
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${body.trim().slice(0, 200)}`);
  return body;
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = `: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s${last}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function removeQuietly(client: KubeClient, path: string): Promise<void> {
  try {
    await client.request({ method: "DELETE", path });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
}

export async function selftest(args: string[]): Promise<number> {
  const { values, positionals } = flags(
    args,
    {
      "readyz-url": { type: "string" },
      "metrics-url": { type: "string" },
      namespace: { type: "string", short: "n" },
      timeout: { type: "string" },
      kubeconfig: { type: "string" },
    },
    USAGE,
  );
  if (positionals.length)
    throw new CliError(`unexpected argument ${positionals[0]}`, { exitCode: 2, usage: USAGE });
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(values.timeout ?? "60s");
  } catch (err) {
    throw new CliError(`--timeout: ${(err as Error).message}`, { exitCode: 2, usage: USAGE });
  }
  const kc = loadKubeConfig(values.kubeconfig);
  const podNamespace = existsSync(podNamespaceFile)
    ? readFileSync(podNamespaceFile, "utf8").trim()
    : undefined;
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  const namespace = selftestNamespace(values.namespace, podNamespace, contextNamespace);
  const token = existsSync(podTokenFile) ? readFileSync(podTokenFile, "utf8").trim() : undefined;
  const client = kubeClient(kc);
  const checked: string[] = [];
  const { name, policy, instance } = selftestObjects(namespace, randomBytes(3).toString("hex"));
  const policyPath = resourcePath(rosterResources.discoveryPolicies, { namespace });
  const instancePath = resourcePath(rosterResources.serviceInstances, { namespace });
  try {
    if (values["readyz-url"]) {
      await waitFor("/readyz answering 200", timeoutMs, async () => get(values["readyz-url"]!, 5000));
      checked.push("readyz");
    }
    if (values["metrics-url"]) {
      const body = await waitFor("/metrics answering 200", timeoutMs, () =>
        get(values["metrics-url"]!, 5000, token),
      );
      const problem = metricsProblem(body);
      if (problem) throw new Error(`${values["metrics-url"]} ${problem}`);
      checked.push("metrics");
    }
    await client.request({ method: "POST", path: policyPath, body: policy });
    await client.request({ method: "POST", path: instancePath, body: instance });
    await waitFor(
      `the operator writing ServiceInstance ${namespace}/${name}'s status`,
      timeoutMs,
      async () => {
        const obj = await client.request<Reconcilable>({ method: "GET", path: `${instancePath}/${name}` });
        return reconciled(obj) ? obj : undefined;
      },
    );
    checked.push(`ServiceInstance ${namespace}/${name} reconciled`);
  } catch (err) {
    process.stdout.write(`selftest failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanup(client, policyPath, instancePath, name);
    return 1;
  }
  await cleanup(client, policyPath, instancePath, name);
  process.stdout.write(`selftest ok: ${checked.join(", ")}\n`);
  return 0;
}

async function cleanup(client: KubeClient, policyPath: string, instancePath: string, name: string) {
  try {
    await removeQuietly(client, `${instancePath}/${name}`);
    await removeQuietly(client, `${policyPath}/${name}`);
  } catch (err) {
    process.stderr.write(
      `selftest: cleaning up ${name}: ${err instanceof Error ? err.message : String(err)}\n`,
    );
  }
}
