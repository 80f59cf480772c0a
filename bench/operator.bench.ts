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
 * - RSS of this process (the operator, plus the watcher and the bench's own
 *   bookkeeping; the target servers run in a child process) once published,
 *   and after the flips;
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
 *
 *   node bench/operator.bench.ts            # 1,000 × 10, several minutes
 *   node bench/operator.bench.ts --quick    # 100 × 10
 *   options: --services N --instances M --flips K --interval 5s --no-policies
 *            --concurrency C (reconciles per controller, default 4 as in the config)
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1EndpointSlice,
  Watch,
} from "@kubernetes/client-node";
import { DefaultPolicy } from "../src/config/schema.ts";
import { installCrds } from "../src/dev/crds.ts";
import { startSandbox } from "../src/dev/sandbox.ts";
import { createLogger, type LogLevel } from "../src/kube/log.ts";
import { createOperator, type Operator } from "../src/operator/operator.ts";
import { apiserverMetrics, benchAddress, pool, until } from "./lib.ts";
import { type Figure, percentile, report } from "./report.ts";

const HOSTS = Array.from({ length: 20 }, (_, i) => `127.0.2.${i + 1}`);

// --- child: the probe targets ---------------------------------------------------

type ServerMessage = { fail: number[] } | { heal: number[] };

async function serve(): Promise<void> {
  const failing = new Set<number>();
  const servers: Server[] = [];
  let port = 0;
  for (const host of HOSTS) {
    const server = createServer((req, res) => {
      const id = Number(req.url?.slice(3));
      const ok = !failing.has(id);
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain", "content-length": "2" });
      res.end(ok ? "ok" : "no");
    });
    server.keepAliveTimeout = 65_000;
    port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port, host, backlog: 4096 }, () => {
        const a = server.address();
        resolve(typeof a === "object" && a ? a.port : 0);
      });
    });
    servers.push(server);
  }
  process.on("message", (m: ServerMessage) => {
    if ("fail" in m) for (const id of m.fail) failing.add(id);
    else for (const id of m.heal) failing.delete(id);
    process.send?.({ ack: true });
  });
  process.send?.({ port });
}

function startServers(): Promise<{
  child: ChildProcess;
  port: number;
  send(m: ServerMessage): Promise<void>;
}> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("message", (m: { port: number }) => {
      resolve({
        child,
        port: m.port,
        send: (msg) =>
          new Promise<void>((done) => {
            child.once("message", () => done());
            child.send(msg);
          }),
      });
    });
  });
}

// --- child: the operator ----------------------------------------------------------
// In its own process, so that its RSS is the operator's alone.

type OperatorRequest =
  | { op: "start"; kubeconfig: string; namespace: string; concurrency: number }
  | { op: "stats" }
  | { op: "since"; ids: string[] }
  | { op: "stop" };

