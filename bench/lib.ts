/**
 * Shared pieces of the scale suite (`suite.bench.ts`), the peer bench
 * (`peer.bench.ts`), the operator bench and the soak test: a private
 * sandbox, cheap loopback probe targets, the operator in a child process, an
 * independent watcher, and the API server's own request counters. What the
 * Roster benches set up on top (instances, replica groups) is in `setup.ts`.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, KubeConfig, Watch } from "@kubernetes/client-node";
import { installCrds } from "../src/dev/crds.ts";
import { type Sandbox, startSandbox } from "../src/dev/sandbox.ts";
import type { ChildLoad, ChildMemory, ChildRequest, ChildStart, ChildStats } from "./operator-child.ts";

const here = dirname(fileURLToPath(import.meta.url));

// --- cluster ----------------------------------------------------------------------

export interface BenchCluster {
  sandbox: Sandbox;
  kc: KubeConfig;
  /** `fast`: SIGKILL instead of the API server's graceful shutdown (seconds); its data is deleted anyway. */
  stop(fast?: boolean): Promise<void>;
}

/**
 * A private sandbox with Roster's CRDs. The Service IP range is widened to a
 * /16: the sandbox's default /24 holds only ~250 Services, and Roster
 * publishes one Service per logical service (5,000 in the largest scenario).
 */
export async function startCluster(controllers?: string[]): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), "roster-bench-"));
  const sandbox = await startSandbox({
    dir: join(dir, "sandbox"),
    controllers,
    apiserverArgs: ["--service-cluster-ip-range=10.0.0.0/16"],
  });
  // Interrupted (Ctrl-C, `timeout`): exit through the exit hooks, which kill
  // the sandbox, and remove its data.
  const onExit = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", onExit);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
  const kc = new KubeConfig();
  kc.loadFromFile(sandbox.kubeconfigPath);
  await installCrds(kc);
  return {
    sandbox,
    kc,
    async stop(fast = false) {
      if (fast) {
        try {
          process.kill(sandbox.pid, "SIGKILL");
        } catch {} // already gone
      }
      await sandbox.stop();
      process.off("exit", onExit);
      onExit();
    },
  };
}

export async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

// --- probe targets ----------------------------------------------------------------

export interface Targets {
  port: number;
  hosts: string[];
  /** `/h/<id>` answers 503 for these ids, 200 otherwise. */
  failing: Set<number>;
  /** id → when its first 503 was served (kept until the caller deletes it). */
  failedAt: Map<number, number>;
  close(): Promise<void>;
}

/**
 * One HTTP server per loopback host, all on one port; every instance has its
 * own path, so single instances can fail while the servers stay few and
 * cheap (keep-alive connections, a two-byte body).
 */
export async function startTargets(
  hostCount: number | string[],
  prefix = "127.0.3",
  firstPort = 0,
): Promise<Targets> {
  const hosts =
    typeof hostCount === "number"
      ? Array.from({ length: hostCount }, (_, i) => `${prefix}.${i + 1}`)
      : hostCount;
  const failing = new Set<number>();
  const failedAt = new Map<number, number>();
  const servers: Server[] = [];
  let port = firstPort;
  for (const host of hosts) {
    const server = createServer((req, res) => {
      const id = Number(req.url?.slice(3));
      const ok = !failing.has(id);
      if (!ok && !failedAt.has(id)) failedAt.set(id, Date.now());
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain", "content-length": "2" });
      res.end(ok ? "ok" : "no");
    });
    server.keepAliveTimeout = 65_000;
    port = await new Promise<number>((done, fail) => {
      server.once("error", fail);
      server.listen({ port, host, backlog: 4096 }, () => {
        const a = server.address();
        done(typeof a === "object" && a ? a.port : 0);
      });
    });
    servers.push(server);
  }
  return {
    port,
    hosts,
    failing,
    failedAt,
    close: () =>
      Promise.all(
        servers.map((s) => {
          s.closeAllConnections();
          return new Promise((r) => s.close(r));
        }),
      ).then(() => undefined),
  };
}

// --- the operator in a child process ------------------------------------------------

