/**
 * Where the operator's memory goes at N instances: the suite's set-up (N
 * ServiceInstances with their own HTTP probe on 16 loopback servers, the
 * operator in a child process) without the churn and latency measurements,
 * so it is quick and does not need a quiet machine.
 *
 * For each variant (Node/V8 flags for the operator process) in one sandbox:
 * start the operator, wait until every instance has a status, let it run
 * `--settle` seconds, then report RSS (peak and final), the V8 heap by space,
 * external/ArrayBuffer memory, malloc'ed memory, open FDs by kind and the
 * same after a full GC. `--snapshot` also writes a heap snapshot of the last
 * variant (summarise it with `node bench/heap-summary.ts <file>`).
 *
 *   node bench/memory.bench.ts --instances 10000
 *   node bench/memory.bench.ts --instances 10000 --variants='|--max-semi-space-size=16'
 *   options: --instances N --services S --interval 10s --settle 30
 *            --variants 'flags|flags...' (',' separates flags of one variant; '' is the default)
 *            --snapshot <file> --profile (V8 sampling heap profile at the peak and at the end)
 *            --max-wait 900 (seconds to wait for every status before measuring anyway)
 *            --limit MiB (the V8 limits `roster run` derives from that container memory limit)
 *            --metadata none|max|max-astral (max: every instance carries the largest
 *              spec.metadata the API admits, 32 keys and 4,096 characters, distinct per
 *              instance; max-astral: the same with characters outside the BMP, 4 bytes
 *              each as stored: the per-instance cost the chart's memory limit is
 *              derived from, docs/scaling.md)
 */
import { parseArgs } from "node:util";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { METADATA_LIMITS } from "../src/api/serviceinstance.ts";
import { heapFlags, heapLimitsFor } from "../src/cli/v8-limits.ts";
import {
  benchAddress,
  createNamespace,
  type OperatorProcess,
  pool,
  sleep,
  startCluster,
  startOperatorProcess,
  startTargets,
  until,
  watch,
} from "./lib.ts";
import type { ChildMemory } from "./operator-child.ts";
import { type Figure, report } from "./report.ts";
import { operatorDefaults } from "./setup.ts";

const { values: args } = parseArgs({
  options: {
    instances: { type: "string", default: "10000" },
    services: { type: "string" },
    interval: { type: "string", default: "10s" },
    settle: { type: "string", default: "30" },
    variants: { type: "string", default: "" },
    snapshot: { type: "string" },
    profile: { type: "boolean", default: false },
    "max-wait": { type: "string", default: "900" },
    name: { type: "string" },
    metadata: { type: "string", default: "none" },
    limit: { type: "string" },
  },
});

const N = Number(args.instances);
const S = Number(args.services ?? Math.min(5000, Math.max(100, Math.round(N / 10))));
const intervalSeconds = Number.parseFloat(args.interval);
const settleMs = Number(args.settle) * 1000;
// `--limit 640`: every variant also gets the V8 limits `roster run` derives from a
// container memory limit of that many MiB (the chart's default is 640).
const limitFlags = args.limit ? heapFlags(heapLimitsFor(Number(args.limit) * 2 ** 20)) : [];
const variants = args.variants.split("|").map((v) => [...limitFlags, ...v.split(",").filter(Boolean)]);
const svc = (s: number) => `svc-${String(s).padStart(4, "0")}`;
const round = (x: number) => Math.round(x * 10) / 10;
if (!["none", "max", "max-astral"].includes(args.metadata))
  throw new Error("--metadata must be none, max or max-astral");

/**
 * The largest spec.metadata the API admits (METADATA_LIMITS): 32 keys whose
 * keys and values total 4,096 characters, different for every instance so
 * that no string is shared between cached objects.
 */
function maxMetadata(i: number): Record<string, string> | undefined {
  if (args.metadata === "none") return undefined;
  // The API counts characters (code points): one outside the BMP costs 4 bytes
  // in etcd and JSON, and 2 UTF-16 units (4 bytes) in V8, the worst case.
  const filler =
    args.metadata === "max-astral" ? "\u{1F600}\u{1F680}\u{1F9EA}" : "abcdefghijklmnopqrstuvwxyz0123456789";
  const { maxKeys, maxTotal } = METADATA_LIMITS;
  const out: Record<string, string> = {};
  const per = Math.floor(maxTotal / maxKeys); // 128 characters per key + value
  for (let k = 0; k < maxKeys; k++) {
    const key = `example.com/k${String(k).padStart(2, "0")}`;
    const prefix = `${i}-${k}-`;
    const value = prefix + [...filler.repeat(per)].slice(0, per - key.length - prefix.length).join("");
    out[key] = value;
  }
  return out;
}