async function runOperator(): Promise<void> {
  let operator: Operator | undefined;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const answer = async (req: OperatorRequest): Promise<unknown> => {
    switch (req.op) {
      case "start": {
        const kc = new KubeConfig();
        kc.loadFromFile(req.kubeconfig);
        operator = createOperator({
          kubeConfig: kc,
          namespaces: [req.namespace],
          settings: {
            defaults: DefaultPolicy.parse({}),
            batchWindowMs: 20,
            startupHoldMs: 30_000,
            probeSecrets: false,
          },
          probing: { destinations: { allowLoopback: true }, maxConcurrent: 512, maxPerHost: 16 },
          leaderElection: { enabled: false, namespace: "default", name: "unused" },
          concurrency: { default: req.concurrency },
          // ROSTER_BENCH_LOG=info (or debug) shows the operator's logs on stderr.
          logger: process.env.ROSTER_BENCH_LOG
            ? createLogger({ level: process.env.ROSTER_BENCH_LOG as LogLevel })
            : undefined,
        });
        const startedAt = Date.now();
        await operator.start();
        return startedAt;
      }
      case "stats": {
        const op = operator!;
        const depth: Record<string, number> = {};
        const gauge = op.manager.metrics.registry.getSingleMetric("workqueue_depth");
        for (const v of gauge ? (await gauge.get()).values : []) {
          const c = String(v.labels.controller ?? v.labels.name);
          depth[c] = (depth[c] ?? 0) + v.value;
        }
        const cpu = process.cpuUsage();
        const eld = { p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 };
        delay.reset();
        let writes = 0;
        for (const v of (await op.manager.metrics.restRequests.get()).values) {
          if (v.labels.method !== "GET") writes += v.value;
        }
        const metric = op.manager.metrics.registry.getSingleMetric("roster_verdict_transitions_total");
        const transitions = (metric ? (await metric.get()).values : []).reduce((n, v) => n + v.value, 0);
        const m = process.memoryUsage();
        return {
          writes,
          transitions,
          rssMiB: m.rss / 2 ** 20,
          heapMiB: m.heapUsed / 2 ** 20,
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          eld,
          depth,
          engine: op.engine.stats(),
        };
      }
      case "since":
        return req.ids.map((id) => operator!.engine.summary(id)?.since ?? Number.NaN);
      case "stop":
        await operator?.stop();
        setImmediate(() => process.exit(0));
        return true;
    }
  };
  process.on("message", (m: { id: number; req: OperatorRequest }) => {
    answer(m.req).then(
      (value) => process.send?.({ id: m.id, value }),
      (err: unknown) => process.send?.({ id: m.id, error: String(err) }),
    );
  });
  process.send?.({ ready: true });
}

interface OperatorStats {
  writes: number;
  transitions: number;
  rssMiB: number;
  heapMiB: number;
  cpuSeconds: number;
  /** Event-loop delay since the previous stats call, ms. */
  eld: { p99: number; max: number };
  /** Work-queue depth per controller. */
  depth: Record<string, number>;
  engine: { probes: number; inFlight: number; queued: number; skippedSlots: number };
}

interface OperatorProcess {
  child: ChildProcess;
  call<T>(req: OperatorRequest): Promise<T>;
}

