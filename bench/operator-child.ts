/**
 * The operator in a process of its own, driven over IPC by the scale suite
 * and the peer bench (`bench/lib.ts` forks it), so that its CPU time and RSS
 * are the operator's alone: the probe targets, the watchers and the bench's
 * bookkeeping run in the parent.
 *
 * Requests: start, stats (CPU, memory, engine counters, API requests by verb,
 * transitions), since (the engine's verdict-change time of instances), ages
 * (how long ago every target was last probed), ports (where /metrics is
 * served, with `metricsPort`), load (event-loop delay and work-queue depths),
 * stop. With `leaderElection` and `sharding`, several children form one
 * replica group (`bench/lib.ts` `startOperators`).
 */
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from "node:v8";
// Before anything loads client-node, as in `roster run` (src/cli/main.ts).
import "../src/kube/lean-client-node.ts";
import type { EngineStats } from "../src/health/engine.ts";
import type { LogLevel } from "../src/kube/log.ts";
import type { Operator } from "../src/operator/operator.ts";

const { KubeConfig } = await import("@kubernetes/client-node/dist/config.js");
const { DefaultPolicy } = await import("../src/config/schema.ts");
const { createLogger } = await import("../src/kube/log.ts");
const { createOperator } = await import("../src/operator/operator.ts");

export interface ChildStart {
  op: "start";
  kubeconfig: string;
  namespaces: string[];
  batchWindowMs: number;
  maxConcurrent: number;
  maxPerHost: number;
  concurrency: number;
  /** Serve the operator's /metrics on this port (0: any free one; see `ports`). */
  metricsPort?: number;
  /** Leader election (several replicas): Lease `name` in `namespace`; off when absent. */
  leaderElection?: { namespace: string; name: string; identity: string };
  /** Probe sharding across the replicas (needs leaderElection); off when absent. */
  sharding?: { namespace: string; group: string; leaseDurationMs: number };
  /** Serve xDS on 127.0.0.1 at this port; off when absent. */
  xdsPort?: number;
  /** The write gate's budget (`publishing.maxInflightWrites`); the operator's default when absent. */
  maxInflightWrites?: number;
  /** Workers of named controllers (`concurrency.perController`), over `concurrency` and their floors. */
  perController?: Record<string, number>;
}

export type ChildRequest =
  | ChildStart
  | { op: "stats" }
  | { op: "since"; ids: string[] }
  | { op: "ages" }
  | { op: "load" }
  | { op: "ports" }
  | { op: "memory"; gc?: boolean }
  | { op: "snapshot"; path: string }
  | { op: "sampling"; start: boolean }
  | { op: "cpuProfile"; path?: string }
  | { op: "stop" };

/** Where the operator process's memory is (`memory.bench.ts`), all sizes in MiB. */
export interface ChildMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap spaces: size (committed) and used. */
  spaces: Record<string, { size: number; used: number }>;
  /** Malloc'ed memory V8 knows of, and its peak. */
  mallocedMemory: number;
  peakMallocedMemory: number;
  /** /proc/self/status: anonymous and file-backed RSS. */
  rssAnon: number;
  rssFile: number;
  /** Resident anonymous memory by mapping: the brk heap (main malloc arena), others by mapping size. */
  maps: Record<string, number>;
  /** Open file descriptors by kind (socket, anon_inode, pipe, file). */
  fds: Record<string, number>;
  engine: EngineStats;
}

export interface ChildStats {
  at: number;
  /** process.cpuUsage(), microseconds. */
  userMicros: number;
  systemMicros: number;
  rssMiB: number;
  heapMiB: number;
  engine: EngineStats;
  /** Operator client requests by HTTP method (rest_client_requests_total). */
  requests: Record<string, number>;
  transitions: number;
  /** This replica holds the leader Lease (always true without leader election). */
  leader?: boolean;
  /** Writes waiting for a write-gate slot now, by class (roster_write_gate_queued). */
  gateQueued?: Record<string, number>;
  /** Keys waiting in the work queues now, all controllers (workqueue_depth). */
  queueDepth?: number;
}

