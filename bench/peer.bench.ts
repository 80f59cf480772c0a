/**
 * Side by side, in one run and one sandbox: Kubernetes' own EndpointSlice
 * controller (kube-controller-manager's `endpointslice-controller`) and
 * Roster, publishing the same readiness flips of the same number of
 * endpoints.
 *
 * (a) Pods: S selector Services × P Pods, bound to a Node object (there is
 *     no kubelet: the bench creates the Node and writes each Pod's status —
 *     podIP, phase Running, Ready — with a /status patch, as a kubelet
 *     would). F Pods, each in turn, go not-ready and then ready again.
 *     Latency: from the start of the Pod status patch to the EndpointSlice
 *     change seen by an independent watcher.
 * (b) Roster: S services × P ServiceInstances probed over HTTP at loopback
 *     targets (interval 1 s, thresholds 1), the operator in a child process.
 *     The same F instances fail and recover at their targets. Latency: from
 *     the engine's verdict-change time (`engine.summary(id).since`, taken
 *     when the threshold-crossing probe's result is judged) to the
 *     EndpointSlice change seen by the same kind of watcher.
 *
 * Both starts are the moment the new readiness is known to the publisher's
 * input: the kubelet's status write for Pods, the judged probe for Roster.
 * Roster also probes and the controller does not: detection time (probe
 * interval × threshold) is reported separately and is not in the latency;
 * this compares the publication path. Writes per flip come from the API
 * server's own `apiserver_request_total` (EndpointSlice writes, and all
 * writes except the bench's Pod status patches and kube-controller-manager's
 * leader Lease renewals) and from the watcher's
 * EndpointSlice events.
 *
 *   node bench/peer.bench.ts            # 10 services × 20 endpoints, 40 flips (~1 min)
 *   node bench/peer.bench.ts --quick    # 5 × 10, 20 flips (the suite's --quick runs this in its sandbox)
 *   options: --services S --per-service P --flips F --gap MS (between flips),
 *            --replicas R --sharding --concurrency C (the Roster side, as in the suite)
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
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
  cpuSeconds,
  createInstances,
  distribution,
  type GroupOptions,
  groupOptions,
  groupSuffix,
  type OperatorGroup,
  quiet,
  settle,
  startOperators,
  total,
} from "./setup.ts";

export interface PeerOptions {
  quick: boolean;
  services: number;
  perService: number;
  flips: number;
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
    flips: Math.min(services * perService, o.flips ?? (quick ? 20 : 40)),
    gapMs: o.gapMs ?? 150,
    group,
  };
}

interface Side {
  latency: number[];
  sliceWrites: number;
  allWrites: number;
  sliceEvents: number;
  flips: number;
  requests: Record<string, number>;
  setupSeconds: number;
}

const svc = (s: number) => `svc-${String(s).padStart(3, "0")}`;
/** Flipped endpoints: spread over the services, one service after the other. */
const flippedOf = (o: PeerOptions) =>
  Array.from({ length: o.flips }, (_, k) => (k % o.services) * o.perService + Math.floor(k / o.services));
const allServices = (o: PeerOptions, w: Watcher) =>
  Array.from({ length: o.services }, (_, s) => w.sliceReady.get(svc(s)) === o.perService).every(Boolean);

async function podSide(kc: KubeConfig, ns: string, o: PeerOptions): Promise<Side> {
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
  try {
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
    const patchStatus = (i: number, ready: boolean) =>
      core.patchNamespacedPodStatus(
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
    await pool(
      Array.from({ length: o.services * o.perService }, (_, i) => i),
      16,
      async (i) => {
        await core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: `p-${i}`, labels: { app: svc(Math.floor(i / o.perService)) } },
            spec: {
              nodeName: "bench-node",
              containers: [{ name: "c", image: "registry.invalid/none", ports: [{ containerPort: 8080 }] }],
            },
          },
        });
        await patchStatus(i, true);
      },
    );
    await until("every Service's slices to hold all its ready Pods", 120_000, () => allServices(o, watched));
    const setupSeconds = (Date.now() - t0) / 1000;
    await quiet(sliceEvents, 500, 3000);
    const before = await apiserverRequests(kc);
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
    await quiet(sliceEvents, 500, 3000);
    const requests = diffCounts(await apiserverRequests(kc), before);
    const flips = 2 * o.flips;
    return {
      setupSeconds,
      latency,
      flips,
      requests,
      sliceWrites: writesTo(requests, "endpointslices") / flips,
      // The bench's own Pod status patches stand for the kubelet: not counted.
      allWrites: writesExcept(requests, ["pods"]) / flips,
      sliceEvents: (sliceEvents() - events0) / flips,
    };
  } finally {
    watched.stop();
  }
}

