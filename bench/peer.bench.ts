/**
 * Side by side, in one run and one sandbox, interleaved: Kubernetes' own
 * EndpointSlice controller (kube-controller-manager's
 * `endpointslice-controller`) and Roster, publishing the same readiness
 * flips of the same number of endpoints, in rounds A, B, A, B, ... so that
 * machine noise (the machine is shared) hits both sides alike.
 *
 * Both sides are set up once and stay up for every round:
 * (a) Pods: S selector Services × P Pods, bound to a Node object (there is
 *     no kubelet: the bench creates the Node and writes each Pod's status —
 *     podIP, phase Running, Ready — with a /status patch, as a kubelet
 *     would). In a round F Pods, each in turn, go not-ready and then ready
 *     again. Latency: from the start of the Pod status patch to the
 *     EndpointSlice change seen by an independent watcher.
 * (b) Roster: S services × P ServiceInstances probed over HTTP at loopback
 *     targets (interval 1 s, thresholds 1), the operator in a child process.
 *     In a round the same F instances fail and recover at their targets.
 *     Latency: from the engine's verdict-change time (`engine.summary(id).since`,
 *     taken when the threshold-crossing probe's result is judged) to the
 *     EndpointSlice change seen by the same kind of watcher.
 * Keeping both up means the idle side still runs during the other's rounds:
 * Roster probes (P × S probes/s), the controller only watches (Roster's
 * Services have no selector). The bench measures that: the operator's CPU
 * during controller rounds and kube-controller-manager's during Roster's.
 *
 * Both starts are the moment the new readiness is known to the publisher's
 * input: the kubelet's status write for Pods, the judged probe for Roster.
 * Roster also probes and the controller does not: detection time (probe
 * interval × threshold) is reported separately and is not in the latency;
 * this compares the publication path. Every round waits until no slice
 * changed and the operator wrote nothing for 500 ms. Per round: p50 and p99
 * of its 2F latencies; reported: the median of the rounds' p50 and p99 per
 * side with their min–max, and the ratio of the medians. Writes per flip
 * come from the API server's own `apiserver_request_total` over each side's
 * rounds (EndpointSlice writes, and all writes except the bench's Pod status
 * patches and kube-controller-manager's leader Lease renewals) and from the
 * watcher's EndpointSlice events.
 *
 *   node bench/peer.bench.ts            # 10 services × 20 endpoints, 6 rounds a side × 20 flips each way (~2 min)
 *   node bench/peer.bench.ts --quick    # 5 × 10, 4 rounds a side × 10 flips (the suite's --quick runs this in its sandbox, ~40 s)
 *   options: --services S --per-service P --flips F (per round, each way) --rounds R (per side)
 *            --gap MS (between flips), --replicas R --sharding --concurrency C (the Roster side, as in the suite)
 */
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import {
  apiserverRequests,
  type BenchCluster,
  benchAddress,
  createNamespace,
  diffCounts,
  pool,
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
import { type Figure, report } from "./report.ts";
import {
  commonOptions,
  createInstances,
  distribution,
  type GroupOptions,
  groupOptions,
  groupSuffix,
  type OperatorGroup,
  quiet,
  startOperators,
  total,
  writeRequests,
} from "./setup.ts";

export interface PeerOptions {
  quick: boolean;
  services: number;
  perService: number;
  /** Endpoints flipped per round, each way. */
  flips: number;
  /** Rounds per side. */
  rounds: number;
  gapMs: number;
  group: GroupOptions;
}

/** kube-controller-manager controllers the comparison needs (the sandbox's defaults plus the slice controller). */
export const peerControllers = [
  "garbage-collector-controller",
  "namespace-controller",
  "endpointslice-controller",
];

export function peerOptions(quick: boolean, group: GroupOptions, o: Partial<PeerOptions> = {}): PeerOptions {
  const services = o.services ?? (quick ? 5 : 10);
  const perService = o.perService ?? (quick ? 10 : 20);
  return {
    quick,
    services,
    perService,
    flips: Math.min(services * perService, o.flips ?? (quick ? 10 : 20)),
    rounds: o.rounds ?? (quick ? 4 : 6),
    gapMs: o.gapMs ?? 150,
    group,
  };
}

/** One round of one side: 2F flips. */
interface Round {
  latency: number[];
  detect: number[];
  flips: number;
  requests: Record<string, number>;
  sliceEvents: number;
  /** CPU seconds of the other side's process during this round, and the round's wall seconds. */
  otherCpu: number;
  seconds: number;
}

interface SideSetup {
  setupSeconds: number;
  round(): Promise<Omit<Round, "requests" | "otherCpu" | "seconds">>;
  /** Slice watch events plus (Roster) the operator's write requests so far: quiet when it stops moving. */
  activity(): Promise<number>;
  /** This side's process CPU seconds so far. */
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

export const svc = (s: number) => `svc-${String(s).padStart(3, "0")}`;
/** Flipped endpoints: spread over the services, one service after the other. */
const flippedOf = (o: PeerOptions) =>
  Array.from({ length: o.flips }, (_, k) => (k % o.services) * o.perService + Math.floor(k / o.services));
const allServices = (o: PeerOptions, w: Watcher) =>
  Array.from({ length: o.services }, (_, s) => w.sliceReady.get(svc(s)) === o.perService).every(Boolean);

// --- kube-controller-manager's CPU, from /proc ----------------------------------------------

/**
 * Pids of `pid`'s descendants, from /proc/<pid>/task/<tid>/children (Linux):
 * every thread's, since a Go program forks from whichever thread runs.
 */
function descendants(pid: number): number[] {
  const children: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) children.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    return children;
  }
  return children.flatMap((c) => [c, ...descendants(c)]);
}