const cluster = await startCluster();
const targets = await startTargets(16, "127.0.5");
const ns = "memory";
const results: Record<string, unknown>[] = [];
try {
  const kc = cluster.kc;
  await createNamespace(kc, ns);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const createdAt = Date.now();
  await pool(
    Array.from({ length: N }, (_, i) => i),
    32,
    (i) =>
      custom.createNamespacedCustomObject({
        group: "roster.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "serviceinstances",
        body: {
          apiVersion: "roster.dev/v1alpha1",
          kind: "ServiceInstance",
          metadata: { name: `i-${i}` },
          spec: {
            service: svc(Math.floor((i * S) / N)),
            address: benchAddress(i),
            ports: [{ name: "http", port: targets.port }],
            metadata: maxMetadata(i),
            healthCheck: {
              probes: [
                {
                  type: "http",
                  http: { host: targets.hosts[i % targets.hosts.length], port: "http", path: `/h/${i}` },
                },
              ],
              interval: `${intervalSeconds}s`,
              timeout: intervalSeconds > 1 ? "1s" : "500ms",
              failureThreshold: 2,
              successThreshold: 1,
              jitter: 0,
            },
          },
        },
      }),
  );
  console.log(`${N} instances, ${S} services: created in ${((Date.now() - createdAt) / 1000).toFixed(1)} s`);

  for (const [v, flags] of variants.entries()) {
    const label = flags.join(" ") || "default flags";
    if (v > 0) {
      // Every variant starts like the first one (an install over existing
      // objects): without statuses, so that all of them are written again.
      await pool(
        Array.from({ length: N }, (_, i) => i),
        32,
        (i) =>
          custom.patchNamespacedCustomObjectStatus(
            {
              group: "roster.dev",
              version: "v1alpha1",
              namespace: ns,
              plural: "serviceinstances",
              name: `i-${i}`,
              body: [{ op: "remove", path: "/status" }],
            },
            setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
          ),
      );
      console.log(`  statuses cleared for the next variant`);
    }
    // A fresh watcher per variant: it waits for statuses written by this operator.
    const w = await watch(kc, ns, { instances: true });
    let op: OperatorProcess | undefined;
    try {
      op = await startOperatorProcess(["--expose-gc", ...flags]);
      const p = op;
      const startedAt = await p.start({
        kubeconfig: cluster.sandbox.kubeconfigPath,
        namespaces: [ns],
        ...operatorDefaults,
      });
      if (args.profile) await p.sampling(true);
      let peak = 0;
      let atPeak: ChildMemory | undefined;
      let peakProfile: [string, number][] = [];
      let profiledAt = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const m = await p.memory();
          if (m.rss > peak) {
            peak = m.rss;
            atPeak = m;
            if (args.profile && peak > profiledAt + 25) {
              profiledAt = peak;
              peakProfile = await p.sampling(false);
            }
          }
          await sleep(1000);
        }
      })();
      let lastLog = 0;
      // At large N the start-up status writes take long: `--max-wait` measures before they are all done.
      const maxWaitMs = Number(args["max-wait"]) * 1000;
      await until("every instance probed and its status written", maxWaitMs + 60_000, () => {
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          console.log(`  [${label}] statuses ${w.healthy.size}/${N}, peak RSS ${round(peak)} MiB`);
        }
        return w.healthy.size === N || Date.now() - startedAt > maxWaitMs;
      });
      const ready = (Date.now() - startedAt) / 1000;
      await sleep(settleMs);
      sampling = false;
      await sampler;
      const m = await p.memory();
      const afterGc = await p.memory(true);
      if (args.snapshot && v === variants.length - 1) {
        console.log(`  heap snapshot: ${await p.snapshot(args.snapshot)}`);
      }
      const figures: Figure[] = [
        { name: "ready (statuses written)", value: round(ready), unit: "s" },
        { name: "statuses written when measured", value: w.healthy.size, unit: "" },
        { name: "RSS peak", value: round(Math.max(peak, m.rss)), unit: "MiB", target: "< 512" },
        ...(atPeak ? breakdown("at peak: ", atPeak) : []),
        ...breakdown("", m),
        ...breakdown("after GC: ", afterGc),
        // The figure the chart's memory limit is sized from (docs/scaling.md, Memory).
        {
          name: "live heap per instance (after GC)",
          value: round((afterGc.heapUsed * 1024) / N),
          unit: "KiB",
        },
        { name: "RSS per instance (settled)", value: round((m.rss * 1024) / N), unit: "KiB" },
      ];
      console.log("  resident anonymous memory by mapping (MiB), at peak:", atPeak?.maps, "settled:", m.maps);
      const name = args.name ?? `memory-${N >= 1000 ? `${N / 1000}k` : N}`;
      report(variants.length > 1 ? `${name}-v${v}` : name, figures, {
        flags,
        instances: N,
        services: S,
        metadata: args.metadata,
        intervalSeconds,
        settleSeconds: settleMs / 1000,
        spaces: m.spaces,
        atPeak,
        peakProfile,
        settledProfile: args.profile ? await p.sampling(false) : [],
        maps: m.maps,
        spacesAfterGc: afterGc.spaces,
        fds: m.fds,
        engine: m.engine,
      });
      results.push({ label, peak: round(peak), rss: round(m.rss), heapUsed: round(m.heapUsed) });
    } finally {
      w.stop();
      await op?.stop();
    }
  }
  console.table(results);
} finally {
  await targets.close();
  await cluster.stop();
}

function breakdown(prefix: string, m: ChildMemory): Figure[] {
  const f = (name: string, value: number, unit = "MiB") => ({
    name: prefix + name,
    value: round(value),
    unit,
  });
  return [
    f("RSS", m.rss),
    f("RSS anonymous", m.rssAnon),
    f("RSS file-backed", m.rssFile),
    f("V8 heap total", m.heapTotal),
    f("V8 heap used", m.heapUsed),
    f("V8 new space", m.spaces.new_space?.size ?? 0),
    f("V8 old space (used)", m.spaces.old_space?.used ?? 0),
    f("V8 old space (size)", m.spaces.old_space?.size ?? 0),
    f("V8 large objects", m.spaces.large_object_space?.size ?? 0),
    f("V8 code", m.spaces.code_space?.size ?? 0),
    f("external", m.external),
    f("array buffers", m.arrayBuffers),
    f("malloced (V8)", m.mallocedMemory),
    f("native, not V8 heap (RSS anon - heap total)", m.rssAnon - m.heapTotal),
    f("sockets", m.fds.socket ?? 0, ""),
    f(
      "file descriptors",
      Object.values(m.fds).reduce((a, b) => a + b, 0),
      "",
    ),
    f("engine targets", m.engine.targets, ""),
  ];
}
