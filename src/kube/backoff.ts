/**
 * Jittered exponential backoff for reconnect loops (watches, leader election
 * API errors), in the shape of client-go's ExponentialBackoffManager.
 *
 * Guarantees:
 * - The n-th consecutive delay (n from 0) is `min(initial * factor^n, max)`
 *   stretched by a random factor in `[1, 1 + jitter]`, so it never goes below
 *   the un-jittered value and never above `max * (1 + jitter)`.
 * - `reset()` starts over from `initial`; a caller that has been healthy for
 *   `resetAfterMs` also starts over (checked on the next `next()` call).
 * - Randomness and time are injected, so tests are deterministic.
 */
import type { Clock } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** 1.0 means up to +100%. */
  jitter?: number;
  /** A quiet period this long since the last failure resets the sequence. */
  resetAfterMs?: number;
  random?: () => number;
  clock?: Clock;
}

export interface Backoff {
  /** The delay before the next attempt; counts as a failure. */
  next(): number;
  reset(): void;
  /** Consecutive failures counted so far. */
  readonly attempts: number;
}

/** client-go reflector defaults: 800 ms doubling to 30 s, jitter 1.0, reset after 2 min. */
export const reflectorBackoff: Required<Omit<BackoffOptions, "random" | "clock">> = {
  initialMs: 800,
  maxMs: 30_000,
  factor: 2,
  jitter: 1,
  resetAfterMs: 120_000,
};

export function backoff(options: BackoffOptions = {}): Backoff {
  const o = { ...reflectorBackoff, ...options };
  const random = options.random ?? Math.random;
  const clock = options.clock ?? systemClock;
  let attempts = 0;
  let lastFailure = Number.NEGATIVE_INFINITY;
  return {
    next() {
      const now = clock.now();
      if (now - lastFailure >= o.resetAfterMs) attempts = 0;
      lastFailure = now;
      const base = Math.min(o.initialMs * o.factor ** attempts, o.maxMs);
      attempts++;
      return base * (1 + o.jitter * random());
    },
    reset() {
      attempts = 0;
      lastFailure = Number.NEGATIVE_INFINITY;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** A cancellable sleep on an injected clock; resolves early (false) when aborted. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((done) => {
    if (signal?.aborted) return done(false);
    const onAbort = () => {
      timer.cancel();
      done(false);
    };
    const timer = clock.setTimer(() => {
      signal?.removeEventListener("abort", onAbort);
      done(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