/** The sandbox's kube-controller-manager processes (`roster-sandbox controller-manager ...`). */
export function controllerManagerPids(sandboxPid: number): number[] {
  return descendants(sandboxPid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[1] === "controller-manager";
    } catch {
      return false;
    }
  });
}

/** User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat; 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

// --- the two sides ------------------------------------------------------------------

async function podSide(cluster: BenchCluster, ns: string, o: PeerOptions): Promise<SideSetup> {
  const kc = cluster.kc;
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  const flipped = flippedOf(o);
  await core.createNode({
    body: { metadata: { name: "bench-node", labels: { "topology.kubernetes.io/zone": "zone-a" } } },
  });
  const watched = await watch(kc, ns, {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
  });
  const sliceEvents = () => watched.events.endpointslices ?? 0;
  const t0 = Date.now();
  for (let s = 0; s < o.services; s++) {
    await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: svc(s) },
        spec: { selector: { app: svc(s) }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
      },
    });
  }
  const patchStatus = (i: number, ready: boolean) => patchPodReady(core, merge, ns, i, ready);
  await pool(
    Array.from({ length: o.services * o.perService }, (_, i) => i),
    16,
    async (i) => {
      await core.createNamespacedPod({ namespace: ns, body: podBody(i, svc(Math.floor(i / o.perService))) });
      await patchStatus(i, true);
    },
  );
  await until("every Service's slices to hold all its ready Pods", 120_000, () => allServices(o, watched));
  const setupSeconds = (Date.now() - t0) / 1000;
  const kcm = controllerManagerPids(cluster.sandbox.pid);
  return {
    setupSeconds,
    activity: async () => sliceEvents(),
    cpu: async () => kcm.reduce((n, p) => n + processCpuSeconds(p), 0),
    async round() {
      const events0 = sliceEvents();
      const latency: number[] = [];
      for (const ready of [false, true]) {
        const sentAt = new Map<number, number>();
        for (const i of flipped) {
          sentAt.set(i, Date.now());
          await patchStatus(i, ready);
          await sleep(o.gapMs);
        }
        const seen = ready ? watched.sliceEntered : watched.sliceLeft;
        await until(`Pods to turn ${ready ? "ready" : "not ready"}`, 60_000, () =>
          flipped.every((i) => (seen.get(benchAddress(i, 19)) ?? 0) >= sentAt.get(i)!),
        );
        for (const i of flipped) latency.push(seen.get(benchAddress(i, 19))! - sentAt.get(i)!);
      }
      return { latency, detect: [], flips: 2 * flipped.length, sliceEvents: sliceEvents() - events0 };
    },
    async stop() {
      watched.stop();
    },
  };
}

/** Pod `p-<i>` labelled `app: <service>`, bound to `bench-node`; its address is `benchAddress(i, 19)`. */
export function podBody(i: number, service: string): object {
  return {
    metadata: { name: `p-${i}`, labels: { app: service } },
    spec: {
      nodeName: "bench-node",
      containers: [{ name: "c", image: "registry.invalid/none", ports: [{ containerPort: 8080 }] }],
    },
  };
}

