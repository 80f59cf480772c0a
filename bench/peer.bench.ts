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
 *   node bench/peer.bench.ts            # 10 services × 20 endpoints, 40 flips (~2 min)
 *   node bench/peer.bench.ts --quick    # 5 × 10, 20 flips (<1 min)
 *   options: --services S --per-service P --flips F --gap MS (between flips)
 */
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import {
  apiserverRequests,
  benchAddress,
  createNamespace,
  diffCounts,
  type OperatorProcess,
  pool,
  sleep,
  sorted,
  startCluster,
  startOperatorProcess,
  startTargets,
  type Targets,
  until,
  type Watcher,
  watch,
  writesExcept,
  writesTo,
} from "./lib.ts";
import { type Figure, percentile, report } from "./report.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    services: { type: "string" },
    "per-service": { type: "string" },
    flips: { type: "string" },
    gap: { type: "string", default: "150" },
  },
});
const S = Number(args.services ?? (args.quick ? 5 : 10));
const P = Number(args["per-service"] ?? (args.quick ? 10 : 20));
const F = Math.min(S * P, Number(args.flips ?? (args.quick ? 20 : 40)));
const GAP = Number(args.gap);
const svc = (s: number) => `svc-${String(s).padStart(3, "0")}`;
/** Flipped endpoints: spread over the services, one service after the other. */
const flipped = Array.from({ length: F }, (_, k) => (k % S) * P + Math.floor(k / S));

interface Side {
  latency: number[];
  sliceWrites: number;
  allWrites: number;
  sliceEvents: number;
  flips: number;
  requests: Record<string, number>;
  detect?: number[];
}

const stats = (xs: number[]) => {
  const s = sorted(xs);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN };
};

async function podSide(
  kc: import("@kubernetes/client-node").KubeConfig,
  ns: string,
): Promise<Side & { setupSeconds: number }> {
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  await core.createNode({
    body: { metadata: { name: "bench-node", labels: { "topology.kubernetes.io/zone": "zone-a" } } },
  });
  const watched = await watch(kc, ns, {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
  });
  try {
    const t0 = Date.now();
    for (let s = 0; s < S; s++) {
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
      Array.from({ length: S * P }, (_, i) => i),
      16,
      async (i) => {
        await core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: `p-${i}`, labels: { app: svc(Math.floor(i / P)) } },
            spec: {
              nodeName: "bench-node",
              containers: [{ name: "c", image: "registry.invalid/none", ports: [{ containerPort: 8080 }] }],
            },
          },
        });
        await patchStatus(i, true);
      },
    );
    await until("every Service's slices to hold all its ready Pods", 120_000, () =>
      Array.from({ length: S }, (_, s) => watched.sliceReady.get(svc(s)) === P).every(Boolean),
    );
    const setupSeconds = (Date.now() - t0) / 1000;
    await sleep(1000);
    const before = await apiserverRequests(kc);
    const events0 = watched.events.endpointslices ?? 0;
    const latency: number[] = [];
    for (const ready of [false, true]) {
      const sentAt = new Map<number, number>();
      for (const i of flipped) {
        sentAt.set(i, Date.now());
        await patchStatus(i, ready);
        await sleep(GAP);
      }
      const seen = ready ? watched.sliceEntered : watched.sliceLeft;
      await until(`Pods to turn ${ready ? "ready" : "not ready"}`, 60_000, () =>
        flipped.every((i) => (seen.get(benchAddress(i, 19)) ?? 0) >= sentAt.get(i)!),
      );
      for (const i of flipped) latency.push(seen.get(benchAddress(i, 19))! - sentAt.get(i)!);
    }
    await sleep(1500);
    const requests = diffCounts(await apiserverRequests(kc), before);
    const flips = 2 * F;
    return {
      setupSeconds,
      latency,
      flips,
      requests,
      sliceWrites: writesTo(requests, "endpointslices") / flips,
      // The bench's own Pod status patches stand for the kubelet: not counted.
      allWrites: writesExcept(requests, ["pods"]) / flips,
      sliceEvents: ((watched.events.endpointslices ?? 0) - events0) / flips,
    };
  } finally {
    watched.stop();
  }
}

