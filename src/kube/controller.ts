/**
 * The controller: feeds a work queue from informers and runs a reconciler
 * over its keys with bounded concurrency.
 *
 * Sources: the primary informer enqueues the key of every object it sees;
 * each secondary watch maps an object of another type to the primary keys it
 * affects (an EndpointSlice to its service, a Lease to its instance). On an
 * update both the old and the new object are mapped, so a change of owner
 * or label wakes up both sides. Anything else (probe verdicts, timers) can
 * call `enqueue`.
 *
 * Guarantees:
 * - Level-triggered: the reconciler gets a key only, never an event.
 * - Workers start only after every informer of the controller has synced, so
 *   a reconciler never acts on a partial cache.
 * - The work-queue guarantees hold: one worker per key at a time, dedup,
 *   a key changed during its reconcile is reconciled again afterwards.
 * - At most `concurrency` reconciles run at once (after a decrease, excess
 *   workers exit as they finish their current key).
 * - Result handling is controller-runtime's (see reconcile.ts), with the
 *   same metrics and result labels.
 * - `stop()` aborts the reconcilers' signal, waits for running reconciles
 *   (up to `timeoutMs`), and drops queued keys unless `drain` is set; after
 *   it resolves no reconcile of this controller is running. A stopped
 *   controller can be started again (fresh queue, handlers replay the cache).
 */
import { randomUUID } from "node:crypto";
import type { Clock, Timer } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import type { Informer } from "./informer.ts";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import type { ReconcileResult, RuntimeMetrics } from "./metrics.ts";
import { type KubeObject, objectKey, splitKey } from "./object.ts";
import type { RateLimiter } from "./ratelimit.ts";
import { defaultControllerRateLimiter } from "./ratelimit.ts";
import { isTerminal, type ReconcileContext, type Reconciler, type Result } from "./reconcile.ts";
import { type WorkQueue, workQueue } from "./workqueue.ts";

export interface SecondaryWatch<S extends KubeObject = KubeObject> {
  informer: Informer<S>;
  /** Primary keys affected by this object. */
  map(obj: S): readonly string[];
  /** Map an update only if this says so (resyncs, where old and new are one object, always pass). */
  updateFilter?(oldObj: S, newObj: S): boolean;
}

/** A secondary watch, typed by its informer (erases the type for the controller's list). */
export function secondary<S extends KubeObject>(
  informer: Informer<S>,
  map: (obj: S) => readonly string[],
  updateFilter?: (oldObj: S, newObj: S) => boolean,
): SecondaryWatch {
  return { informer, map, ...(updateFilter ? { updateFilter } : {}) } as unknown as SecondaryWatch;
}

export interface ControllerOptions<T extends KubeObject> {
  name: string;
  primary: Informer<T>;
  secondaries?: SecondaryWatch[];
  reconcile: Reconciler;
  /** Concurrent reconciles (default 1). */
  concurrency?: number;
  /** Enqueue a primary update only if this says so (resyncs always pass). */
  updateFilter?: (oldObj: T, newObj: T) => boolean;
  /** Fresh limiter per start; default: 5 ms doubling to 1000 s per key, 10 qps/100 burst overall. */
  rateLimiter?: () => RateLimiter;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
}

export interface StopOptions {
  /** Process every queued key before stopping (default false). */
  drain?: boolean;
  /** Stop waiting for running reconciles after this long (default 30 s). */
  timeoutMs?: number;
}

export interface Controller {
  readonly name: string;
  /** Registers handlers, waits for the caches, starts the workers. Resolves once workers run. */
  start(signal?: AbortSignal): Promise<void>;
  stop(options?: StopOptions): Promise<void>;
  running(): boolean;
  enqueue(key: string): void;
  enqueueAfter(key: string, ms: number): void;
  setConcurrency(n: number): void;
  /** The current queue (undefined while stopped). */
  queue(): WorkQueue | undefined;
}

/** Update filter: only spec changes (metadata.generation) or label/annotation changes. */
export function generationOrMetadataChanged<T extends KubeObject>(oldObj: T, newObj: T): boolean {
  return (
    oldObj.metadata.generation !== newObj.metadata.generation ||
    JSON.stringify(oldObj.metadata.labels) !== JSON.stringify(newObj.metadata.labels) ||
    JSON.stringify(oldObj.metadata.annotations) !== JSON.stringify(newObj.metadata.annotations) ||
    oldObj.metadata.deletionTimestamp !== newObj.metadata.deletionTimestamp
  );
}