/** What a kubelet writes when a Pod's readiness changes: phase, IPs and the Ready conditions, through /status. */
export function patchPodReady(
  core: CoreV1Api,
  merge: ReturnType<typeof setHeaderOptions>,
  ns: string,
  i: number,
  ready: boolean,
) {
  return core.patchNamespacedPodStatus(
    {
      namespace: ns,
      name: `p-${i}`,
      body: {
        status: {
          phase: "Running",
          podIP: benchAddress(i, 19),
          podIPs: [{ ip: benchAddress(i, 19) }],
          conditions: [
            { type: "Ready", status: ready ? "True" : "False" },
            { type: "ContainersReady", status: ready ? "True" : "False" },
          ],
        },
      },
    },
    merge,
  );
}

async function rosterSide(
  cluster: BenchCluster,
  ns: string,
  targets: Targets,
  o: PeerOptions,
): Promise<SideSetup> {
  const kc = cluster.kc;
  const flipped = flippedOf(o);
  const watched: Watcher = await watch(kc, ns, {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
  });
  let group: OperatorGroup | undefined;
  try {
    const forked = startOperators(o.group);
    await createInstances(
      kc,
      ns,
      o.services * o.perService,
      {
        service: (i) => svc(Math.floor(i / o.perService)),
        address: (i) => benchAddress(i, 18),
        zone: "zone-a",
        targets,
        interval: "1s",
        timeout: "500ms",
        failureThreshold: 1,
      },
      16,
    );
    group = await forked;
    const op = group;
    const startedAt = await op.start({
      kubeconfig: cluster.sandbox.kubeconfigPath,
      namespaces: [ns],
      maxPerHost: 16,
      concurrency: o.group.concurrency,
    });
    await until("every service's slices to hold all its ready instances", 120_000, () =>
      allServices(o, watched),
    );
    const setupSeconds = (Date.now() - startedAt) / 1000;
    const sliceEvents = () => watched.events.endpointslices ?? 0;
    return {
      setupSeconds,
      activity: async () => sliceEvents() + writeRequests(await op.stats()),
      cpu: async () => {
        const s = total(await op.stats());
        return (s.userMicros + s.systemMicros) / 1e6;
      },
      async round() {
        const events0 = sliceEvents();
        const transitions0 = total(await op.stats()).transitions;
        const latency: number[] = [];
        const detect: number[] = [];
        for (const healthy of [false, true]) {
          const flippedAt = new Map<number, number>();
          for (const i of flipped) {
            flippedAt.set(i, Date.now());
            if (healthy) targets.failing.delete(i);
            else targets.failing.add(i);
            await sleep(o.gapMs);
          }
          const seen = healthy ? watched.sliceEntered : watched.sliceLeft;
          await until(`instances to turn ${healthy ? "healthy" : "unhealthy"}`, 60_000, () =>
            flipped.every((i) => (seen.get(benchAddress(i, 18)) ?? 0) >= flippedAt.get(i)!),
          );
          const since = await op.since(flipped.map((i) => `${ns}/i-${i}`));
          for (const [k, i] of flipped.entries()) {
            latency.push(seen.get(benchAddress(i, 18))! - since[k]!);
            detect.push(since[k]! - flippedAt.get(i)!);
          }
        }
        const flips = total(await op.stats()).transitions - transitions0;
        return { latency, detect, flips, sliceEvents: sliceEvents() - events0 };
      },
      async stop() {
        watched.stop();
        await op.stop();
      },
    };
  } catch (err) {
    watched.stop();
    await group?.stop();
    throw err;
  }
}

// --- rounds and figures -------------------------------------------------------------

/** Median and min–max of per-round values. */
export function spread(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { median, min: s[0] ?? Number.NaN, max: s.at(-1) ?? Number.NaN };
}

interface SideResult {
  rounds: Round[];
  p50: ReturnType<typeof spread>;
  p99: ReturnType<typeof spread>;
  flips: number;
  requests: Record<string, number>;
}