function startOperatorProcess(): Promise<OperatorProcess> {
  const child = fork(fileURLToPath(import.meta.url), ["--operator"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let seq = 0;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on("message", (m: { id?: number; value?: unknown; error?: string }) => {
    const p = m.id === undefined ? undefined : pending.get(m.id);
    if (!p) return;
    pending.delete(m.id!);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve(m.value);
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("message", () =>
      resolve({
        child,
        call<T>(req: OperatorRequest) {
          const id = seq++;
          return new Promise<T>((res, rej) => {
            pending.set(id, { resolve: (v) => res(v as T), reject: rej });
            child.send({ id, req });
          });
        },
      }),
    );
  });
}

// --- the separate watcher ---------------------------------------------------------

interface Watched {
  /** Ready endpoints per service across its slices. */
  sliceReady: Map<string, number>;
  /** Ready endpoints per service in its ConfigMap. */
  mapReady: Map<string, number>;
  /** address → when it last entered / left a slice's ready set. */
  entered: Map<string, number>;
  left: Map<string, number>;
  /** Watch events (effective writes) per resource. */
  events: Record<string, number>;
  stop(): void;
}

async function watchAll(kc: KubeConfig, ns: string): Promise<Watched> {
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const w: Watched = {
    sliceReady: new Map(),
    mapReady: new Map(),
    entered: new Map(),
    left: new Map(),
    events: {},
    stop: () => undefined,
  };
  const sliceSets = new Map<string, Set<string>>();
  const mapCounts = new Map<string, number>();
  const controllers = new Set<AbortController>();
  const watch = new Watch(kc);
  let stopping = false;

  type Item = { metadata?: { name?: string; resourceVersion?: string } };
  interface Followed {
    resource: string;
    path: string;
    labelSelector?: string;
    list(): Promise<{ items: Item[]; metadata?: { resourceVersion?: string } }>;
    /** Keeps state from objects (slices, ConfigMaps); the others are only counted. */
    apply?(type: string, obj: never): void;
  }

  /**
   * List, then watch from the list's resourceVersion; resume from the last
   * resourceVersion seen when the watch ends (client-node ends a watch after
   * 30 s without data), and list again when that is too old. A relist
   * replays the differences as events (not counted as writes).
   */
  const follow = async (f: Followed, known = new Map<string, Item>()) => {
    const relist = async () => {
      const list = await f.list();
      const names = new Set<string>();
      for (const item of list.items) {
        const name = item.metadata!.name!;
        names.add(name);
        const old = known.get(name);
        if (old?.metadata?.resourceVersion !== item.metadata?.resourceVersion)
          f.apply?.(old ? "MODIFIED" : "ADDED", item as never);
        known.set(name, item);
      }
      for (const [name, old] of known) {
        if (names.has(name)) continue;
        known.delete(name);
        f.apply?.("DELETED", old as never);
      }
      return list.metadata?.resourceVersion;
    };
    let rv = await relist();
    const start = async (): Promise<void> => {
      let controller: AbortController | undefined;
      controller = await watch.watch(
        f.path,
        { resourceVersion: rv, allowWatchBookmarks: true, labelSelector: f.labelSelector },
        (type, obj: Item & { code?: number }) => {
          if (type === "ERROR") {
            rv = undefined; // expired: list again
            return;
          }
          rv = obj.metadata?.resourceVersion ?? rv;
          if (type === "BOOKMARK") return;
          w.events[f.resource] = (w.events[f.resource] ?? 0) + 1;
          const name = obj.metadata!.name!;
          if (type === "DELETED") known.delete(name);
          else if (f.apply) known.set(name, obj);
          f.apply?.(type, obj as never);
        },
        () => {
          if (controller) controllers.delete(controller);
          if (stopping) return;
          void (async () => {
            if (rv === undefined) rv = await relist();
            await start();
          })().catch((err: unknown) => console.error(`${f.resource} watch failed: ${err}`));
        },
      );
      controllers.add(controller);
    };
    await start();
  };

  const onSlice = (type: string, s: V1EndpointSlice) => {
    const now = Date.now();
    const name = s.metadata!.name!;
    const svc = s.metadata!.labels?.["kubernetes.io/service-name"] ?? "";
    const before = sliceSets.get(name) ?? new Set<string>();
    const after = new Set<string>(
      type === "DELETED"
        ? []
        : (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
    );
    for (const a of after) if (!before.has(a)) w.entered.set(a, now);
    for (const a of before) if (!after.has(a)) w.left.set(a, now);
    sliceSets.set(name, after);
    w.sliceReady.set(svc, (w.sliceReady.get(svc) ?? 0) + after.size - before.size);
  };
  const onConfigMap = (type: string, cm: V1ConfigMap) => {
    const svc = cm.metadata!.labels?.["roster.dev/service"] ?? "";
    const name = cm.metadata!.name!;
    let ready = 0;
    if (type !== "DELETED") {
      const doc = JSON.parse(cm.data?.["endpoints.json"] ?? "{}") as { endpoints?: { ready: boolean }[] };
      ready = (doc.endpoints ?? []).filter((e) => e.ready).length;
    }
    w.mapReady.set(svc, (w.mapReady.get(svc) ?? 0) + ready - (mapCounts.get(name) ?? 0));
    mapCounts.set(name, ready);
  };

  const sliceSelector = "endpointslice.kubernetes.io/managed-by=roster.dev";
  await follow({
    resource: "endpointslices",
    path: `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
    labelSelector: sliceSelector,
    list: () => discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: sliceSelector }),
    apply: onSlice,
  });
  const mapSelector = "app.kubernetes.io/managed-by=roster.dev";
  await follow({
    resource: "configmaps",
    path: `/api/v1/namespaces/${ns}/configmaps`,
    labelSelector: mapSelector,
    list: () => core.listNamespacedConfigMap({ namespace: ns, labelSelector: mapSelector }),
    apply: onConfigMap,
  });
  // The rest is counted only: watched from "now" (the resourceVersion of a one-item list).
  const now = (items: Promise<{ metadata?: { resourceVersion?: string } }>) => async () => ({
    items: [],
    metadata: (await items).metadata,
  });
  for (const plural of ["serviceinstances", "discoverypolicies"]) {
    await follow({
      resource: plural,
      path: `/apis/roster.dev/v1alpha1/namespaces/${ns}/${plural}`,
      list: () =>
        now(
          custom.listNamespacedCustomObject({
            group: "roster.dev",
            version: "v1alpha1",
            namespace: ns,
            plural,
            limit: 1,
          }) as Promise<{ metadata?: { resourceVersion?: string } }>,
        )(),
    });
  }
  await follow({
    resource: "services",
    path: `/api/v1/namespaces/${ns}/services`,
    list: () => now(core.listNamespacedService({ namespace: ns, limit: 1 }))(),
  });
  const eventsApi = kc.makeApiClient(EventsV1Api);
  await follow({
    resource: "events",
    path: `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
    list: () => now(eventsApi.listNamespacedEvent({ namespace: ns, limit: 1 }))(),
  });
  w.stop = () => {
    stopping = true;
    for (const c of controllers) c.abort();
  };
  return w;
}

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

// --- main ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      services: { type: "string" },
      instances: { type: "string", default: "10" },
      flips: { type: "string" },
      interval: { type: "string" },
      "no-policies": { type: "boolean", default: false },
      concurrency: { type: "string", default: "4" },
      serve: { type: "boolean", default: false },
      operator: { type: "boolean", default: false },
    },
  });
  if (args.serve) return serve();
  if (args.operator) return runOperator();
  const S = Number(args.services ?? (args.quick ? 100 : 1000));
  const M = Number(args.instances);
  const K = Math.min(S, Number(args.flips ?? (args.quick ? 50 : 200)));
  const interval = args.interval ?? (args.quick ? "2s" : "5s");
  const policies = !args["no-policies"];
  const name = `operator${args.quick ? "-quick" : ""}${args.concurrency !== "4" ? `-c${args.concurrency}` : ""}`;
  console.log(
    `${S} services × ${M} instances, interval ${interval}, ${policies ? "with" : "without"} policies`,
  );

  const dir = mkdtempSync(join(tmpdir(), "roster-bench-"));
  // The sandbox's service range (10.0.0.0/24) holds 253 ClusterIPs; every service needs one.
  const sandbox = await startSandbox({
    dir: join(dir, "sandbox"),
    apiserverArgs: ["--service-cluster-ip-range=10.0.0.0/16"],
  });
  const servers = await startServers();
  let operator: OperatorProcess | undefined;
  let watched: Watched | undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(sandbox.kubeconfigPath);
    await installCrds(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const ns = "bench";
    await core.createNamespace({ body: { metadata: { name: ns } } });

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
    const total = S * M;
    await pool(
      Array.from({ length: total }, (_, i) => i),
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
              service: svc(Math.floor(i / M)),
              address: benchAddress(i),
              ports: [{ name: "http", port: servers.port }],
              healthCheck: {
                probes: [
                  { type: "http", http: { host: HOSTS[i % HOSTS.length], port: "http", path: `/h/${i}` } },
                ],
                interval,
                timeout: "1s",
                failureThreshold: 2,
                successThreshold: 1,
                jitter: 10,
              },
            },
          },
        }),
    );
    const createSeconds = (Date.now() - createdAt) / 1000;
    console.log(`created ${total} instances in ${createSeconds.toFixed(1)} s`);

    watched = await watchAll(kc, ns);
    const w = watched;
    operator = await startOperatorProcess();
    const op = operator;
    const stats = () => op.call<OperatorStats>({ op: "stats" });
    const startedAt = await op.call<number>({
      op: "start",
      kubeconfig: sandbox.kubeconfigPath,
      namespace: ns,
      concurrency: Number(args.concurrency),
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
    let settled = (await stats()).writes;
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      const now = (await stats()).writes;
      if (now === settled) break;
      settled = now;
    }
    const startupWrites = settled;
    const published = await stats();
    console.log(
      `settled after ${((Date.now() - startedAt) / 1000).toFixed(1)} s, ${startupWrites} write requests`,
    );

    // Flips: instance 0 of K services fails, then recovers.
    const flipped = Array.from({ length: K }, (_, k) => Math.floor((k * S) / K) * M);
    const before = await stats();
    const bucketsBefore = await sliceWriteBuckets(kc);
    const events0 = { ...w.events };
    const latency: { down: number[]; up: number[] } = { down: [], up: [] };
    const detect: number[] = [];
    const thresholdMs = 2 * Number.parseFloat(interval) * 1000;
    // A sample of the operator's state every second during the flips.
    const samples: OperatorStats[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await stats());
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    for (const direction of ["down", "up"] as const) {
      const flipAt = Date.now();
      await servers.send(direction === "down" ? { fail: flipped } : { heal: flipped });
      const seen = direction === "down" ? w.left : w.entered;
      await until(`${K} endpoints to go ${direction}`, thresholdMs * 3 + 30_000, () =>
        flipped.every((i) => (seen.get(benchAddress(i)) ?? 0) > flipAt),
      );
      const since = await op.call<number[]>({ op: "since", ids: flipped.map((i) => `${ns}/i-${i}`) });
      for (const [k, i] of flipped.entries()) {
        latency[direction].push(seen.get(benchAddress(i))! - since[k]!);
        detect.push(since[k]! - flipAt);
      }
    }
    // The slice writes are in; let the status, Event and policy writes land too.
    await new Promise((r) => setTimeout(r, 3000));
    sampling = false;
    await sampler;
    const busy = samples.slice(1).map((x, i) => ({
      cores: x.cpuSeconds - samples[i]!.cpuSeconds,
      eldP99: x.eld.p99,
      eldMax: x.eld.max,
      depth: x.depth,
    }));
    const after = await stats();
    const apiserverSliceWrites = slowerThan(await sliceWriteBuckets(kc), bucketsBefore);
    const flipWrites = after.writes - before.writes;
    const flipTransitions = after.transitions - before.transitions;
    const byResource = Object.fromEntries(
      Object.entries(w.events).map(([k, v]) => [k, (v - (events0[k] ?? 0)) / flipTransitions]),
    );
    const observed = Object.values(byResource).reduce((a, b) => a + b, 0);
    const both = ms([...latency.down, ...latency.up]);
    const floor = ms(await writeWatchFloor(kc, 100));

    const figures: Figure[] = [
      { name: "instances", value: total, unit: "" },
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
      concurrency: Number(args.concurrency),
      flips: K,
      createSeconds,
      effectiveWritesPerTransitionByResource: byResource,
      apiserverSliceWrites,
      samplesDuringFlips: busy.map(({ cores, eldP99, eldMax, depth }) => ({ cores, eldP99, eldMax, depth })),
      latencyDown: { p50: percentile(ms(latency.down), 50), p99: percentile(ms(latency.down), 99) },
      latencyUp: { p50: percentile(ms(latency.up), 50), p99: percentile(ms(latency.up), 99) },
      method:
        "latency = watcher's Date.now() at the slice event − engine summary `since` (the transition time); writes = operator client non-GET requests over the flip phase / verdict transitions",
    });
  } finally {
    watched?.stop();
    await operator?.call({ op: "stop" }).catch(() => undefined);
    servers.child.kill();
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
