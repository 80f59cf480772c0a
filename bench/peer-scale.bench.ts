/**
 * The peer comparison at scale, in one run and one sandbox: Kubernetes'
 * EndpointSlice controller and Roster, each with 10,000 endpoints in 1,000
 * services, when a third of them (every service: instance/Pod i is flipped
 * when ⌊(i+1)/3⌋ > ⌊i/3⌋, 3–4 per service) lose readiness at once, and
 * then regain it. The figure is the time to the last EndpointSlice change
 * seen by an independent watcher.
 *
 * (a) Pods: 1,000 selector Services × 10 Pods bound to a Node object, their
 *     status written by the bench with /status patches (there is no
 *     kubelet), 32 in flight, as fast as the API server takes them. The
 *     controller is a kube-controller-manager of its own (`roster-sandbox
 *     controller-manager`, only `endpointslice-controller`, no leader
 *     election), started once per client QPS/burst setting
 *     (`--kube-api-qps`/`--kube-api-burst`; kube-controller-manager's
 *     defaults are 20/30) and stopped after it. The input is complete at the
 *     last Pod status patch's response: time from it to the last slice
 *     change, and from the first patch.
 * (b) Roster: 1,000 services × 10 ServiceInstances probed over HTTP at
 *     loopback targets every 10 s (timeout 1 s, thresholds 1, jitter 0),
 *     the operator in a child process with the bench defaults, started after
 *     the controller runs (one side runs at a time). The same third's
 *     targets start answering 503 at one instant; detection (that instant →
 *     the last verdict) is reported apart, and the publication figure runs
 *     from the last verdict (the engine's `since`) to the last slice change;
 *     also from the first verdict.
 * Both: per-endpoint latency (patch start or verdict → its slice change)
 * p50/p99, EndpointSlice writes from the API server's
 * `apiserver_request_total`, the publisher's CPU.
 *
 * Runtime: ~12–20 min on this shared 2-core machine (creating 10,000 Pods
 * with their status and 10,000 instances ~3–5 min, Roster's start-up at
 * 10k / 10 s ~2–3 min, the default-QPS controller ~2 min).
 *
 *   node bench/peer-scale.bench.ts              # 10,000 / 1,000, controller at QPS/burst 100/200 then 20/30 (the default)
 *   node bench/peer-scale.bench.ts --quick      # 1,000 / 100 (a check of the bench, ~3 min)
 *   options: --instances N --services S --qps 20/30[,100/200...] (--qps "": Roster alone)
 *            --interval 10s --concurrency C (the operator's workers per controller, default 4)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { defaultSandboxBinary } from "../src/dev/sandbox.ts";
import {
  apiserverRequests,
  benchAddress,
  createNamespace,
  diffCounts,
  pool,
  startCluster,
  startTargets,
  until,
  type Watcher,
  watch,
  writesTo,
} from "./lib.ts";
import { patchPodReady, podBody, processCpuSeconds, svc } from "./peer.bench.ts";
import { type Figure, report } from "./report.ts";
import { createInstances, distribution, quiet, settle, startOperators, total } from "./setup.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    instances: { type: "string" },
    services: { type: "string" },
    qps: { type: "string", default: "100/200,20/30" },
    interval: { type: "string", default: "10s" },
    concurrency: { type: "string", default: "4" },
  },
});
const n = Number(args.instances ?? (args.quick ? 1000 : 10_000));
const services = Number(args.services ?? (args.quick ? 100 : 1000));
const perService = Math.ceil(n / services);
// `--qps ""`: Roster alone (no Pods are created).
const settings = args.qps
  .split(",")
  .filter(Boolean)
  .map((s) => {
    const [qps, burst] = s.split("/").map(Number);
    return { qps: qps!, burst: burst ?? qps! };
  });
const flipped = Array.from({ length: n }, (_, i) => i).filter(
  (i) => Math.floor((i + 1) / 3) > Math.floor(i / 3),
);
const serviceOf = (i: number) => svc(Math.floor(i / perService));

/** One storm (or recovery): when the input started and was complete, and when each endpoint's slice changed. */
interface Storm {
  firstInput: number;
  lastInput: number;
  lastSlice: number;
  latency: number[];
  sliceWrites: number;
  cpuSeconds: number;
}

