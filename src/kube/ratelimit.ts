/**
 * Rate limiters for work-queue retries, with client-go's semantics.
 *
 * Guarantees:
 * - `itemExponential`: the n-th consecutive failure of a key (n from 0) waits
 *   `base * 2^n`, capped at `max`; `forget(key)` resets that key only.
 * - `tokenBucket`: a `qps` refill with `burst` capacity shared by all keys;
 *   every `when()` takes a token, and when none is left the delay is the time
 *   until one will be (reservations queue up, like x/time/rate's Reserve).
 * - `maxOf`: the longest delay of its parts; forget/numRequeues go to all.
 * - `defaultControllerRateLimiter`: maxOf(itemExponential(5 ms, 1000 s),
 *   tokenBucket(10 qps, 100 burst)), client-go's and controller-runtime's
 *   default.
 */
import type { Clock } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";

export interface RateLimiter {
  /** How long to wait before the key may be retried; records a failure. */
  when(key: string): number;
  /** The key succeeded: clear its failure history. */
  forget(key: string): void;
  /** Failures recorded for the key since it was last forgotten. */
  numRequeues(key: string): number;
}

export function itemExponential(baseMs = 5, maxMs = 1_000_000): RateLimiter {
  const failures = new Map<string, number>();
  return {
    when(key) {
      const n = failures.get(key) ?? 0;
      failures.set(key, n + 1);
      // 2^n overflows to Infinity past ~1024, which min() then caps.
      return Math.min(baseMs * 2 ** n, maxMs);
    },
    forget: (key) => void failures.delete(key),
    numRequeues: (key) => failures.get(key) ?? 0,
  };
}

export function tokenBucket(qps = 10, burst = 100, clock: Clock = systemClock): RateLimiter {
  let tokens = burst;
  let last = clock.now();
  return {
    when() {
      const now = clock.now();
      tokens = Math.min(burst, tokens + ((now - last) * qps) / 1000);
      last = now;
      tokens -= 1;
      return tokens >= 0 ? 0 : (-tokens / qps) * 1000;
    },
    forget() {},
    numRequeues: () => 0,
  };
}

export function maxOf(...limiters: RateLimiter[]): RateLimiter {
  return {
    when: (key) => Math.max(0, ...limiters.map((l) => l.when(key))),
    forget: (key) => {
      for (const l of limiters) l.forget(key);
    },
    numRequeues: (key) => Math.max(0, ...limiters.map((l) => l.numRequeues(key))),
  };
}

export interface ControllerRateLimiterOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  qps?: number;
  burst?: number;
  clock?: Clock;
}

export function defaultControllerRateLimiter(o: ControllerRateLimiterOptions = {}): RateLimiter {
  return maxOf(
    itemExponential(o.baseDelayMs ?? 5, o.maxDelayMs ?? 1_000_000),
    tokenBucket(o.qps ?? 10, o.burst ?? 100, o.clock ?? systemClock),
  );
}