function summarize(rounds: Round[]): SideResult {
  const requests: Record<string, number> = {};
  for (const r of rounds)
    for (const [k, v] of Object.entries(r.requests)) requests[k] = (requests[k] ?? 0) + v;
  return {
    rounds,
    p50: spread(rounds.map((r) => distribution(r.latency).p50)),
    p99: spread(rounds.map((r) => distribution(r.latency).p99)),
    flips: rounds.reduce((n, r) => n + r.flips, 0),
    requests,
  };
}

/**
 * Runs the comparison in `cluster` (started with `peerControllers`), in
 * namespaces of its own; writes bench/results/peer[-quick].json.
 */
export async function runPeer(cluster: BenchCluster, o: PeerOptions): Promise<Figure[]> {
  console.log(
    `\npeer: ${o.services} services × ${o.perService} endpoints, ${o.rounds} rounds a side (interleaved), ${o.flips} flips each way per round, ${o.gapMs} ms apart`,
  );
  const load0 = loadavg();
  const targets = await startTargets(8, "127.0.4");
  const sides: SideSetup[] = [];
  try {
    await createNamespace(cluster.kc, "peer-pods");
    await createNamespace(cluster.kc, "peer-roster");
    const pods = await podSide(cluster, "peer-pods", o);
    sides.push(pods);
    const roster = await rosterSide(cluster, "peer-roster", targets, o);
    sides.push(roster);
    console.log(
      `  set up: pods ${pods.setupSeconds.toFixed(1)} s, roster ${roster.setupSeconds.toFixed(1)} s`,
    );
    const activity = async () => (await pods.activity()) + (await roster.activity());
    const rounds: { controller: Round[]; roster: Round[] } = { controller: [], roster: [] };
    await quiet(activity, 1000, 10_000); // the operator's start-up statuses and Events
    let before = await apiserverRequests(cluster.kc);
    for (let k = 0; k < 2 * o.rounds; k++) {
      const [side, other, name] =
        k % 2 === 0 ? ([pods, roster, "controller"] as const) : ([roster, pods, "roster"] as const);
      const cpu0 = await other.cpu();
      const t0 = Date.now();
      const r = await side.round();
      await quiet(activity, 500, 5000); // trailing statuses, Events, slice updates
      const seconds = (Date.now() - t0) / 1000;
      const otherCpu = (await other.cpu()) - cpu0;
      const after = await apiserverRequests(cluster.kc);
      const round: Round = { ...r, requests: diffCounts(after, before), otherCpu, seconds };
      before = after;
      rounds[name].push(round);
      const d = distribution(r.latency);
      console.log(
        `  round ${k + 1} ${name.padEnd(10)} p50 ${d.p50} ms  p99 ${d.p99} ms  (${r.flips} flips, ${seconds.toFixed(1)} s)`,
      );
    }
    const load1 = loadavg();
    const c = summarize(rounds.controller);
    const r = summarize(rounds.roster);
    const cSlice = writesTo(c.requests, "endpointslices") / c.flips;
    const rSlice = writesTo(r.requests, "endpointslices") / r.flips;
    const events = (rs: Round[]) => rs.reduce((n, x) => n + x.sliceEvents, 0);
    const cores = (rs: Round[]) =>
      rs.reduce((n, x) => n + x.otherCpu, 0) / rs.reduce((n, x) => n + x.seconds, 0);
    const figures: Figure[] = [
      { name: "endpoints", value: o.services * o.perService, unit: "" },
      { name: "rounds per side", value: o.rounds, unit: "" },
      { name: "controller: latency p50, median of rounds", value: c.p50.median, unit: "ms" },
      { name: "controller: latency p50, min of rounds", value: c.p50.min, unit: "ms" },
      { name: "controller: latency p50, max of rounds", value: c.p50.max, unit: "ms" },
      { name: "controller: latency p99, median of rounds", value: c.p99.median, unit: "ms" },
      { name: "controller: latency p99, min of rounds", value: c.p99.min, unit: "ms" },
      { name: "controller: latency p99, max of rounds", value: c.p99.max, unit: "ms" },
      { name: "controller: slice writes per flip", value: cSlice, unit: "" },
      { name: "controller: slice watch events per flip", value: events(c.rounds) / c.flips, unit: "" },
      // The bench's own Pod status patches stand for the kubelet: not counted.
      {
        name: "controller: all writes per flip",
        value: writesExcept(c.requests, ["pods"]) / c.flips,
        unit: "",
      },
      { name: "roster: latency p50, median of rounds", value: r.p50.median, unit: "ms" },
      { name: "roster: latency p50, min of rounds", value: r.p50.min, unit: "ms" },
      { name: "roster: latency p50, max of rounds", value: r.p50.max, unit: "ms" },
      { name: "roster: latency p99, median of rounds", value: r.p99.median, unit: "ms" },
      { name: "roster: latency p99, min of rounds", value: r.p99.min, unit: "ms" },
      { name: "roster: latency p99, max of rounds", value: r.p99.max, unit: "ms" },
      { name: "roster: slice writes per transition", value: rSlice, unit: "" },
      { name: "roster: slice watch events per transition", value: events(r.rounds) / r.flips, unit: "" },
      { name: "roster: all writes per transition", value: writesExcept(r.requests) / r.flips, unit: "" },
      {
        name: "roster: detection p50 (not in latency)",
        value: distribution(r.rounds.flatMap((x) => x.detect)).p50,
        unit: "ms",
      },
      { name: "roster operator CPU during controller rounds", value: cores(c.rounds), unit: "cores" },
      { name: "kube-controller-manager CPU during roster rounds", value: cores(r.rounds), unit: "cores" },
      {
        name: "ratio latency p50 roster/controller (medians)",
        value: r.p50.median / c.p50.median,
        unit: "x",
        target: "<= 1",
      },
      {
        name: "ratio latency p99 roster/controller (medians)",
        value: r.p99.median / c.p99.median,
        unit: "x",
        target: "<= 1",
      },
      { name: "ratio slice writes roster/controller", value: rSlice / cSlice, unit: "x", target: "<= 1" },
    ];
    const perRound = (rs: Round[]) =>
      rs.map((x) => ({
        ...distribution(x.latency),
        flips: x.flips,
        seconds: x.seconds,
        otherSideCpuSeconds: x.otherCpu,
        sliceWrites: writesTo(x.requests, "endpointslices"),
      }));
    report(`peer${o.quick ? "-quick" : ""}${groupSuffix(o.group)}`, figures, {
      services: o.services,
      perService: o.perService,
      rounds: o.rounds,
      flipsEachWayPerRound: o.flips,
      gapMs: o.gapMs,
      replicas: o.group.replicas,
      sharding: o.group.sharding,
      loadAverage: { start: load0, end: load1 },
      controller: {
        setupSeconds: pods.setupSeconds,
        rounds: perRound(c.rounds),
        requestsDuringRounds: c.requests,
      },
      roster: {
        setupSeconds: roster.setupSeconds,
        rounds: perRound(r.rounds),
        requestsDuringRounds: r.requests,
      },
      method:
        "rounds alternate controller, roster, controller, ... with both sides set up once and running throughout; each round flips the same F endpoints not-ready then ready, one at a time; p50/p99 per round, then median (min–max) over a side's rounds. controller latency: watcher Date.now() at the slice event − start of the Pod /status patch; roster latency: watcher Date.now() at the slice event − engine summary `since` (judged threshold-crossing probe). Roster also probes (detection reported apart); this compares the publication path. Writes from apiserver_request_total deltas per round (Pod status patches excluded: they stand for the kubelet; Lease renewals excluded). Other side's CPU: operator process.cpuUsage(), kube-controller-manager /proc/<pid>/stat.",
    });
    return figures;
  } finally {
    for (const s of sides) await s.stop();
    await targets.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      ...commonOptions,
      services: { type: "string" },
      "per-service": { type: "string" },
      flips: { type: "string" },
      rounds: { type: "string" },
      gap: { type: "string" },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const o = peerOptions(args.quick, groupOptions(args), {
    services: num(args.services),
    perService: num(args["per-service"]),
    flips: num(args.flips),
    rounds: num(args.rounds),
    gapMs: num(args.gap),
  });
  const cluster = await startCluster(peerControllers);
  try {
    await runPeer(cluster, o);
  } finally {
    await cluster.stop(true);
  }
}