/** Event-loop delay (ms) since the previous `load` request, and work-queue depth per controller now. */
export interface ChildLoad {
  eventLoopDelayP99: number;
  eventLoopDelayMax: number;
  queueDepth: Record<string, number>;
}

let operator: Operator | undefined;
let session: Session | undefined;

/** Live sampled allocations by allocating function (V8's sampling heap profiler), MiB, largest first. */
interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}
function topAllocations(head: ProfileNode, n = 25): [string, number][] {
  const sites = new Map<string, number>();
  const walk = (node: ProfileNode, path: string[]) => {
    const f = node.callFrame;
    const here = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(node_modules|src)\//, "$1/")}:${f.lineNumber + 1}`;
    const p = [...path, here].slice(-3);
    if (node.selfSize > 0) sites.set(p.join(" < "), (sites.get(p.join(" < ")) ?? 0) + node.selfSize);
    for (const c of node.children) walk(c, p);
  };
  walk(head, []);
  return [...sites]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => [k, Math.round((v / 2 ** 20) * 10) / 10]);
}

function residentMaps(): Record<string, number> {
  const out: Record<string, number> = {};
  let size = 0;
  let name = "";
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      name = head[2] ?? "";
      size = 0;
      continue;
    }
    if (line.startsWith("Size:")) size = Number(line.split(/\s+/)[1]);
    if (!line.startsWith("Anonymous:")) continue;
    const kb = Number(line.split(/\s+/)[1]);
    if (kb === 0) continue;
    const key =
      name === "[heap]"
        ? "brk heap"
        : name
          ? name.replace(/^.*\//, "")
          : `anon ${size >= 65536 ? ">=64M" : size >= 1024 ? `${Math.round(size / 1024)}M` : "<1M"}`;
    out[key] = (out[key] ?? 0) + kb / 1024;
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]! * 10) / 10;
  return out;
}
// Enabled at the first `load` request: its 10 ms timer wakes the process 100
// times a second, which a bench of the idle operator's CPU must not count.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });

async function answer(req: ChildRequest): Promise<unknown> {
  switch (req.op) {
    case "start": {
      const kc = new KubeConfig();
      kc.loadFromFile(req.kubeconfig);
      operator = createOperator({
        kubeConfig: kc,
        namespaces: req.namespaces,
        settings: {
          defaults: DefaultPolicy.parse({}),
          batchWindowMs: req.batchWindowMs,
          startupHoldMs: 30_000,
          probeSecrets: false,
          policyStatusIntervalMs: 5000,
        },
        probing: {
          destinations: { allowLoopback: true },
          maxConcurrent: req.maxConcurrent,
          maxPerHost: req.maxPerHost,
        },
        leaderElection: req.leaderElection
          ? { enabled: true, ...req.leaderElection }
          : { enabled: false, namespace: "default", name: "unused" },
        sharding: req.sharding ? { enabled: true, ...req.sharding } : undefined,
        concurrency: { default: req.concurrency, perController: req.perController },
        metricsPort: req.metricsPort,
        maxInflightWrites: req.maxInflightWrites,
        xds:
          req.xdsPort === undefined
            ? undefined
            : { enabled: true, port: req.xdsPort, bindAddress: "127.0.0.1" },
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
      const requests: Record<string, number> = {};
      for (const v of (await op.manager.metrics.restRequests.get()).values) {
        const method = String(v.labels.method);
        requests[method] = (requests[method] ?? 0) + v.value;
      }
      const metric = op.manager.metrics.registry.getSingleMetric("roster_verdict_transitions_total");
      const transitions = (metric ? (await metric.get()).values : []).reduce((n, v) => n + v.value, 0);
      const gate = op.manager.metrics.registry.getSingleMetric("roster_write_gate_queued");
      const gateQueued: Record<string, number> = {};
      for (const v of gate ? (await gate.get()).values : []) gateQueued[String(v.labels.class)] = v.value;
      const depth = op.manager.metrics.registry.getSingleMetric("workqueue_depth");
      const queueDepth = (depth ? (await depth.get()).values : []).reduce((n, v) => n + v.value, 0);
      const cpu = process.cpuUsage();
      const mem = process.memoryUsage();
      const stats: ChildStats = {
        at: Date.now(),
        userMicros: cpu.user,
        systemMicros: cpu.system,
        rssMiB: mem.rss / 2 ** 20,
        heapMiB: mem.heapUsed / 2 ** 20,
        engine: op.engine.stats(),
        requests,
        transitions,
        leader: op.manager.isLeader(),
        gateQueued,
        queueDepth,
      };
      return stats;
    }
    case "since":
      return req.ids.map((id) => operator?.engine.summary(id)?.since ?? Number.NaN);
    case "ages": {
      const now = Date.now();
      const ages: number[] = [];
      for (const s of operator?.engine.summaries() ?? []) {
        if (s.lastProbeAt !== undefined) ages.push(now - s.lastProbeAt);
      }
      return ages;
    }
    case "ports":
      return operator?.manager.ports() ?? {};
    case "load": {
      loopDelay.enable();
      const queueDepth: Record<string, number> = {};
      const gauge = operator?.manager.metrics.registry.getSingleMetric("workqueue_depth");
      for (const v of gauge ? (await gauge.get()).values : []) {
        const c = String(v.labels.controller ?? v.labels.name);
        queueDepth[c] = (queueDepth[c] ?? 0) + v.value;
      }
      const load: ChildLoad = {
        eventLoopDelayP99: loopDelay.percentile(99) / 1e6,
        eventLoopDelayMax: loopDelay.max / 1e6,
        queueDepth,
      };
      loopDelay.reset();
      return load;
    }
    case "memory": {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (req.gc && gc) gc();
      const mib = (n: number) => n / 2 ** 20;
      const mem = process.memoryUsage();
      const spaces: ChildMemory["spaces"] = {};
      for (const s of getHeapSpaceStatistics()) {
        spaces[s.space_name] = { size: mib(s.space_size), used: mib(s.space_used_size) };
      }
      const heap = getHeapStatistics();
      const status = readFileSync("/proc/self/status", "utf8");
      const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
      const fds: Record<string, number> = {};
      for (const fd of readdirSync("/proc/self/fd")) {
        let kind = "gone";
        try {
          const link = readlinkSync(`/proc/self/fd/${fd}`);
          kind = /^(\w+):/.exec(link)?.[1] ?? "file";
        } catch {}
        fds[kind] = (fds[kind] ?? 0) + 1;
      }
      const m: ChildMemory = {
        rss: mib(mem.rss),
        heapTotal: mib(mem.heapTotal),
        heapUsed: mib(mem.heapUsed),
        external: mib(mem.external),
        arrayBuffers: mib(mem.arrayBuffers),
        spaces,
        mallocedMemory: mib(heap.malloced_memory),
        peakMallocedMemory: mib(heap.peak_malloced_memory),
        rssAnon: kib("RssAnon"),
        rssFile: kib("RssFile"),
        maps: residentMaps(),
        fds,
        engine: operator!.engine.stats(),
      };
      return m;
    }
    case "sampling": {
      if (req.start) {
        session = new Session();
        session.connect();
        await session.post("HeapProfiler.startSampling", { samplingInterval: 64 * 1024 });
        return [];
      }
      const { profile } = (await session!.post("HeapProfiler.getSamplingProfile")) as unknown as {
        profile: { head: ProfileNode };
      };
      return topAllocations(profile.head);
    }
    case "cpuProfile": {
      if (!req.path) {
        session ??= new Session();
        session.connect();
        await session.post("Profiler.enable");
        await session.post("Profiler.setSamplingInterval", { interval: 1000 });
        await session.post("Profiler.start");
        return "";
      }
      const { profile } = await session!.post("Profiler.stop");
      writeFileSync(req.path, JSON.stringify(profile));
      return req.path;
    }
    case "snapshot":
      return writeHeapSnapshot(req.path);
    case "stop":
      await operator?.stop();
      setImmediate(() => process.exit(0));
      return true;
  }
}

process.on("message", (m: { id: number; req: ChildRequest }) => {
  answer(m.req).then(
    (value) => process.send?.({ id: m.id, value }),
    (err: unknown) => process.send?.({ id: m.id, error: String(err) }),
  );
});
process.on("disconnect", () => process.exit(0));
process.send?.({ ready: true });
