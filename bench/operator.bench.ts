/**
 * The operator end to end at scale, against its own sandbox and real HTTP
 * targets on loopback: S services × M instances (default 1,000 × 10,
 * `--quick` 100 × 10), each service with a DiscoveryPolicy (`--no-policies`
 * leaves them out).
 *
 * Figures:
 * - start to published: from `operator.start()` (instances and policies
 *   already exist, as after a restart or an install over existing objects)
 *   until a separate watcher sees every service's EndpointSlices with all M
 *   endpoints ready, and every ConfigMap with all M ready;
 * - RSS of the operator's process (`bench/operator-child.ts`; the targets and
 *   the watcher run in the bench's) once published, and after the flips;
 * - API writes per instance transition: K instances, each in a different
 *   service, fail and then recover (2K transitions). Counted twice: the
 *   operator client's non-GET requests (every write attempt, no-ops included)
 *   and, by resource, the watch events a separate watcher sees (one per
 *   effective write);
 * - publication latency: for each transition, from the probe that crossed the
 *   threshold to the EndpointSlice change seen by the separate watcher. The
 *   start is the engine's own timestamp of the transition
 *   (`operator.engine.summary(id).since`, taken when the crossing probe's
 *   result was judged, on the same clock as the watcher's Date.now()), so
 *   the figure is Roster's overhead beyond threshold × interval: batching
 *   window, reconcile, API write, watch delivery.
 *
 * Each instance carries its own health check (an HTTP probe of
 * /h/<instance number> at one of 20 loopback hosts, through the probe host
 * override), so that single instances can be failed; endpoints are published
 * at 198.18.0.0/15 addresses (the benchmarking range; never contacted).
 * Sandbox, targets, operator process and watcher are the suite's
 * (`bench/lib.ts`, `bench/setup.ts`).
 *
 *   node bench/operator.bench.ts            # 1,000 × 10, several minutes
 *   node bench/operator.bench.ts --quick    # 100 × 10
 *   options: --services N --instances M --flips K --interval 5s --no-policies
 *            --concurrency C (reconciles per controller, default 4 as in the config)
 *            --replicas R --sharding (as in the suite)
 */
import { parseArgs } from "node:util";
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  Watch,
} from "@kubernetes/client-node";
import {
  apiserverMetrics,
  benchAddress,
  createNamespace,
  pool,
  startCluster,
  startTargets,
  until,
  type Watcher,
  watch,
} from "./lib.ts";
import type { ChildLoad, ChildStats } from "./operator-child.ts";
import { type Figure, percentile, report } from "./report.ts";
import {
  commonOptions,
  createInstances,
  groupOptions,
  groupSuffix,
  type OperatorGroup,
  settle,
  startOperators,
  total,
  writeRequests,
} from "./setup.ts";

// --- the floor: one API write seen by a watcher ---------------------------------------

/**
 * What any publication costs at least on this machine: from the start of a
 * write (a ConfigMap merge patch, as small as a slice update) to a watcher
 * seeing it. Measured sequentially, with the operator running.
 */
