/**
 * "An instance dies → the last new connection served by it", through
 * kube-proxy, for Roster and for Kubernetes' own pod path, side by side in
 * one run on one data plane (sandbox/dataplane.go: kube-proxy in nftables
 * mode and CoreDNS in a node namespace; src/dev/testhosts.ts: backends at
 * 198.18.x.y).
 *
 * - Roster: three ServiceInstances of service `web` at three test hosts,
 *   probed over HTTP (interval 1 s, timeout 500 ms, failureThreshold 2,
 *   successThreshold 1, no jitter; `--interval`, `--failure-threshold`),
 *   published by the operator (in this process, default settings) as the
 *   selector-less Service `web` and its EndpointSlices.
 * - Kubernetes: three Pods bound to the data plane's Node (spec.nodeName;
 *   there is no kubelet, so the bench writes each Pod's status through the
 *   /status subresource as admin, as a kubelet would: phase Running, podIP =
 *   a test host's address, Ready True), selected by a normal Service `pods`,
 *   published by kube-controller-manager's endpointslice-controller.
 * - The same kube-proxy routes both; the same consumer (src/dev/consumer.ts
 *   in the node namespace, new connections to the Service's ClusterIP by its
 *   DNS name, about 250 a second) records which backend served each one.
 *
 * "Dies" is a readiness loss while the backend's port keeps serving, so that
 * the last connection it served can be seen (a killed process refuses them
 * instead; test/integration/dataplane/traffic.test.ts measures that):
 * Roster's backend starts failing its health check (/healthz answers 503),
 * the Pod's Ready condition is flipped to False. Per round and path, from
 * that moment t0:
 * - detection: Roster, until the engine judged the threshold-crossing probe
 *   (`operator.engine.summary(id).since`; at most interval × failureThreshold
 *   after t0); the pod path has none (the Ready flip is the detection: a
 *   kubelet's readiness probe would add its own period × threshold);
 * - publication: from detection (Roster) or from the start of the status
 *   patch (pods) until a separate watcher sees the endpoint leave the
 *   EndpointSlices' ready set;
 * - programming: from then until the last new connection the dead backend
 *   served (kube-proxy's watch, its sync (minimum 1 s apart) and nft);
 * - total: t0 until that last connection.
 * A round starts once no EndpointSlice changed for 4 s (`--quiet-ms`):
 * kube-proxy rate-limits its syncs (--min-sync-period 1 s, with a small
 * burst), so a change that follows others closely waits, in a cluster whose
 * endpoints change often, on either path. Roster's rounds get such a gap
 * anyway (its detection), the pod path's would not: with 1.5 s the pod
 * path's programming was bimodal (0–40 ms after a Roster round, 70–365 ms
 * after a pod round); with 4 s both paths see an unthrottled kube-proxy. A round ends once 100 connections in a row went
 * elsewhere; the backend is then made ready again and the next round waits
 * until all three serve.
 * Rounds alternate between the paths (each path's victim rotates) so that
 * both see the same machine load. The ratio Roster/Kubernetes compares the
 * totals and, apart, publication + programming.
 *
 *   node bench/dataplane.bench.ts             # 20 rounds per path (~7 min), as root
 *   node bench/dataplane.bench.ts --quick     # 5 rounds per path
 *   options: --rounds N --interval 1s --failure-threshold 2 --quiet-ms 4000
 *
 * Needs root, network namespaces, `ip`, `nft` and bin/roster-coredns;
 * without them it says why and exits 0 (so `make bench` goes on).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { parseDuration } from "../src/api/index.ts";
import { parseConfig } from "../src/config/index.ts";
import { installCrds } from "../src/dev/crds.ts";
import { startSandbox } from "../src/dev/sandbox.ts";
import {
  type Backend,
  type Consumer,
  dataPlaneUnsupported,
  readDataPlane,
  TestHosts,
} from "../src/dev/testhosts.ts";
import { createLogger, kubeClient } from "../src/kube/index.ts";
import { createOperator } from "../src/operator/operator.ts";
import { operatorSettings } from "../src/operator/settings.ts";
import { createNamespace, until, watch } from "./lib.ts";
import { peerControllers } from "./peer.bench.ts";
import { type Figure, report } from "./report.ts";
import { distribution } from "./setup.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    interval: { type: "string", default: "1s" },
    "failure-threshold": { type: "string", default: "2" },
    "quiet-ms": { type: "string", default: "4000" },
  },
});
const ROUNDS = Number(values.rounds ?? (values.quick ? 5 : 20));
const INTERVAL = values.interval;
const FAILURE_THRESHOLD = Number(values["failure-threshold"]);
const PORT = 8080;
const BACKENDS = 3;
/** Connections in a row that did not reach the dead backend: (2/3)^100 ≈ 2e-18 if it were still routed. */
const ELSEWHERE = 100;
/** No EndpointSlice change for this long before a round's t0 (see above: kube-proxy's sync rate limit). */
const QUIET_MS = Number(values["quiet-ms"]);

