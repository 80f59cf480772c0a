/**
 * The write gate (issue 18): one budget of in-flight mutating requests shared
 * by every writer of the operator, handed out by strict priority so that,
 * under a storm of status writes, published objects are never behind.
 *
 * Classes, highest first: `publication` (Services, EndpointSlices),
 * `configmap`, `status`, `event`. `writeClassOf` is the one place that
 * decides the class of a request; reads, watches, Leases (leader election
 * and membership must renew whatever the storm) and access reviews bypass
 * the gate.
 *
 * Guarantees (tested as properties):
 * - At most `limit` gated writes are in flight at once.
 * - A freed slot goes to the oldest waiting write of the highest class that
 *   has one: a waiting higher-class write always gets the next free slot.
 * - FIFO within a class.
 * - No aging: a lower class waits while a higher class has waiters (strict
 *   priority); it is never skipped otherwise, so with finite higher-class
 *   load every write is eventually started.
 * - A write that fails (rejects) frees its slot like one that succeeds.
 */
import type { KubeClient, Method } from "./client.ts";

export const WRITE_CLASSES = ["publication", "configmap", "status", "event"] as const;
export type WriteClass = (typeof WRITE_CLASSES)[number];

/** Default in-flight budget: see docs/scaling.md (write priorities). */
export const DEFAULT_MAX_INFLIGHT_WRITES = 16;

/** The class of a request, or undefined when it bypasses the gate. */
export function writeClassOf(method: Method, path: string): WriteClass | undefined {
  if (method === "GET") return undefined;
  if (/\/leases(\/|$)/.test(path)) return undefined;
  // TokenReviews and SubjectAccessReviews (the /metrics filter) create
  // nothing: a scrape must not wait behind a storm of writes.
  if (/^\/apis\/(authentication|authorization)\.k8s\.io\//.test(path)) return undefined;
  if (/\/events(\/|$)/.test(path)) return "event";
  if (/\/status$/.test(path)) return "status";
  if (/\/configmaps(\/|$)/.test(path)) return "configmap";
  // Services, EndpointSlices, and anything else the operator mutates.
  return "publication";
}

export interface WriteGateMetricsSink {
  /** Writes waiting for a slot in this class. */
  queued(cls: WriteClass, n: number): void;
  /** Seconds a write of this class waited for its slot. */
  waited(cls: WriteClass, seconds: number): void;
}

export interface WriteGate {
  run<T>(cls: WriteClass, fn: () => Promise<T>): Promise<T>;
  stats(): { inFlight: number; queued: Record<WriteClass, number>; started: Record<WriteClass, number> };
}

export interface WriteGateOptions {
  limit?: number;
  /** Milliseconds, for the wait-time metric only (default performance.now). */
  now?: () => number;
  metrics?: WriteGateMetricsSink;
}

export function writeGate(options: WriteGateOptions = {}): WriteGate {
  const limit = Math.max(1, Math.floor(options.limit ?? DEFAULT_MAX_INFLIGHT_WRITES));
  const now = options.now ?? (() => performance.now());
  const metrics = options.metrics;
  const queues = new Map<WriteClass, { at: number; start: () => void }[]>(WRITE_CLASSES.map((c) => [c, []]));
  const started = Object.fromEntries(WRITE_CLASSES.map((c) => [c, 0])) as Record<WriteClass, number>;
  let inFlight = 0;

  function next(): void {
    while (inFlight < limit) {
      const cls = WRITE_CLASSES.find((c) => queues.get(c)!.length > 0);
      if (!cls) return;
      const q = queues.get(cls)!;
      const w = q.shift()!;
      metrics?.queued(cls, q.length);
      metrics?.waited(cls, (now() - w.at) / 1000);
      inFlight++;
      started[cls]++;
      w.start();
    }
  }

  return {
    run(cls, fn) {
      return new Promise((resolve, reject) => {
        const q = queues.get(cls)!;
        q.push({
          at: now(),
          start: () => {
            let p: Promise<unknown>;
            try {
              p = Promise.resolve(fn());
            } catch (err) {
              p = Promise.reject(err);
            }
            p.then(resolve as (v: unknown) => void, reject).finally(() => {
              inFlight--;
              next();
            });
          },
        });
        metrics?.queued(cls, q.length);
        next();
      });
    },
    stats: () => ({
      inFlight,
      queued: Object.fromEntries(WRITE_CLASSES.map((c) => [c, queues.get(c)!.length])) as Record<
        WriteClass,
        number
      >,
      started: { ...started },
    }),
  };
}

/** The client with every mutating request (but Leases) passed through the gate with its class. */
export function gatedClient(client: KubeClient, gate: WriteGate): KubeClient {
  return {
    ...client,
    request(req) {
      const cls = writeClassOf(req.method, req.path);
      return cls ? gate.run(cls, () => client.request(req)) : client.request(req);
    },
  };
}
