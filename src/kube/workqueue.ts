/**
 * The work queue: client-go's workqueue contract (a rate-limited, delaying,
 * de-duplicating queue of keys), for a single-threaded event loop with
 * asynchronous workers.
 *
 * Guarantees (the same as client-go's, tested as properties):
 * - Dedup: a key added any number of times before a worker takes it is handed
 *   out once.
 * - Exclusion: a key is never handed to two workers at once; a worker owns it
 *   from `get()` until `done(key)`.
 * - No lost wake-ups: a key added while a worker owns it is handed out again
 *   after `done(key)` (once, however many times it was re-added).
 * - FIFO among ready keys.
 * - `addAfter(key, ms)` adds the key no earlier than `ms` from now on the
 *   injected clock; a key waiting twice keeps the earlier deadline.
 * - `addRateLimited(key)` waits the rate limiter's delay (per-key exponential
 *   backoff and an overall token bucket by default); `forget(key)` resets the
 *   key's backoff. Neither changes whether the key is queued.
 * - `shutdown()`: adds are ignored from then on and pending delays are dropped;
 *   keys already queued are still handed out (drain), then `get()` resolves
 *   `undefined`. `shutdown({ discardPending: true })` drops queued keys too.
 *   `shutdownWithDrain()` also waits until every handed-out key is done.
 */
import type { Clock, Timer } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import { defaultControllerRateLimiter, type RateLimiter } from "./ratelimit.ts";

/** Where the queue reports what client-go's workqueue metrics report. */
export interface QueueMetricsSink {
  add(): void;
  depth(n: number): void;
  /** Seconds a key waited in the queue before a worker took it. */
  queueLatency(seconds: number): void;
  /** Seconds a worker held a key. */
  workDuration(seconds: number): void;
  retry(): void;
}

export interface WorkQueueStats {
  depth: number;
  processing: number;
  waiting: number;
  /** Sum of the running time of keys currently held by workers. */
  unfinishedWorkSeconds: number;
  longestRunningProcessorSeconds: number;
}

export interface WorkQueue {
  add(key: string): void;
  addAfter(key: string, ms: number): void;
  addRateLimited(key: string): void;
  forget(key: string): void;
  numRequeues(key: string): number;
  /** The next key, or `undefined` once shut down and drained. */
  get(): Promise<string | undefined>;
  done(key: string): void;
  /** Keys ready to be handed out. */
  len(): number;
  shutdown(options?: { discardPending?: boolean }): void;
  shutdownWithDrain(): Promise<void>;
  isShuttingDown(): boolean;
  stats(): WorkQueueStats;
}

export interface WorkQueueOptions {
  clock?: Clock;
  rateLimiter?: RateLimiter;
  metrics?: QueueMetricsSink;
}

export function workQueue(options: WorkQueueOptions = {}): WorkQueue {
  const clock = options.clock ?? systemClock;
  const limiter = options.rateLimiter ?? defaultControllerRateLimiter({ clock });
  const metrics = options.metrics;

  let ring: string[] = [];
  let head = 0;
  const dirty = new Set<string>();
  const processing = new Map<string, number>();
  const addedAt = new Map<string, number>();
  const waiting = new Map<string, { readyAt: number; timer: Timer }>();
  const getters: ((key: string | undefined) => void)[] = [];
  const drained: (() => void)[] = [];
  let shuttingDown = false;

  const queued = () => ring.length - head;

  function hand(key: string): string {
    dirty.delete(key);
    const now = clock.now();
    processing.set(key, now);
    const at = addedAt.get(key);
    addedAt.delete(key);
    if (at !== undefined) metrics?.queueLatency((now - at) / 1000);
    return key;
  }

  function push(key: string): void {
    const getter = getters.shift();
    if (getter) {
      getter(hand(key));
      return;
    }
    ring.push(key);
    metrics?.depth(queued());
  }

  function pop(): string | undefined {
    if (head >= ring.length) return undefined;
    const key = ring[head++]!;
    if (head > 1024 && head * 2 > ring.length) {
      ring = ring.slice(head);
      head = 0;
    }
    metrics?.depth(queued());
    return hand(key);
  }

  function checkDrained(): void {
    if (shuttingDown && processing.size === 0 && queued() === 0) {
      for (const d of drained.splice(0)) d();
    }
  }

  const q: WorkQueue = {
    add(key) {
      if (shuttingDown || dirty.has(key)) return;
      dirty.add(key);
      metrics?.add();
      if (!addedAt.has(key)) addedAt.set(key, clock.now());
      if (processing.has(key)) return;
      push(key);
    },

    addAfter(key, ms) {
      if (shuttingDown) return;
      if (ms <= 0) {
        q.add(key);
        return;
      }
      const readyAt = clock.now() + ms;
      const existing = waiting.get(key);
      if (existing && existing.readyAt <= readyAt) return;
      existing?.timer.cancel();
      const timer = clock.setTimer(() => {
        waiting.delete(key);
        q.add(key);
      }, ms);
      waiting.set(key, { readyAt, timer });
    },

    addRateLimited(key) {
      if (shuttingDown) return;
      metrics?.retry();
      q.addAfter(key, limiter.when(key));
    },

    forget: (key) => limiter.forget(key),
    numRequeues: (key) => limiter.numRequeues(key),

    get() {
      const key = pop();
      if (key !== undefined) return Promise.resolve(key);
      if (shuttingDown) return Promise.resolve(undefined);
      return new Promise((resolve) => getters.push(resolve));
    },

    done(key) {
      const started = processing.get(key);
      if (started === undefined) return;
      processing.delete(key);
      metrics?.workDuration((clock.now() - started) / 1000);
      if (dirty.has(key)) push(key);
      checkDrained();
    },

    len: queued,

    shutdown(opts = {}) {
      shuttingDown = true;
      for (const w of waiting.values()) w.timer.cancel();
      waiting.clear();
      if (opts.discardPending) {
        ring = [];
        head = 0;
        dirty.clear();
        addedAt.clear();
        metrics?.depth(0);
      }
      for (const g of getters.splice(0)) g(undefined);
      checkDrained();
    },

    shutdownWithDrain() {
      const done = new Promise<void>((resolve) => drained.push(resolve));
      q.shutdown();
      return done;
    },

    isShuttingDown: () => shuttingDown,

    stats() {
      const now = clock.now();
      let unfinished = 0;
      let longest = 0;
      for (const started of processing.values()) {
        const s = (now - started) / 1000;
        unfinished += s;
        if (s > longest) longest = s;
      }
      return {
        depth: queued(),
        processing: processing.size,
        waiting: waiting.size,
        unfinishedWorkSeconds: unfinished,
        longestRunningProcessorSeconds: longest,
      };
    },
  };
  return q;
}