const unsupported = dataPlaneUnsupported();
if (unsupported) {
  console.log(`dataplane bench skipped: ${unsupported}`);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), "roster-bench-dp-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
const sandbox = await startSandbox({
  dir: join(dir, "sandbox"),
  dataPlane: true,
  controllers: peerControllers,
});
const kc = new KubeConfig();
kc.loadFromFile(sandbox.kubeconfigPath);
await installCrds(kc);
const plane = readDataPlane(sandbox.kubeconfigPath);
if (!plane) throw new Error("the sandbox started with --data-plane but no data plane is running");
const hosts = TestHosts.open(plane);
const ns = "dp-bench";
await createNamespace(kc, ns);
const core = kc.makeApiClient(CoreV1Api);
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const client = kubeClient(kc);

// --- Roster's side --------------------------------------------------------------------------
const operator = createOperator({
  kubeConfig: kc,
  namespaces: [ns],
  settings: operatorSettings(parseConfig("")),
  probing: { destinations: { allow: [plane.subnet4, plane.subnet6] } },
  leaderElection: { enabled: false, namespace: ns, name: "roster-bench" },
  healthPort: 0,
  metricsPort: 0,
  concurrency: { default: 4 },
  logger: createLogger({ level: "warn", name: "roster" }),
});
const web: Backend[] = [];
for (let i = 1; i <= BACKENDS; i++) {
  const host = await hosts.host();
  web.push(await host.start({ id: `web-${i}`, http: [PORT] }));
  await client.request({
    method: "POST",
    path: `/apis/roster.dev/v1alpha1/namespaces/${ns}/serviceinstances`,
    body: {
      apiVersion: "roster.dev/v1alpha1",
      kind: "ServiceInstance",
      metadata: { name: `web-${i}` },
      spec: {
        service: "web",
        address: host.ipv4,
        ports: [{ name: "http", port: PORT }],
        healthCheck: {
          probes: [{ type: "http", http: { port: "http", path: "/healthz" } }],
          interval: INTERVAL,
          timeout: "500ms",
          failureThreshold: FAILURE_THRESHOLD,
          successThreshold: 1,
          jitter: 0,
        },
      },
    },
  });
}
await operator.start();

// --- Kubernetes' side: Pods on the data plane's Node, a selector Service -----------------------
const pods: Backend[] = [];
const podReady = (name: string, ip: string, ready: boolean) =>
  core.patchNamespacedPodStatus(
    {
      namespace: ns,
      name,
      body: {
        status: {
          phase: "Running",
          podIP: ip,
          podIPs: [{ ip }],
          conditions: [
            { type: "Ready", status: ready ? "True" : "False" },
            { type: "ContainersReady", status: ready ? "True" : "False" },
          ],
        },
      },
    },
    merge,
  );
