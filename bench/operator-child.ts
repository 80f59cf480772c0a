/**
 * The operator in a process of its own, driven over IPC by the scale suite
 * and the peer bench (`bench/lib.ts` forks it), so that its CPU time and RSS
 * are the operator's alone: the probe targets, the watchers and the bench's
 * bookkeeping run in the parent.
 *
 * Requests: start, stats (CPU, memory, engine counters, API requests by verb,
 * transitions), since (the engine's verdict-change time of instances), ages
 * (how long ago every target was last probed), stop.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { DefaultPolicy } from "../src/config/schema.ts";
import type { EngineStats } from "../src/health/engine.ts";
import { createLogger, type LogLevel } from "../src/kube/log.ts";
import { createOperator, type Operator } from "../src/operator/operator.ts";

export interface ChildStart {
  op: "start";
  kubeconfig: string;
  namespaces: string[];
  batchWindowMs: number;
  maxConcurrent: number;
  maxPerHost: number;
  concurrency: number;
}

export type ChildRequest =
  | ChildStart
  | { op: "stats" }
  | { op: "since"; ids: string[] }
  | { op: "ages" }
  | { op: "stop" };

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
}

let operator: Operator | undefined;

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
        },
        probing: {
          destinations: { allowLoopback: true },
          maxConcurrent: req.maxConcurrent,
          maxPerHost: req.maxPerHost,
        },
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
      const requests: Record<string, number> = {};
      for (const v of (await op.manager.metrics.restRequests.get()).values) {
        const method = String(v.labels.method);
        requests[method] = (requests[method] ?? 0) + v.value;
      }
      const metric = op.manager.metrics.registry.getSingleMetric("roster_verdict_transitions_total");
      const transitions = (metric ? (await metric.get()).values : []).reduce((n, v) => n + v.value, 0);
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