async function rosterSide(
  cluster: BenchCluster,
  ns: string,
  targets: Targets,
  o: PeerOptions,
): Promise<Side & { detect: number[]; cpuSeconds: number }> {
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
    await settle(op, 1000, 5000); // statuses, Events
    const before = await apiserverRequests(kc);
    const s0 = total(await op.stats());
    const events0 = watched.events.endpointslices ?? 0;
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
    await settle(op, 1000, 3000);
    const requests = diffCounts(await apiserverRequests(kc), before);
    const s1 = total(await op.stats());
    const flips = s1.transitions - s0.transitions;
    return {
      setupSeconds,
      latency,
      detect,
      flips,
      requests,
      cpuSeconds: cpuSeconds(s0, s1),
      sliceWrites: writesTo(requests, "endpointslices") / flips,
      allWrites: writesExcept(requests) / flips,
      sliceEvents: ((watched.events.endpointslices ?? 0) - events0) / flips,
    };
  } finally {
    watched.stop();
    await group?.stop();
  }
}

/**
 * Runs the comparison in `cluster` (started with `peerControllers`), in
 * namespaces of its own; writes bench/results/peer[-quick].json.
 */
export async function runPeer(cluster: BenchCluster, o: PeerOptions): Promise<Figure[]> {
  console.log(
    `\npeer: ${o.services} services × ${o.perService} endpoints, ${o.flips} flips each way, ${o.gapMs} ms apart`,
  );
  const targets = await startTargets(8, "127.0.4");
  try {
    await createNamespace(cluster.kc, "peer-pods");
    await createNamespace(cluster.kc, "peer-roster");
    const pods = await podSide(cluster.kc, "peer-pods", o);
    console.log(`  endpointslice-controller: ${pods.flips} flips measured`);
    const roster = await rosterSide(cluster, "peer-roster", targets, o);
    console.log(`  roster: ${roster.flips} transitions measured`);
    const pl = distribution(pods.latency);
    const rl = distribution(roster.latency);
    const figures: Figure[] = [
      { name: "endpoints", value: o.services * o.perService, unit: "" },
      { name: "controller: latency p50", value: pl.p50, unit: "ms" },
      { name: "controller: latency p99", value: pl.p99, unit: "ms" },
      { name: "controller: latency max", value: pl.max, unit: "ms" },
      { name: "controller: slice writes per flip", value: pods.sliceWrites, unit: "" },
      { name: "controller: slice watch events per flip", value: pods.sliceEvents, unit: "" },
      { name: "controller: all writes per flip", value: pods.allWrites, unit: "" },
      { name: "roster: latency p50", value: rl.p50, unit: "ms" },
      { name: "roster: latency p99", value: rl.p99, unit: "ms" },
      { name: "roster: latency max", value: rl.max, unit: "ms" },
      { name: "roster: slice writes per transition", value: roster.sliceWrites, unit: "" },
      { name: "roster: slice watch events per transition", value: roster.sliceEvents, unit: "" },
      { name: "roster: all writes per transition", value: roster.allWrites, unit: "" },
      { name: "roster: detection p50 (not in latency)", value: distribution(roster.detect).p50, unit: "ms" },
      { name: "ratio latency p50 roster/controller", value: rl.p50 / pl.p50, unit: "x", target: "<= 1" },
      { name: "ratio latency p99 roster/controller", value: rl.p99 / pl.p99, unit: "x", target: "<= 1" },
      {
        name: "ratio slice writes roster/controller",
        value: roster.sliceWrites / pods.sliceWrites,
        unit: "x",
        target: "<= 1",
      },
    ];
    report(`peer${o.quick ? "-quick" : ""}${groupSuffix(o.group)}`, figures, {
      services: o.services,
      perService: o.perService,
      flipsEachWay: o.flips,
      gapMs: o.gapMs,
      replicas: o.group.replicas,
      sharding: o.group.sharding,
      controller: { setupSeconds: pods.setupSeconds, requestsDuringFlips: pods.requests },
      roster: {
        setupSeconds: roster.setupSeconds,
        cpuSecondsDuringFlips: roster.cpuSeconds,
        requestsDuringFlips: roster.requests,
      },
      method:
        "controller latency: watcher Date.now() at the slice event − start of the Pod /status patch; roster latency: watcher Date.now() at the slice event − engine summary `since` (judged threshold-crossing probe). Roster also probes (detection reported apart); this compares the publication path. Writes from apiserver_request_total deltas over the flip phase (Pod status patches excluded: they stand for the kubelet).",
    });
    return figures;
  } finally {
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
      gap: { type: "string" },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const o = peerOptions(args.quick, groupOptions(args), {
    services: num(args.services),
    perService: num(args["per-service"]),
    flips: num(args.flips),
    gapMs: num(args.gap),
  });
  const cluster = await startCluster(peerControllers);
  try {
    await runPeer(cluster, o);
  } finally {
    await cluster.stop(true);
  }
}