await core.createNamespacedService({
  namespace: ns,
  body: {
    metadata: { name: "pods" },
    spec: { selector: { app: "bench-pods" }, ports: [{ name: "http", port: PORT, targetPort: PORT }] },
  },
});
for (let i = 1; i <= BACKENDS; i++) {
  const host = await hosts.host();
  pods.push(await host.start({ id: `pod-${i}`, http: [PORT] }));
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: `pod-${i}`, labels: { app: "bench-pods" } },
      spec: {
        nodeName: plane.nodeName,
        containers: [{ name: "backend", image: "registry.invalid/none", ports: [{ containerPort: PORT }] }],
      },
    },
  });
  await podReady(`pod-${i}`, host.ipv4, true);
}

/** When the watcher last saw any EndpointSlice change (kube-proxy syncs on each, at most once a second). */
let lastSliceChange = Date.now();
const watched = await watch(kc, ns, {
  onEvent: (resource) => {
    if (resource === "endpointslices") lastSliceChange = Date.now();
  },
});
await until("both Services' slices to hold their three ready endpoints", 60_000, () =>
  [...web, ...pods].every((b) => (watched.sliceEntered.get(b.host.ipv4) ?? 0) > 0),
);

// --- rounds -----------------------------------------------------------------------------------
interface Path {
  name: "roster" | "kubernetes";
  service: string;
  backends: Backend[];
  /** Takes the victim's readiness away; resolves to t0 (just before). */
  kill(b: Backend): Promise<number>;
  revive(b: Backend): Promise<void>;
  /** When the loss was detected (Roster: the engine's verdict time; pods: t0). */
  detectedAt(b: Backend, t0: number): number;
}

const roster: Path = {
  name: "roster",
  service: "web",
  backends: web,
  async kill(b) {
    const t0 = Date.now();
    b.setHealth("failing");
    return t0;
  },
  async revive(b) {
    b.setHealth("healthy");
  },
  detectedAt: (b) => operator.engine.summary(`${ns}/${b.id}`)?.since ?? Number.NaN,
};
const kubernetes: Path = {
  name: "kubernetes",
  service: "pods",
  backends: pods,
  async kill(b) {
    const t0 = Date.now();
    await podReady(b.id, b.host.ipv4, false);
    return t0;
  },
  async revive(b) {
    await podReady(b.id, b.host.ipv4, true);
  },
  detectedAt: (_b, t0) => t0,
};

interface Sample {
  path: string;
  victim: string;
  totalMs: number;
  detectionMs: number;
  publicationMs: number;
  programmingMs: number;
  /** Connections the dead backend served after t0. */
  servedAfter: number;
}

function consumer(path: Path): Consumer {
  return hosts.consumer({
    name: `${path.service}.${ns}.svc.cluster.local`,
    port: PORT,
    http: true,
    concurrency: 2,
    intervalMs: 5,
  });
}

async function round(path: Path, victim: Backend): Promise<Sample> {
  const live = consumer(path);
  try {
    // kube-proxy routes to all three once each has served a connection.
    await until(`${path.name}: traffic on all three`, 30_000, () => {
      const seen = new Set(live.lines.map((l) => l.id));
      return path.backends.every((b) => seen.has(b.id));
    });
    // kube-proxy rate-limits its syncs: start both paths' rounds after a
    // quiet spell so neither pays for the previous round's changes.
    await until(
      "no EndpointSlice change for a while",
      30_000,
      () => Date.now() - lastSliceChange >= QUIET_MS,
    );
    const from = live.lines.length;
    const t0 = await path.kill(victim);
    const address = victim.host.ipv4;
    await until(`${path.name}: ${victim.id} out of the ready endpoints`, 30_000, () => {
      return (watched.sliceLeft.get(address) ?? 0) >= t0;
    });
    const published = watched.sliceLeft.get(address)!;
    await until(`${path.name}: ${ELSEWHERE} connections in a row elsewhere`, 30_000, () => {
      const lines = live.lines;
      let n = 0;
      for (let i = lines.length - 1; i >= from && lines[i]!.id !== victim.id; i--) if (lines[i]!.id) n++;
      return n >= ELSEWHERE && (lines.at(-1)?.t ?? 0) > published;
    });
    const served = live.lines.slice(from).filter((l) => l.id === victim.id && l.t >= t0);
    const last = served.at(-1)?.t ?? t0;
    const detected = path.detectedAt(victim, t0);
    const sample = {
      path: path.name,
      victim: victim.id,
      totalMs: last - t0,
      detectionMs: detected - t0,
      publicationMs: published - detected,
      programmingMs: last - published,
      servedAfter: served.length,
    };
    const errors = live.lines.slice(from).filter((l) => l.err).length;
    if (errors > 0) console.log(`  ${path.name}: ${errors} connections failed in the round`);
    return sample;
  } finally {
    await live.stop();
    const revived = Date.now();
    await path.revive(victim);
    await until(`${path.name}: ${victim.id} ready again`, 30_000, () => {
      return (watched.sliceEntered.get(victim.host.ipv4) ?? 0) >= revived;
    });
  }
}