export function createController<T extends KubeObject>(options: ControllerOptions<T>): Controller {
  const { name, primary } = options;
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics;
  const log = (options.logger ?? silentLogger()).child({ controller: name });
  const secondaries = options.secondaries ?? [];
  const label = { controller: name };

  let concurrency = Math.max(1, options.concurrency ?? 1);
  let q: WorkQueue | undefined;
  let abort: AbortController | undefined;
  let offs: (() => void)[] = [];
  let workers = 0;
  let workerExits: (() => void)[] = [];
  let active = 0;
  let starting: Promise<void> | undefined;

  metrics?.maxConcurrentReconciles.set(label, concurrency);

  function enqueue(key: string): void {
    q?.add(key);
  }

  function handlers(): void {
    offs.push(
      primary.addHandler({
        onAdd: (obj) => enqueue(objectKey(obj)),
        onUpdate: (oldObj, newObj) => {
          if (oldObj !== newObj && options.updateFilter && !options.updateFilter(oldObj, newObj)) return;
          enqueue(objectKey(newObj));
        },
        onDelete: (obj) => enqueue(objectKey(obj)),
      }),
    );
    for (const w of secondaries) {
      const mapped = (obj: KubeObject) => {
        for (const key of w.map(obj)) enqueue(key);
      };
      offs.push(
        w.informer.addHandler({
          onAdd: mapped,
          onUpdate: (oldObj, newObj) => {
            if (oldObj !== newObj) {
              if (w.updateFilter && !w.updateFilter(oldObj, newObj)) return;
              mapped(oldObj);
            }
            mapped(newObj);
          },
          onDelete: mapped,
        }),
      );
    }
  }

  async function processOne(queue: WorkQueue, key: string, signal: AbortSignal): Promise<void> {
    const reconcileId = randomUUID();
    const { namespace, name: objName } = splitKey(key);
    // The per-reconcile child logger is built only if something logs with it.
    let rlogCache: Logger | undefined;
    const rlogOf = () => {
      rlogCache ??= log.child({ key, reconcileId });
      return rlogCache;
    };
    const started = clock.now();
    const t0 = performance.now();
    let result: ReconcileResult;
    try {
      const ctx: ReconcileContext = {
        key,
        namespace,
        name: objName,
        reconcileId,
        signal,
        get log() {
          return rlogOf();
        },
      };
      const r = (await options.reconcile(key, ctx)) as Result | undefined;
      if (r?.requeueAfterMs !== undefined && r.requeueAfterMs > 0) {
        queue.forget(key);
        queue.addAfter(key, r.requeueAfterMs);
        result = "requeue_after";
      } else if (r?.requeue) {
        queue.addRateLimited(key);
        result = "requeue";
      } else {
        queue.forget(key);
        result = "success";
      }
      if (log.isLevelEnabled("debug")) rlogOf().debug({ result, ms: clock.now() - started }, "reconciled");
    } catch (err) {
      result = "error";
      metrics?.reconcileErrors.inc(label);
      if (isTerminal(err)) {
        metrics?.terminalReconcileErrors.inc(label);
        queue.forget(key);
        rlogOf().error({ err }, "reconcile failed terminally; not retrying");
      } else if (signal.aborted) {
        // stop() cut the reconcile short (its requests were aborted): not a
        // failure of the object; the next leader or start reconciles it.
        rlogOf().debug({ err }, "reconcile aborted by shutdown");
      } else {
        queue.addRateLimited(key);
        rlogOf().error({ err, retries: queue.numRequeues(key) }, "reconcile failed; retrying with backoff");
      }
    }
    metrics?.reconcileTotal.inc({ controller: name, result });
    metrics?.reconcileTime.observe(label, (performance.now() - t0) / 1000);
  }

  function spawnWorker(queue: WorkQueue, signal: AbortSignal): void {
    workers++;
    void (async () => {
      try {
        for (;;) {
          if (workers > concurrency) break;
          const key = await queue.get();
          if (key === undefined) break;
          active++;
          metrics?.activeWorkers.set(label, active);
          try {
            await processOne(queue, key, signal);
          } finally {
            active--;
            metrics?.activeWorkers.set(label, active);
            queue.done(key);
          }
        }
      } finally {
        workers--;
        if (workers === 0) for (const w of workerExits.splice(0)) w();
      }
    })();
  }

  const controller: Controller = {
    name,
    start(signal) {
      if (starting) return starting;
      starting = (async () => {
        abort = new AbortController();
        const queue = workQueue({
          clock,
          rateLimiter: options.rateLimiter?.() ?? defaultControllerRateLimiter({ clock }),
          metrics: metrics?.queueSink(name),
        });
        q = queue;
        metrics?.trackQueue(name, queue);
        handlers();
        const stopSig = signal ? AbortSignal.any([signal, abort.signal]) : abort.signal;
        const informers = [primary, ...secondaries.map((s) => s.informer)];
        log.info({ concurrency }, "waiting for caches to sync");
        const ok = (await Promise.all(informers.map((i) => i.waitForSync(stopSig)))).every(Boolean);
        if (!ok || abort.signal.aborted || queue.isShuttingDown()) return;
        log.info({ concurrency, queued: queue.len() }, "starting workers");
        for (let i = 0; i < concurrency; i++) spawnWorker(queue, abort.signal);
      })();
      return starting;
    },

    async stop(opts = {}) {
      const queue = q;
      if (!queue || !abort) return;
      for (const off of offs) off();
      offs = [];
      abort.abort();
      const exited = workers === 0 ? Promise.resolve() : new Promise<void>((r) => workerExits.push(r));
      queue.shutdown({ discardPending: !opts.drain });
      const timeoutMs = opts.timeoutMs ?? 30_000;
      let timer: Timer | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => {
          timer = clock.setTimer(() => r(true), timeoutMs);
        }),
      ]);
      timer?.cancel();
      if (timedOut) log.warn({ timeoutMs, running: active }, "stopped waiting for running reconciles");
      await starting?.catch(() => undefined);
      metrics?.untrackQueue(name);
      q = undefined;
      abort = undefined;
      starting = undefined;
      workerExits = [];
      log.info("stopped");
    },

    running: () => q !== undefined && workers > 0,
    enqueue,
    enqueueAfter: (key, ms) => q?.addAfter(key, ms),

    setConcurrency(n) {
      const next = Math.max(1, Math.floor(n));
      if (next === concurrency) return;
      log.info({ from: concurrency, to: next }, "changing concurrency");
      concurrency = next;
      metrics?.maxConcurrentReconciles.set(label, concurrency);
      const queue = q;
      const sig = abort?.signal;
      if (queue && sig && workers > 0) {
        for (let i = workers; i < concurrency; i++) spawnWorker(queue, sig);
      }
    },

    queue: () => q,
  };
  return controller;
}