async function writeWatchFloor(kc: KubeConfig, n: number): Promise<number[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const ns = "bench-control";
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const cm = await core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: "control" }, data: { n: "0" } },
  });
  const seen = new Map<string, number>();
  const controller = await new Watch(kc).watch(
    `/api/v1/namespaces/${ns}/configmaps`,
    { resourceVersion: cm.metadata?.resourceVersion, fieldSelector: "metadata.name=control" },
    (_type, obj: V1ConfigMap) => seen.set(obj.data?.n ?? "", Date.now()),
    () => undefined,
  );
  const out: number[] = [];
  for (let i = 1; i <= n; i++) {
    const start = Date.now();
    await core.patchNamespacedConfigMap(
      { namespace: ns, name: "control", body: { data: { n: String(i) } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await until("the control write", 10_000, () => seen.has(String(i)));
    out.push(seen.get(String(i))! - start);
  }
  controller.abort();
  return out;
}

/**
 * The API server's own view of EndpointSlice writes: its request-duration
 * histogram (all write verbs), cumulative counts per bucket upper bound in
 * seconds. The difference of two readings is the distribution in between.
 */
async function sliceWriteBuckets(kc: KubeConfig): Promise<Map<number, number>> {
  const text = await apiserverMetrics(kc);
  const out = new Map<number, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_duration_seconds_bucket{")) continue;
    if (!line.includes('resource="endpointslices"') || !/verb="(APPLY|PATCH|POST|PUT)"/.test(line)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (!le || le === "+Inf") continue;
    const value = Number(line.slice(line.lastIndexOf("}") + 1));
    out.set(Number(le), (out.get(Number(le)) ?? 0) + value);
  }
  return out;
}

/** From two cumulative readings: the share of requests slower than each bound. */
function slowerThan(after: Map<number, number>, before: Map<number, number>): Record<string, number> {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(bounds.at(-1)!) ?? 0) - (before.get(bounds.at(-1)!) ?? 0);
  const out: Record<string, number> = { requests: total };
  for (const b of bounds.filter((x) => x >= 0.025 && x <= 1)) {
    const within = (after.get(b) ?? 0) - (before.get(b) ?? 0);
    out[`over ${b * 1000} ms`] = total ? (total - within) / total : 0;
  }
  return out;
}

// --- helpers ------------------------------------------------------------------------

const ms = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** What the bench samples: the group's totals, and the busiest replica's loop delay and queues. */
interface Sample {
  stats: ChildStats[];
  load: ChildLoad[];
}

async function sample(op: OperatorGroup): Promise<Sample> {
  const [stats, load] = await Promise.all([op.stats(), op.load()]);
  return { stats, load };
}

// --- main ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      ...commonOptions,
      services: { type: "string" },
      instances: { type: "string", default: "10" },
      flips: { type: "string" },
      interval: { type: "string" },
      "no-policies": { type: "boolean", default: false },
    },
  });
  const group = groupOptions(args);
  const S = Number(args.services ?? (args.quick ? 100 : 1000));
  const M = Number(args.instances);
  const K = Math.min(S, Number(args.flips ?? (args.quick ? 50 : 200)));
  const interval = args.interval ?? (args.quick ? "2s" : "5s");
  const policies = !args["no-policies"];
  const name = `operator${args.quick ? "-quick" : ""}${groupSuffix(group)}`;
  console.log(
    `${S} services × ${M} instances, interval ${interval}, ${policies ? "with" : "without"} policies`,
  );

  const cluster = await startCluster();
  const targets = await startTargets(20, "127.0.2");
  const forked = startOperators(group);
  let operator: OperatorGroup | undefined;
  let watched: Watcher | undefined;
  try {
    const kc = cluster.kc;
    const custom = kc.makeApiClient(CustomObjectsApi);
    const ns = "bench";
    await createNamespace(kc, ns);

    const svc = (s: number) => `svc-${String(s).padStart(4, "0")}`;
    const createdAt = Date.now();
    if (policies) {
      await pool(
        Array.from({ length: S }, (_, s) => s),
        32,
        (s) =>
          custom.createNamespacedCustomObject({
            group: "roster.dev",
            version: "v1alpha1",
            namespace: ns,
            plural: "discoverypolicies",
            body: {
              apiVersion: "roster.dev/v1alpha1",
              kind: "DiscoveryPolicy",
              metadata: { name: svc(s) },
              spec: { service: svc(s), loadBalancing: { strategy: "WeightedRoundRobin" } },
            },
          }),
      );
    }
    const count = S * M;
    await createInstances(kc, ns, count, {
      service: (i) => svc(Math.floor(i / M)),
      targets,
      interval,
      timeout: "1s",
      failureThreshold: 2,
      jitter: 10,
    });
    const createSeconds = (Date.now() - createdAt) / 1000;
    console.log(`created ${count} instances in ${createSeconds.toFixed(1)} s`);

    watched = await watch(kc, ns, {
      sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
      configMaps: true,
      count: ["serviceinstances", "discoverypolicies", "services", "events"],
    });
    const w = watched;
    operator = await forked;
    const op = operator;
    const startedAt = await op.start({
      kubeconfig: cluster.sandbox.kubeconfigPath,
      namespaces: [ns],
      maxPerHost: 16,
      concurrency: group.concurrency,
    });
    const all = () => {
      let slices = 0;
      let maps = 0;
      for (let s = 0; s < S; s++) {
        if (w.sliceReady.get(svc(s)) === M) slices++;
        if (w.mapReady.get(svc(s)) === M) maps++;
      }
      return { slices, maps };
    };
    let lastLog = 0;
    await until("every service published", 600_000, () => {
      const a = all();
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        console.log(`  ${a.slices}/${S} slice sets, ${a.maps}/${S} ConfigMaps complete`);
      }
      return a.slices === S && a.maps === S;
    });
    const publishSeconds = (Date.now() - startedAt) / 1000;
    console.log(`all published ${publishSeconds.toFixed(1)} s after the operator started`);

    // Let status writes and the policies' statuses settle.
    await settle(op, 2000, 600_000);
    const published = total(await op.stats());
    const startupWrites = writeRequests([published]);
    console.log(
      `settled after ${((Date.now() - startedAt) / 1000).toFixed(1)} s, ${startupWrites} write requests`,
    );

    // Flips: instance 0 of K services fails, then recovers.
    const flipped = Array.from({ length: K }, (_, k) => Math.floor((k * S) / K) * M);
    const before = await sample(op);
    const bucketsBefore = await sliceWriteBuckets(kc);
    const events0 = { ...w.events };
    const latency: { down: number[]; up: number[] } = { down: [], up: [] };
    const detect: number[] = [];
    const thresholdMs = 2 * Number.parseFloat(interval) * 1000;
    // A sample of the operator's state every second during the flips.
    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await sample(op));
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    for (const direction of ["down", "up"] as const) {
      const flipAt = Date.now();
      for (const i of flipped) {
        if (direction === "down") targets.failing.add(i);
        else targets.failing.delete(i);
      }
      const seen = direction === "down" ? w.sliceLeft : w.sliceEntered;
      await until(`${K} endpoints to go ${direction}`, thresholdMs * 3 + 30_000, () =>
        flipped.every((i) => (seen.get(benchAddress(i)) ?? 0) > flipAt),
      );
      const since = await op.since(flipped.map((i) => `${ns}/i-${i}`));
      for (const [k, i] of flipped.entries()) {
        latency[direction].push(seen.get(benchAddress(i))! - since[k]!);
        detect.push(since[k]! - flipAt);
      }
    }
    // The slice writes are in; let the status, Event and policy writes land too.
    await settle(op, 2000, 10_000);
    sampling = false;
    await sampler;
    const cpu = (x: Sample) => {
      const t = total(x.stats);
      return (t.userMicros + t.systemMicros) / 1e6;
    };
    const busy = samples.slice(1).map((x, i) => ({
      cores: cpu(x) - cpu(samples[i]!),
      eldP99: Math.max(...x.load.map((l) => l.eventLoopDelayP99)),
      eldMax: Math.max(...x.load.map((l) => l.eventLoopDelayMax)),
      depth: x.load.reduce<Record<string, number>>((d, l) => {
        for (const [c, n] of Object.entries(l.queueDepth)) d[c] = (d[c] ?? 0) + n;
        return d;
      }, {}),
    }));
    const after = total(await op.stats());
    const apiserverSliceWrites = slowerThan(await sliceWriteBuckets(kc), bucketsBefore);
    const flipWrites = writeRequests([after]) - writeRequests(before.stats);
    const flipTransitions = after.transitions - total(before.stats).transitions;
    const byResource = Object.fromEntries(
      Object.entries(w.events).map(([k, v]) => [k, (v - (events0[k] ?? 0)) / flipTransitions]),
    );
    const observed = Object.values(byResource).reduce((a, b) => a + b, 0);
    const both = ms([...latency.down, ...latency.up]);
    const floor = ms(await writeWatchFloor(kc, 100));

    const figures: Figure[] = [
      { name: "instances", value: count, unit: "" },
      { name: "start to all published", value: publishSeconds, unit: "s" },
      { name: "operator RSS, published", value: published.rssMiB, unit: "MiB" },
      { name: "operator RSS, after flips", value: after.rssMiB, unit: "MiB" },
      { name: "operator heap used", value: after.heapMiB, unit: "MiB" },
      {
        name: "operator CPU during flips",
        value: busy.reduce((a, b) => a + b.cores, 0) / Math.max(1, busy.length),
        unit: "cores",
      },
      { name: "operator event-loop delay max", value: Math.max(0, ...busy.map((b) => b.eldMax)), unit: "ms" },
      { name: "write requests at start-up", value: startupWrites, unit: "" },
      { name: "transitions measured", value: flipTransitions, unit: "" },
      { name: "write requests per transition", value: flipWrites / flipTransitions, unit: "", target: "< 3" },
      { name: "effective writes per transition", value: observed, unit: "" },
      { name: "publication latency p50", value: percentile(both, 50), unit: "ms" },
      { name: "publication latency p99", value: percentile(both, 99), unit: "ms", target: "< 50" },
      { name: "publication latency max", value: both.at(-1) ?? Number.NaN, unit: "ms" },
      { name: "floor: one write to watcher p50", value: percentile(floor, 50), unit: "ms" },
      { name: "floor: one write to watcher p99", value: percentile(floor, 99), unit: "ms" },
      { name: "detection after flip p50", value: percentile(ms(detect), 50), unit: "ms" },
    ];
    report(name, figures, {
      services: S,
      instancesPerService: M,
      interval,
      policies,
      concurrency: group.concurrency,
      replicas: group.replicas,
      sharding: group.sharding,
      flips: K,
      createSeconds,
      effectiveWritesPerTransitionByResource: byResource,
      apiserverSliceWrites,
      samplesDuringFlips: busy,
      latencyDown: { p50: percentile(ms(latency.down), 50), p99: percentile(ms(latency.down), 99) },
      latencyUp: { p50: percentile(ms(latency.up), 50), p99: percentile(ms(latency.up), 99) },
      method:
        "latency = watcher's Date.now() at the slice event − engine summary `since` (the transition time); writes = operator client non-GET requests over the flip phase / verdict transitions",
    });
  } finally {
    watched?.stop();
    await (operator ?? (await forked)).stop();
    await targets.close();
    await cluster.stop(true);
  }
}

await main();