async function rosterSide(
  kc: import("@kubernetes/client-node").KubeConfig,
  kubeconfig: string,
  ns: string,
  targets: Targets,
): Promise<Side & { setupSeconds: number; cpuSeconds: number }> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const watched: Watcher = await watch(kc, ns, {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
  });
  let operator: OperatorProcess | undefined;
  try {
    await pool(
      Array.from({ length: S * P }, (_, i) => i),
      16,
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
              service: svc(Math.floor(i / P)),
              address: benchAddress(i, 18),
              zone: "zone-a",
              ports: [{ name: "http", port: targets.port }],
              healthCheck: {
                probes: [
                  {
                    type: "http",
                    http: { host: targets.hosts[i % targets.hosts.length], port: "http", path: `/h/${i}` },
                  },
                ],
                interval: "1s",
                timeout: "500ms",
                failureThreshold: 1,
                successThreshold: 1,
                jitter: 0,
              },
            },
          },
        }),
    );
    operator = await startOperatorProcess();
    const op = operator;
    const startedAt = await op.start({
      kubeconfig,
      namespaces: [ns],
      batchWindowMs: 20,
      maxConcurrent: 512,
      maxPerHost: 16,
      concurrency: 4,
    });
    await until("every service's slices to hold all its ready instances", 120_000, () =>
      Array.from({ length: S }, (_, s) => watched.sliceReady.get(svc(s)) === P).every(Boolean),
    );
    const setupSeconds = (Date.now() - startedAt) / 1000;
    await sleep(3000); // statuses, policy-less defaults, Events
    const before = await apiserverRequests(kc);
    const cpu0 = await op.stats();
    const events0 = watched.events.endpointslices ?? 0;
    const latency: number[] = [];
    const detect: number[] = [];
    for (const healthy of [false, true]) {
      const flippedAt = new Map<number, number>();
      for (const i of flipped) {
        flippedAt.set(i, Date.now());
        if (healthy) targets.failing.delete(i);
        else targets.failing.add(i);
        await sleep(GAP);
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
    await sleep(1500);
    const requests = diffCounts(await apiserverRequests(kc), before);
    const cpu1 = await op.stats();
    const flips = cpu1.transitions - cpu0.transitions;
    return {
      setupSeconds,
      latency,
      detect,
      flips,
      requests,
      cpuSeconds: (cpu1.userMicros + cpu1.systemMicros - cpu0.userMicros - cpu0.systemMicros) / 1e6,
      sliceWrites: writesTo(requests, "endpointslices") / flips,
      allWrites: writesExcept(requests) / flips,
      sliceEvents: ((watched.events.endpointslices ?? 0) - events0) / flips,
    };
  } finally {
    watched.stop();
    await operator?.stop();
  }
}

async function main(): Promise<void> {
  console.log(`${S} services × ${P} endpoints, ${F} flips each way, ${GAP} ms apart`);
  const cluster = await startCluster([
    "garbage-collector-controller",
    "namespace-controller",
    "endpointslice-controller",
  ]);
  const targets = await startTargets(8, "127.0.4");
  try {
    await createNamespace(cluster.kc, "peer-pods");
    await createNamespace(cluster.kc, "peer-roster");
    const pods = await podSide(cluster.kc, "peer-pods");
    console.log(`  endpointslice-controller: ${pods.flips} flips measured`);
    const roster = await rosterSide(cluster.kc, cluster.sandbox.kubeconfigPath, "peer-roster", targets);
    console.log(`  roster: ${roster.flips} transitions measured`);
    const pl = stats(pods.latency);
    const rl = stats(roster.latency);
    const figures: Figure[] = [
      { name: "endpoints", value: S * P, unit: "" },
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
      {
        name: "roster: detection p50 (not in latency)",
        value: percentile(sorted(roster.detect ?? []), 50),
        unit: "ms",
      },
      { name: "ratio latency p50 roster/controller", value: rl.p50 / pl.p50, unit: "x", target: "<= 1" },
      { name: "ratio latency p99 roster/controller", value: rl.p99 / pl.p99, unit: "x", target: "<= 1" },
      {
        name: "ratio slice writes roster/controller",
        value: roster.sliceWrites / pods.sliceWrites,
        unit: "x",
        target: "<= 1",
      },
    ];
    report(`peer${args.quick ? "-quick" : ""}`, figures, {
      services: S,
      perService: P,
      flipsEachWay: F,
      gapMs: GAP,
      controller: { setupSeconds: pods.setupSeconds, requestsDuringFlips: pods.requests },
      roster: {
        setupSeconds: roster.setupSeconds,
        cpuSecondsDuringFlips: roster.cpuSeconds,
        requestsDuringFlips: roster.requests,
      },
      method:
        "controller latency: watcher Date.now() at the slice event − start of the Pod /status patch; roster latency: watcher Date.now() at the slice event − engine summary `since` (judged threshold-crossing probe). Roster also probes (detection reported apart); this compares the publication path. Writes from apiserver_request_total deltas over the flip phase (Pod status patches excluded: they stand for the kubelet).",
    });
  } finally {
    await targets.close();
    await cluster.stop();
  }
}

await main();