const samples: Sample[] = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const path of r % 2 === 0 ? [roster, kubernetes] : [kubernetes, roster]) {
    const s = await round(path, path.backends[r % BACKENDS]!);
    samples.push(s);
    console.log(
      `  round ${r + 1}/${ROUNDS} ${s.path.padEnd(10)} ${s.victim}: total ${s.totalMs} ms = detection ${s.detectionMs} + publication ${s.publicationMs} + programming ${s.programmingMs} (${s.servedAfter} served after t0)`,
    );
  }
}
watched.stop();
await operator.stop();
await hosts.close();
await sandbox.stop();

// --- figures ----------------------------------------------------------------------------------
const of = (path: string, f: (s: Sample) => number) => samples.filter((s) => s.path === path).map(f);
const figures: Figure[] = [];
const stats: Record<string, Record<string, { p50: number; p99: number; max: number }>> = {};
const parts: [string, (s: Sample) => number][] = [
  ["dies → last new connection served by it", (s) => s.totalMs],
  ["detection", (s) => s.detectionMs],
  ["publication", (s) => s.publicationMs],
  ["kube-proxy programming", (s) => s.programmingMs],
  ["publication + programming", (s) => s.publicationMs + s.programmingMs],
];
for (const path of ["roster", "kubernetes"]) {
  stats[path] = {};
  for (const [what, f] of parts) {
    if (path === "kubernetes" && what === "detection") continue;
    const d = distribution(of(path, f));
    stats[path]![what] = d;
    figures.push(
      { name: `${path}: ${what} p50`, value: d.p50, unit: "ms" },
      { name: `${path}: ${what} p99`, value: d.p99, unit: "ms" },
    );
  }
}
figures.push({
  name: "roster: detection bound (interval × failureThreshold)",
  value: parseDuration(INTERVAL) * FAILURE_THRESHOLD,
  unit: "ms",
});
for (const what of ["dies → last new connection served by it", "publication + programming"]) {
  for (const p of ["p50", "p99"] as const) {
    figures.push({
      name: `ratio roster/kubernetes: ${what} ${p}`,
      value: stats.roster![what]![p] / stats.kubernetes![what]![p],
      unit: "×",
    });
  }
}
report("dataplane", figures, {
  rounds: ROUNDS,
  backendsPerPath: BACKENDS,
  healthCheck: {
    interval: INTERVAL,
    timeout: "500ms",
    failureThreshold: FAILURE_THRESHOLD,
    successThreshold: 1,
  },
  consumer: { concurrency: 2, intervalMs: 5, roundEndsAfter: ELSEWHERE },
  quietBeforeRoundMs: QUIET_MS,
  note: "t0: Roster backend starts failing /healthz, or the Pod's Ready is patched False; the backend keeps serving; detection (Roster) = engine verdict time − t0; publication = watcher sees the endpoint leave the ready set − detection; programming = last connection it served − publication",
  samples,
});
process.exit(0);