export interface OperatorProcess {
  child: ChildProcess;
  start(options: Omit<ChildStart, "op">): Promise<number>;
  stats(): Promise<ChildStats>;
  since(ids: string[]): Promise<number[]>;
  ages(): Promise<number[]>;
  /** The operator's endpoint ports (metrics only when started with `metricsPort`). */
  ports(): Promise<{ health?: number; metrics?: number }>;
  /** Event-loop delay since the previous call, and work-queue depths. */
  load(): Promise<ChildLoad>;
  /** Memory breakdown; `gc` runs a full GC first (the child needs `--expose-gc`). */
  memory(gc?: boolean): Promise<ChildMemory>;
  /** Writes a heap snapshot; resolves to its path. */
  snapshot(path: string): Promise<string>;
  /** V8's sampling heap profiler: `true` starts it; `false` returns live allocations by site (MiB). */
  sampling(start: boolean): Promise<[string, number][]>;
  /** V8's CPU profiler: `start` starts it; with a path, stops it and writes the .cpuprofile there. */
  cpuProfile(path?: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `execArgv`: Node/V8 flags for the operator process (e.g. `--max-semi-space-size=16`);
 * `script`: another checkout's operator-child.ts (before/after comparisons).
 */
export function startOperatorProcess(
  execArgv: string[] = [],
  script = resolve(here, "operator-child.ts"),
): Promise<OperatorProcess> {
  const child = fork(script, [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: [...process.execArgv, ...execArgv],
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
  const call = <T>(req: ChildRequest) => {
    const id = seq++;
    return new Promise<T>((res, rej) => {
      pending.set(id, { resolve: (v) => res(v as T), reject: rej });
      child.send({ id, req });
    });
  };
  return new Promise((done, fail) => {
    child.once("error", fail);
    child.once("message", () =>
      done({
        child,
        start: (options) => call<number>({ op: "start", ...options }),
        stats: () => call<ChildStats>({ op: "stats" }),
        since: (ids) => call<number[]>({ op: "since", ids }),
        ages: () => call<number[]>({ op: "ages" }),
        ports: () => call<{ health?: number; metrics?: number }>({ op: "ports" }),
        load: () => call<ChildLoad>({ op: "load" }),
        memory: (gc) => call<ChildMemory>({ op: "memory", gc }),
        snapshot: (path) => call<string>({ op: "snapshot", path }),
        sampling: (start) => call<[string, number][]>({ op: "sampling", start }),
        cpuProfile: (path) => call<string>({ op: "cpuProfile", path }),
        async stop() {
          if (child.exitCode !== null) return;
          const exited = new Promise((r) => child.once("exit", r));
          await Promise.race([call({ op: "stop" }).catch(() => undefined), exited]);
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
          if (child.exitCode === null) child.kill("SIGKILL");
        },
      }),
    );
  });
}

// --- the API server's own counters ----------------------------------------------------

/** The API server's own /metrics text (Prometheus exposition format). */
export async function apiserverMetrics(kc: KubeConfig): Promise<string> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no current cluster");
  const url = new URL("/metrics", cluster.server);
  const opts: RequestOptions = { method: "GET", hostname: url.hostname, port: url.port, path: url.pathname };
  await kc.applyToHTTPSOptions(opts);
  return new Promise<string>((done, fail) => {
    const req = httpsRequest(opts, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => done(body));
    });
    req.on("error", fail);
    req.end();
  });
}

/** `apiserver_request_total` summed by "VERB resource[/subresource]". */
export async function apiserverRequests(kc: KubeConfig): Promise<Map<string, number>> {
  const text = await apiserverMetrics(kc);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const labels = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
    const value = Number(line.slice(line.lastIndexOf("}") + 1));
    const l = Object.fromEntries([...labels.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ""}`;
    out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}

export function diffCounts(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

const WRITE_VERBS = new Set(["POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"]);

/** Sum of write requests (by verb) whose key matches `resource` (e.g. "endpointslices"). */
export function writesTo(counts: Record<string, number>, resource?: string): number {
  let n = 0;
  for (const [k, v] of Object.entries(counts)) {
    const [verb, res] = k.split(" ");
    if (WRITE_VERBS.has(verb!) && (resource === undefined || res === resource)) n += v;
  }
  return n;
}

/**
 * Write requests to every resource except `excluded` ones (and their
 * subresources). Leases are always excluded: kube-controller-manager renews
 * its leader Lease every few seconds whatever happens.
 */
export function writesExcept(counts: Record<string, number>, excluded: string[] = []): number {
  let n = 0;
  for (const [k, v] of Object.entries(counts)) {
    const [verb, res] = k.split(" ");
    const base = res?.split("/")[0] ?? "";
    if (WRITE_VERBS.has(verb!) && base !== "leases" && !excluded.includes(base)) n += v;
  }
  return n;
}

// --- the independent watcher --------------------------------------------------------

interface Item {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
}

interface SliceLike extends Item {
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
}

interface ConfigMapLike extends Item {
  data?: Record<string, string>;
}

interface InstanceLike extends Item {
  status?: { healthy?: boolean };
}

export interface Watcher {
  /** Ready endpoints per service across its slices. */
  sliceReady: Map<string, number>;
  /** Ready endpoints per service in its ConfigMap. */
  mapReady: Map<string, number>;
  /** address → when it last entered / left a slice's (or ConfigMap's) ready set. */
  sliceEntered: Map<string, number>;
  sliceLeft: Map<string, number>;
  mapEntered: Map<string, number>;
  mapLeft: Map<string, number>;
  /** instance name → status.healthy, once written. */
  healthy: Map<string, boolean>;
  /** Watch events (effective writes) by resource, after the initial list. */
  events: Record<string, number>;
  stop(): void;
}

/**
 * Follows a namespace's EndpointSlices (with `sliceSelector`), and optionally
 * Roster's ConfigMaps and ServiceInstances: list, then watch from the list's
 * resourceVersion, resume where it stopped, list again when that is too old.
 * Timestamps are this process's Date.now() at delivery.
 */
export async function watch(
  kc: KubeConfig,
  ns: string,
  options: {
    sliceSelector?: string;
    configMaps?: boolean;
    instances?: boolean;
    /** Every change as it is applied (resource: "endpointslices", "configmaps", "serviceinstances"). */
    onEvent?: (resource: string, type: string, obj: unknown) => void;
    /** Resources only counted in `events`, from now on (no state kept). */
    count?: ("serviceinstances" | "discoverypolicies" | "services" | "events")[];
  } = {},
): Promise<Watcher> {
  const w: Watcher = {
    sliceReady: new Map(),
    mapReady: new Map(),
    sliceEntered: new Map(),
    sliceLeft: new Map(),
    mapEntered: new Map(),
    mapLeft: new Map(),
    healthy: new Map(),
    events: {},
    stop: () => undefined,
  };
  const controllers = new Set<AbortController>();
  const watcher = new Watch(kc);
  let stopping = false;

  const follow = async (
    resource: string,
    path: string,
    labelSelector: string | undefined,
    applyOwn: (type: string, obj: Item) => void,
    countOnly = false,
  ) => {
    const apply = (type: string, obj: Item) => {
      applyOwn(type, obj);
      options.onEvent?.(resource, type, obj);
    };
    const known = new Map<string, Item>();
    const list = async () => {
      // Counted only: watch from the resourceVersion of a one-item list.
      if (countOnly)
        return (await getJson<{ metadata?: { resourceVersion?: string } }>(kc, `${path}?limit=1`)).metadata
          ?.resourceVersion;
      const body = await getJson<{ items: Item[]; metadata?: { resourceVersion?: string } }>(
        kc,
        `${path}${labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : ""}`,
      );
      const names = new Set<string>();
      for (const item of body.items) {
        const name = item.metadata!.name!;
        names.add(name);
        const old = known.get(name);
        if (old?.metadata?.resourceVersion !== item.metadata?.resourceVersion)
          apply(old ? "MODIFIED" : "ADDED", item);
        known.set(name, item);
      }
      for (const [name, old] of known) {
        if (names.has(name)) continue;
        known.delete(name);
        apply("DELETED", old);
      }
      return body.metadata?.resourceVersion;
    };
    let rv = await list();
    const start = async (): Promise<void> => {
      let controller: AbortController | undefined;
      controller = await watcher.watch(
        path,
        { resourceVersion: rv, allowWatchBookmarks: true, labelSelector },
        (type, obj: Item) => {
          if (type === "ERROR") {
            rv = undefined;
            return;
          }
          rv = obj.metadata?.resourceVersion ?? rv;
          if (type === "BOOKMARK") return;
          w.events[resource] = (w.events[resource] ?? 0) + 1;
          if (countOnly) return;
          const name = obj.metadata!.name!;
          if (type === "DELETED") known.delete(name);
          else known.set(name, obj);
          apply(type, obj);
        },
        () => {
          if (controller) controllers.delete(controller);
          if (stopping) return;
          void (async () => {
            if (rv === undefined) rv = await list();
            await start();
          })().catch((err: unknown) => console.error(`${resource} watch failed: ${err}`));
        },
      );
      controllers.add(controller);
    };
    await start();
  };

  const readySets = (
    sets: Map<string, Set<string>>,
    perService: Map<string, number>,
    entered: Map<string, number>,
    left: Map<string, number>,
    name: string,
    svc: string,
    after: Set<string>,
  ) => {
    const now = Date.now();
    const before = sets.get(name) ?? new Set<string>();
    for (const a of after) if (!before.has(a)) entered.set(a, now);
    for (const a of before) if (!after.has(a)) left.set(a, now);
    sets.set(name, after);
    perService.set(svc, (perService.get(svc) ?? 0) + after.size - before.size);
  };

  const sliceSets = new Map<string, Set<string>>();
  await follow(
    "endpointslices",
    `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
    options.sliceSelector,
    (type, obj) => {
      const s = obj as SliceLike;
      const ready = new Set<string>(
        type === "DELETED"
          ? []
          : (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
      );
      const svc = s.metadata?.labels?.["kubernetes.io/service-name"] ?? "";
      readySets(sliceSets, w.sliceReady, w.sliceEntered, w.sliceLeft, s.metadata!.name!, svc, ready);
    },
  );
  if (options.configMaps) {
    const mapSets = new Map<string, Set<string>>();
    await follow(
      "configmaps",
      `/api/v1/namespaces/${ns}/configmaps`,
      "app.kubernetes.io/managed-by=roster.dev",
      (type, obj) => {
        const cm = obj as ConfigMapLike;
        let ready = new Set<string>();
        if (type !== "DELETED") {
          const doc = JSON.parse(cm.data?.["endpoints.json"] ?? "{}") as {
            endpoints?: { address: string; ready: boolean }[];
          };
          ready = new Set((doc.endpoints ?? []).filter((e) => e.ready).map((e) => e.address));
        }
        const svc = cm.metadata?.labels?.["roster.dev/service"] ?? "";
        readySets(mapSets, w.mapReady, w.mapEntered, w.mapLeft, cm.metadata!.name!, svc, ready);
      },
    );
  }
  if (options.instances) {
    await follow(
      "serviceinstances",
      `/apis/roster.dev/v1alpha1/namespaces/${ns}/serviceinstances`,
      undefined,
      (type, obj) => {
        const si = obj as InstanceLike;
        const name = si.metadata!.name!;
        if (type === "DELETED" || si.status?.healthy === undefined) w.healthy.delete(name);
        else w.healthy.set(name, si.status.healthy);
      },
    );
  }
  const counted = {
    serviceinstances: `/apis/roster.dev/v1alpha1/namespaces/${ns}/serviceinstances`,
    discoverypolicies: `/apis/roster.dev/v1alpha1/namespaces/${ns}/discoverypolicies`,
    services: `/api/v1/namespaces/${ns}/services`,
    events: `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
  };
  for (const resource of options.count ?? []) {
    await follow(resource, counted[resource], undefined, () => undefined, true);
  }
  w.stop = () => {
    stopping = true;
    for (const c of controllers) c.abort();
  };
  return w;
}

/** GET a JSON document from the API server with the kubeconfig's credentials. */
export async function getJson<T>(kc: KubeConfig, path: string): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no current cluster");
  const url = new URL(path, cluster.server);
  const opts: RequestOptions = {
    method: "GET",
    hostname: url.hostname,
    port: url.port,
    path: `${url.pathname}${url.search}`,
    headers: { accept: "application/json" },
  };
  await kc.applyToHTTPSOptions(opts);
  return new Promise<T>((done, fail) => {
    const req = httpsRequest(opts, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => {
        if ((res.statusCode ?? 500) >= 300) fail(new Error(`GET ${path}: ${res.statusCode} ${body}`));
        else done(JSON.parse(body) as T);
      });
    });
    req.on("error", fail);
    req.end();
  });
}

// --- helpers ----------------------------------------------------------------------

export async function until(what: string, timeoutMs: number, check: () => boolean): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
  return Date.now() - start;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function pool<T>(items: readonly T[], parallel: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export const sorted = (xs: number[]) => [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);

/** An address in 198.18.0.0/15 (the benchmarking range): valid in slices, never contacted. */
export function benchAddress(i: number, second = 18): string {
  return `198.${second}.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}
