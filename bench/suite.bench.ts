/**
 * The scale suite: scenarios of N ServiceInstances across S services at a
 * probe interval, one after the other in one private sandbox (each in a
 * namespace of its own, the previous scenario's operator stopped), with the
 * operator in child processes (so its CPU time and RSS are its own) and
 * cheap probe targets in this process (16 HTTP servers on 127.0.5.x, one path
 * per instance, keep-alive). `--quick` also runs the peer comparison
 * (`peer.bench.ts --quick`) first, in the same sandbox.
 *
 * Per scenario:
 * 1. create the N instances (each with its own HTTP probe of /h/<i>, jitter
 *    0 so the schedule is exact, published at 198.18.0.0/15 addresses);
 * 2. start the operator; measure until an independent watcher sees every
 *    instance's status written and every service's EndpointSlices and
 *    ConfigMap complete;
 * 3. steady state with churn: a fraction of the targets (spread over the
 *    services) fails, and once every one of them has left the published
 *    sets it recovers. Over this window: operator CPU (user+sys per second,
 *    and per probe), probes per second, RSS, API requests per second by verb
 *    (the operator's `rest_client_requests_total`) and by verb and resource
 *    (the API server's `apiserver_request_total`), writes per transition,
 *    publication latency (engine transition time → EndpointSlice change and
 *    → ConfigMap change seen by the watcher) and schedule lateness (sampled
 *    age of every target's last probe beyond its interval).
 *
 * Each scenario writes bench/results/suite-<scenario>.json; the suite then
 * writes bench/results/summary.md, summary.json and scaling.svg and prints
 * the ratios to bench/baseline.json (`--write-baseline` replaces it).
 *
 * `--replicas R` runs R operator processes with leader election (and
 * `--sharding`, probing split across them); the figures are the group's
 * (CPU and requests added up, RSS the largest), with per-replica CPU, RSS
 * and probes besides.
 *
 *   node bench/suite.bench.ts --quick          # peer comparison, 1k @ 10s and 1k @ 1s (~2 min)
 *   node bench/suite.bench.ts                  # 1k @ 10s, 1k @ 1s, 10k @ 10s
 *   node bench/suite.bench.ts --instances 50000 --interval 10s   # one scenario
 *   options: --instances N[,N...] --services S --interval 10s[,1s] --fail 0.05
 *            --failure-threshold 2 --concurrency 4 (workers per controller)
 *            --replicas R --sharding --peer / --no-peer --write-baseline
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import {
  apiserverRequests,
  type BenchCluster,
  benchAddress,
  createNamespace,
  diffCounts,
  sleep,
  startCluster,
  startTargets,
  type Targets,
  until,
  type Watcher,
  watch,
  writesExcept,
  writesTo,
} from "./lib.ts";
import type { ChildStats } from "./operator-child.ts";
import { peerControllers, peerOptions, runPeer } from "./peer.bench.ts";
import { type Figure, report } from "./report.ts";
import {
  commonOptions,
  cpuSeconds,
  createInstances,
  distribution,
  groupOptions,
  groupSuffix,
  type OperatorGroup,
  settle,
  startOperators,
  total,
  writeRequests,
} from "./setup.ts";
import { type ScenarioResult, writeSummary } from "./summary.ts";

interface Scenario {
  name: string;
  instances: number;
  services: number;
  intervalSeconds: number;
  failFraction: number;
  failureThreshold: number;
}

const { values: args } = parseArgs({
  allowNegative: true,
  options: {
    ...commonOptions,
    instances: { type: "string" },
    services: { type: "string" },
    interval: { type: "string" },
    fail: { type: "string", default: "0.05" },
    "failure-threshold": { type: "string", default: "2" },
    peer: { type: "boolean" },
    "write-baseline": { type: "boolean", default: false },
  },
});
const group = groupOptions(args);

function scenarios(): Scenario[] {
  const fail = Number(args.fail);
  const failureThreshold = Number(args["failure-threshold"]);
  const make = (instances: number, intervalSeconds: number): Scenario => {
    const services = Number(args.services ?? Math.min(5000, Math.max(100, Math.round(instances / 10))));
    const k = instances >= 1000 ? `${instances / 1000}k` : String(instances);
    return {
      name: `${k}-${services}svc-${intervalSeconds}s${groupSuffix(group)}`,
      instances,
      services,
      intervalSeconds,
      failFraction: fail,
      failureThreshold,
    };
  };
  if (args.instances || args.interval) {
    const ns = (args.instances ?? "1000").split(",").map(Number);
    const is = (args.interval ?? "10s").split(",").map((s) => Number.parseFloat(s));
    return ns.flatMap((n) => is.map((i) => make(n, i)));
  }
  if (args.quick) return [make(1000, 10), make(1000, 1)];
  return [make(1000, 10), make(1000, 1), make(10_000, 10)];
}

const load1 = () => Math.round(loadavg()[0]! * 100) / 100;

async function run(cluster: BenchCluster, targets: Targets, sc: Scenario): Promise<ScenarioResult> {
  const N = sc.instances;
  const S = sc.services;
  const perService = (s: number) => Math.floor(((s + 1) * N) / S) - Math.floor((s * N) / S);
  const serviceOf = (i: number) => Math.floor((i * S) / N);
  const svc = (s: number) => `svc-${String(s).padStart(4, "0")}`;
  console.log(`\n${sc.name}: ${N} instances, ${S} services, interval ${sc.intervalSeconds}s`);

  const kc = cluster.kc;
  const ns = `suite-${sc.name}`;
  const loadAverage: Record<string, number> = { start: load1() };
  // Forked now: the processes load the operator's modules while the instances are created.
  const forked = startOperators(group);
  let operators: OperatorGroup | undefined;
  let watched: Watcher | undefined;
  try {
    await createNamespace(kc, ns);
    const createSeconds = await createInstances(kc, ns, N, {
      service: (i) => svc(serviceOf(i)),
      targets,
      interval: `${sc.intervalSeconds}s`,
      timeout: sc.intervalSeconds > 1 ? "1s" : "500ms",
      failureThreshold: sc.failureThreshold,
    });
    console.log(`  created in ${createSeconds.toFixed(1)} s`);

    watched = await watch(kc, ns, {
      sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
      configMaps: true,
      instances: true,
    });
    const w = watched;
    operators = await forked;
    const op = operators;
    const startedAt = await op.start({
      kubeconfig: cluster.sandbox.kubeconfigPath,
      namespaces: [ns],
      concurrency: group.concurrency,
    });
    let statusesAt = 0;
    let setsAt = 0;
    let lastLog = 0;
    await until("all statuses written and all sets published", 900_000, () => {
      if (!statusesAt && w.healthy.size === N) statusesAt = Date.now();
      let slices = 0;
      let maps = 0;
      for (let s = 0; s < S; s++) {
        if (w.sliceReady.get(svc(s)) === perService(s)) slices++;
        if (w.mapReady.get(svc(s)) === perService(s)) maps++;
      }
      if (!setsAt && slices === S && maps === S) setsAt = Date.now();
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        console.log(`  statuses ${w.healthy.size}/${N}, slice sets ${slices}/${S}, ConfigMaps ${maps}/${S}`);
      }
      return statusesAt > 0 && setsAt > 0;
    });
    const publishedAt = Date.now();
    console.log(`  all published ${((publishedAt - startedAt) / 1000).toFixed(1)} s after start`);
    // The writes that trail start-up (Events, policy-less defaults) end before the window.
    await settle(op, 1000, Math.max(3000, sc.intervalSeconds * 1000));

    // Steady state with churn.
    loadAverage.window = load1();
    const failCount = Math.max(1, Math.round(N * sc.failFraction));
    const flipped = Array.from({ length: failCount }, (_, k) => Math.floor((k * N) / failCount));
    const r0 = await op.stats();
    const s0 = total(r0);
    const a0 = await apiserverRequests(kc);
    const lateness: number[] = [];
    const intervalMs = sc.intervalSeconds * 1000;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const age of await op.ages()) lateness.push(Math.max(0, age - intervalMs));
        await sleep(Math.max(1000, intervalMs / 3));
      }
    })();
    const sliceLatency: number[] = [];
    const mapLatency: number[] = [];
    const thresholdMs = sc.failureThreshold * intervalMs;
    for (const healthy of [false, true]) {
      const at = Date.now();
      for (const i of flipped) {
        if (healthy) targets.failing.delete(i);
        else targets.failing.add(i);
      }
      const sliceSeen = healthy ? w.sliceEntered : w.sliceLeft;
      const mapSeen = healthy ? w.mapEntered : w.mapLeft;
      await until(
        `${failCount} endpoints to turn ${healthy ? "ready" : "not ready"}`,
        thresholdMs * 3 + 60_000,
        () =>
          flipped.every(
            (i) => (sliceSeen.get(benchAddress(i)) ?? 0) > at && (mapSeen.get(benchAddress(i)) ?? 0) > at,
          ),
      );
      const since = await op.since(flipped.map((i) => `${ns}/i-${i}`));
      for (const [k, i] of flipped.entries()) {
        sliceLatency.push(sliceSeen.get(benchAddress(i))! - since[k]!);
        mapLatency.push(mapSeen.get(benchAddress(i))! - since[k]!);
      }
    }
    // The status, Event and policy writes that follow the slices.
    await settle(op, 1000, 3000);
    sampling = false;
    await sampler;
    const r1 = await op.stats();
    const s1 = total(r1);
    loadAverage.end = load1();
    const requests = diffCounts(await apiserverRequests(kc), a0);
    const seconds = (s1.at - s0.at) / 1000;
    const cpu = cpuSeconds(s0, s1);
    const probes = s1.engine.probes - s0.engine.probes;
    const transitions = s1.transitions - s0.transitions;
    const verbs: Record<string, number> = {};
    for (const [m, v] of Object.entries(s1.requests)) {
      const d = v - (s0.requests[m] ?? 0);
      if (d > 0) verbs[m] = d / seconds;
    }
    const sl = distribution(sliceLatency);
    const ml = distribution(mapLatency);
    const late = distribution(lateness);
    const figures: Figure[] = [
      { name: "instances", value: N, unit: "" },
      { name: "services", value: S, unit: "" },
      { name: "interval", value: sc.intervalSeconds, unit: "s" },
      { name: "start to all statuses written", value: (statusesAt - startedAt) / 1000, unit: "s" },
      {
        name: "start to everything done",
        value: (publishedAt - startedAt) / 1000,
        unit: "s",
        target: "< 60",
      },
      {
        name: "start to all sets published",
        value: (setsAt - startedAt) / 1000,
        unit: "s",
      },
      { name: "operator CPU, steady", value: cpu / seconds, unit: "cores", target: "< 1" },
      { name: "operator CPU per probe", value: (cpu * 1e6) / probes, unit: "µs" },
      { name: "probes per second", value: probes / seconds, unit: "/s" },
      { name: "operator RSS", value: s1.rssMiB, unit: "MiB", target: "< 512" },
      { name: "operator heap used", value: s1.heapMiB, unit: "MiB" },
      {
        name: "operator API requests per second",
        value: Object.values(verbs).reduce((a, b) => a + b, 0),
        unit: "/s",
      },
      { name: "transitions in window", value: transitions, unit: "" },
      {
        name: "write requests per transition",
        value: (writeRequests(r1) - writeRequests(r0)) / transitions,
        unit: "",
      },
      { name: "apiserver writes per transition", value: writesExcept(requests) / transitions, unit: "" },
      {
        name: "slice writes per transition",
        value: writesTo(requests, "endpointslices") / transitions,
        unit: "",
      },
      { name: "publication latency slice p50", value: sl.p50, unit: "ms" },
      { name: "publication latency slice p99", value: sl.p99, unit: "ms", target: "< 50" },
      { name: "publication latency slice max", value: sl.max, unit: "ms" },
      { name: "publication latency ConfigMap p50", value: ml.p50, unit: "ms" },
      { name: "publication latency ConfigMap p99", value: ml.p99, unit: "ms" },
      { name: "publication latency ConfigMap max", value: ml.max, unit: "ms" },
      { name: "schedule lateness p99", value: late.p99, unit: "ms" },
      { name: "schedule lateness max", value: late.max, unit: "ms" },
      { name: "skipped slots in window", value: s1.engine.skippedSlots - s0.engine.skippedSlots, unit: "" },
      ...(r1.length > 1 ? replicaFigures(r0, r1, seconds) : []),
    ];
    const perSecond = (counts: Record<string, number>, by: number) =>
      Object.fromEntries(
        Object.entries(counts)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => [k, Math.round((v / by) * 100) / 100]),
      );
    const writesByResource: Record<string, number> = {};
    for (const [k, v] of Object.entries(requests)) {
      const res = k.split(" ")[1] ?? "";
      if (writesTo({ [k]: v }) > 0 && !res.startsWith("leases")) writesByResource[k] = v;
    }
    const details = {
      scenario: sc,
      concurrency: group.concurrency,
      replicas: group.replicas,
      sharding: group.sharding,
      createSeconds,
      windowSeconds: seconds,
      failing: failCount,
      loadAverage,
      operatorRequestsPerSecondByVerb: verbs,
      apiserverRequestsInWindow: requests,
      apiserverRequestsPerSecond: perSecond(requests, seconds),
      apiserverWritesPerTransition: perSecond(writesByResource, transitions),
      engine: s1.engine,
      perReplica: r1.map((x, k) => ({
        leader: x.leader,
        cpuCores: cpuSeconds(r0[k]!, x) / seconds,
        rssMiB: x.rssMiB,
        probes: x.engine.probes - r0[k]!.engine.probes,
        targets: x.engine.targets,
      })),
      latenessSamples: lateness.length,
      method:
        "latency = watcher Date.now() at the slice/ConfigMap event − engine summary `since`; lateness = max(0, now − lastProbeAt − interval) over every target, sampled during the window (includes the probe's own duration and the 10 ms tick); CPU = process.cpuUsage() of the operator's own processes; apiserver requests are all clients' (the operator's, the watcher's, kube-controller-manager's); apiserver writes exclude kube-controller-manager's Lease renewals",
    };
    report(`suite-${sc.name}`, figures, details);
    return {
      scenario: sc.name,
      instances: N,
      services: S,
      intervalSeconds: sc.intervalSeconds,
      figures,
      requestsPerSecond: details.apiserverRequestsPerSecond,
      writesPerTransition: details.apiserverWritesPerTransition,
      loadAverage,
    };
  } finally {
    watched?.stop();
    await (operators ?? (await forked)).stop();
  }
}

/** Per replica (R > 1): CPU, RSS and probes per second, and which one leads. */
function replicaFigures(r0: ChildStats[], r1: ChildStats[], seconds: number): Figure[] {
  return r1.flatMap((x, k) => [
    { name: `replica ${k} CPU`, value: cpuSeconds(r0[k]!, x) / seconds, unit: "cores" },
    { name: `replica ${k} RSS`, value: x.rssMiB, unit: "MiB" },
    {
      name: `replica ${k} probes per second`,
      value: (x.engine.probes - r0[k]!.engine.probes) / seconds,
      unit: "/s",
    },
    { name: `replica ${k} leader`, value: x.leader ? 1 : 0, unit: "" },
  ]);
}

const began = Date.now();
const withPeer = args.peer ?? args.quick;
const startLoad = load1();
const cluster = await startCluster(withPeer ? peerControllers : undefined);
const targets = await startTargets(16, "127.0.5");
const results: ScenarioResult[] = [];
try {
  if (withPeer) await runPeer(cluster, peerOptions(args.quick, group));
  for (const sc of scenarios()) results.push(await run(cluster, targets, sc));
} finally {
  await targets.close();
  await cluster.stop(true);
}
writeSummary(results, {
  writeBaseline: args["write-baseline"],
  wallSeconds: (Date.now() - began) / 1000,
  loadAverage: { start: startLoad, end: load1() },
});