const storm = (s: Storm, prefix: string): Figure[] => {
  const d = distribution(s.latency);
  return [
    { name: `${prefix}: input phase (first → last)`, value: (s.lastInput - s.firstInput) / 1000, unit: "s" },
    { name: `${prefix}: last input → last slice`, value: (s.lastSlice - s.lastInput) / 1000, unit: "s" },
    { name: `${prefix}: first input → last slice`, value: (s.lastSlice - s.firstInput) / 1000, unit: "s" },
    { name: `${prefix}: per-endpoint latency p50`, value: d.p50, unit: "ms" },
    { name: `${prefix}: per-endpoint latency p99`, value: d.p99, unit: "ms" },
    { name: `${prefix}: slice writes`, value: s.sliceWrites, unit: "" },
    { name: `${prefix}: publisher CPU`, value: s.cpuSeconds, unit: "s" },
  ];
};

const lastOf = (seen: Map<string, number>, address: (i: number) => string) =>
  Math.max(...flipped.map((i) => seen.get(address(i))!));

/** A kube-controller-manager running only the EndpointSlice controller, at a client QPS/burst. */
function startSliceController(kubeconfig: string, qps: number, burst: number, log: string): ChildProcess {
  const child = spawn(
    defaultSandboxBinary,
    [
      "controller-manager",
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--controllers=endpointslice-controller",
      "--leader-elect=false",
      "--secure-port=0",
      `--kube-api-qps=${qps}`,
      `--kube-api-burst=${burst}`,
    ],
    { stdio: ["ignore", openSync(log, "a"), openSync(log, "a")] },
  );
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  child.once("exit", () => process.off("exit", kill));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

const t00 = Date.now();
const load0 = loadavg();
console.log(
  `peer-scale: ${n} endpoints / ${services} services, ${flipped.length} flipped; controller at QPS/burst ${args.qps}; roster at ${args.interval}`,
);
const cluster = await startCluster();
const kc = cluster.kc;
const core = kc.makeApiClient(CoreV1Api);
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const targets = await startTargets(16, "127.0.7");
const watchers: Watcher[] = [];
const figures: Figure[] = [
  { name: "endpoints", value: n, unit: "" },
  { name: "services", value: services, unit: "" },
  { name: "flipped", value: flipped.length, unit: "" },
];
const details: Record<string, unknown> = {};
try {
  // --- set up both sides' objects ---
  await createNamespace(kc, "scale-pods");
  await createNamespace(kc, "scale-roster");
  await core.createNode({
    body: { metadata: { name: "bench-node", labels: { "topology.kubernetes.io/zone": "zone-a" } } },
  });
  // Both sides' objects at once: creation is bound by the API server's latency, not its CPU.
  const createPods = async () => {
    if (settings.length === 0) return 0;
    const t = Date.now();
    await pool(
      Array.from({ length: services }, (_, s) => s),
      16,
      (s) =>
        core.createNamespacedService({
          namespace: "scale-pods",
          body: {
            metadata: { name: svc(s) },
            spec: { selector: { app: svc(s) }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
          },
        }),
    );
    await pool(
      Array.from({ length: n }, (_, i) => i),
      48,
      async (i) => {
        await core.createNamespacedPod({ namespace: "scale-pods", body: podBody(i, serviceOf(i)) });
        await patchPodReady(core, merge, "scale-pods", i, true);
      },
    );
    return (Date.now() - t) / 1000;
  };
  const [podSetup, instanceSetup] = await Promise.all([
    createPods(),
    createInstances(kc, "scale-roster", n, {
      service: serviceOf,
      address: (i) => benchAddress(i, 18),
      zone: "zone-a",
      targets,
      interval: args.interval,
      timeout: "1s",
      failureThreshold: 1,
    }),
  ]);
  console.log(
    `  created ${n} Pods with status in ${podSetup.toFixed(0)} s, ${n} instances in ${instanceSetup.toFixed(0)} s (at once)`,
  );
  details.setupSeconds = { pods: podSetup, instances: instanceSetup };

  // --- the controller, once per QPS setting ---
  const podWatch = await watch(kc, "scale-pods", {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
  });
  watchers.push(podWatch);
  const podAddress = (i: number) => benchAddress(i, 19);
  const allPublished = (w: Watcher, ready: number) =>
    Array.from({ length: services }, (_, s) => w.sliceReady.get(svc(s)) ?? 0).reduce((a, b) => a + b, 0) ===
    ready;
  const controllerRuns: Record<string, unknown>[] = [];
  for (const { qps, burst } of settings) {
    const log = join(tmpdir(), `roster-peer-scale-kcm-${process.pid}-${qps}.log`);
    const kcm = startSliceController(cluster.sandbox.kubeconfigPath, qps, burst, log);
    try {
      const started = Date.now();
      // Its informers synced (it serves no health port here): the storm must not include its start.
      await until(`the controller (QPS ${qps}) to sync its caches`, 120_000, () =>
        /Starting endpoint slice controller[\s\S]*Caches are synced/.test(readFileSync(log, "utf8")),
      );
      await until(`the controller (QPS ${qps}) to publish every Pod`, 900_000, () =>
        allPublished(podWatch, n),
      );
      const syncSeconds = (Date.now() - started) / 1000;
      await quiet(() => podWatch.events.endpointslices ?? 0, 2000, 120_000);
      const run = async (ready: boolean): Promise<Storm> => {
        const before = await apiserverRequests(kc);
        const cpu0 = processCpuSeconds(kcm.pid!);
        const sentAt = new Map<number, number>();
        const firstInput = Date.now();
        await pool(flipped, 32, async (i) => {
          sentAt.set(i, Date.now());
          await patchPodReady(core, merge, "scale-pods", i, ready);
        });
        const lastInput = Date.now();
        const seen = ready ? podWatch.sliceEntered : podWatch.sliceLeft;
        await until(`Pods to turn ${ready ? "ready" : "not ready"} (QPS ${qps})`, 900_000, () =>
          flipped.every((i) => (seen.get(podAddress(i)) ?? 0) >= sentAt.get(i)!),
        );
        const lastSlice = lastOf(seen, podAddress);
        const cpuSeconds = processCpuSeconds(kcm.pid!) - cpu0;
        await quiet(() => podWatch.events.endpointslices ?? 0, 2000, 60_000);
        const requests = diffCounts(await apiserverRequests(kc), before);
        return {
          firstInput,
          lastInput,
          lastSlice,
          latency: flipped.map((i) => seen.get(podAddress(i))! - sentAt.get(i)!),
          sliceWrites: writesTo(requests, "endpointslices"),
          cpuSeconds,
        };
      };
      const fail = await run(false);
      const recover = await run(true);
      const prefix = `controller ${qps}/${burst}`;
      figures.push(
        { name: `${prefix}: start to every slice seen`, value: syncSeconds, unit: "s" },
        ...storm(fail, `${prefix} fail`),
        ...storm(recover, `${prefix} recover`),
      );
      controllerRuns.push({ qps, burst, syncSeconds, loadAverage: loadavg() });
      console.log(
        `  controller ${qps}/${burst}: last patch → last slice ${((fail.lastSlice - fail.lastInput) / 1000).toFixed(1)} s (fail), ${((recover.lastSlice - recover.lastInput) / 1000).toFixed(1)} s (recover)`,
      );
    } finally {
      await stopChild(kcm);
    }
  }
  details.controller = controllerRuns;

  // --- Roster ---
  const rosterWatch = await watch(kc, "scale-roster", {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
  });
  watchers.push(rosterWatch);
  const rosterAddress = (i: number) => benchAddress(i, 18);
  const op = await startOperators({ replicas: 1, sharding: false });
  try {
    const startedAt = await op.start({
      kubeconfig: cluster.sandbox.kubeconfigPath,
      namespaces: ["scale-roster"],
    });
    await until("roster to publish every instance", 1_200_000, () => allPublished(rosterWatch, n));
    const publishedSeconds = (Date.now() - startedAt) / 1000;
    await settle(op, 3000, 900_000); // every status written, Events
    const quietSeconds = (Date.now() - startedAt) / 1000;
    console.log(
      `  roster: published ${publishedSeconds.toFixed(0)} s, quiet ${quietSeconds.toFixed(0)} s after start`,
    );
    const ids = flipped.map((i) => `scale-roster/i-${i}`);
    const run = async (healthy: boolean): Promise<Storm & { flippedAt: number; quietAfter: number }> => {
      const before = await apiserverRequests(kc);
      const s0 = total(await op.stats());
      const flippedAt = Date.now();
      for (const i of flipped) {
        if (healthy) targets.failing.delete(i);
        else targets.failing.add(i);
      }
      const seen = healthy ? rosterWatch.sliceEntered : rosterWatch.sliceLeft;
      await until(`instances to turn ${healthy ? "healthy" : "unhealthy"}`, 900_000, () =>
        flipped.every((i) => (seen.get(rosterAddress(i)) ?? 0) >= flippedAt),
      );
      const lastSlice = lastOf(seen, rosterAddress);
      const s1 = total(await op.stats());
      const since = await op.since(ids);
      await settle(op, 2000, 900_000);
      const quietAfter = Date.now() - 2000;
      const requests = diffCounts(await apiserverRequests(kc), before);
      return {
        flippedAt,
        quietAfter,
        firstInput: Math.min(...since),
        lastInput: Math.max(...since),
        lastSlice,
        latency: flipped.map((i, k) => seen.get(rosterAddress(i))! - since[k]!),
        sliceWrites: writesTo(requests, "endpointslices"),
        cpuSeconds: (s1.userMicros + s1.systemMicros - s0.userMicros - s0.systemMicros) / 1e6,
      };
    };
    const fail = await run(false);
    const recover = await run(true);
    for (const [s, name] of [
      [fail, "roster fail"],
      [recover, "roster recover"],
    ] as const) {
      figures.push(
        {
          name: `${name}: detection (targets flip → last verdict, not in latency)`,
          value: (s.lastInput - s.flippedAt) / 1000,
          unit: "s",
        },
        ...storm(s, name),
        {
          name: `${name}: last verdict → writes quiet (statuses, Events)`,
          value: (s.quietAfter - s.lastInput) / 1000,
          unit: "s",
        },
      );
    }
    figures.push({ name: "roster: start to every set published", value: publishedSeconds, unit: "s" });
    details.roster = {
      publishedSeconds,
      quietSeconds,
      interval: args.interval,
      concurrency: Number(args.concurrency),
      loadAverage: loadavg(),
    };
    console.log(
      `  roster: last verdict → last slice ${((fail.lastSlice - fail.lastInput) / 1000).toFixed(1)} s (fail), ${((recover.lastSlice - recover.lastInput) / 1000).toFixed(1)} s (recover)`,
    );
    const tail = (name: string) => figures.find((f) => f.name === name)!.value;
    for (const { qps, burst } of settings) {
      for (const phase of ["fail", "recover"]) {
        figures.push({
          name: `ratio last input → last slice, roster/controller ${qps}/${burst} (${phase})`,
          value:
            tail(`roster ${phase}: last input → last slice`) /
            tail(`controller ${qps}/${burst} ${phase}: last input → last slice`),
          unit: "x",
          target: "<= 1",
        });
      }
    }
  } finally {
    await op.stop();
  }
  details.loadAverage = { start: load0, end: loadavg() };
  details.runSeconds = (Date.now() - t00) / 1000;
  details.method =
    "one side at a time in one sandbox. controller: its own kube-controller-manager (endpointslice-controller only) per QPS/burst; input = the bench's Pod /status patches (32 in flight), last input = the last patch's response; roster: targets of the flipped third answer 503 from one instant, input = engine verdicts (`since`), detection reported apart. last slice = the watcher's Date.now() at the last flipped address's slice change. slice writes from apiserver_request_total over the storm until quiet; CPU: kube-controller-manager /proc/<pid>/stat, operator process.cpuUsage() until the last slice.";
  const suffix = `${args.quick ? "-quick" : ""}${args.concurrency === "4" ? "" : `-c${args.concurrency}`}`;
  report(`peer-scale${suffix}`, figures, {
    instances: n,
    services,
    flipped: flipped.length,
    ...details,
  });
} finally {
  for (const w of watchers) w.stop();
  await targets.close();
  await cluster.stop(true);
}
