/**
 * When a target is probed. Each target has a stable phase within its
 * interval, derived from its id: run times are `phase + k * interval` on the
 * wall clock. So the first probe of a new target lands at a spread-out point
 * of its interval (10,000 targets at 10 s make an even ~1,000 probes/s), the
 * target keeps that phase afterwards (no drift, no re-bunching after a slow
 * probe), and a restart or another replica computes the same schedule.
 */

import { fmix32 } from "../util/hash.ts";

/** FNV-1a with a murmur3 finalizer, so ids that differ in one character spread evenly. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** The target's offset within its interval, in [0, intervalMs). */
export function phaseOf(id: string, intervalMs: number): number {
  return Math.floor((hash32(id) / 2 ** 32) * intervalMs);
}

/** The first run time at or after `t` for this phase and interval. */
export function slotAtOrAfter(t: number, phase: number, intervalMs: number): number {
  const k = Math.ceil((t - phase) / intervalMs);
  return phase + k * intervalMs;
}

/**
 * The run after the one planned at `planned`. If the previous run overran
 * (a slow probe, an overloaded process), the next slot still runs when it is
 * less than half an interval late; slots later than that are skipped rather
 * than run in a burst.
 */
export function nextSlot(planned: number, now: number, intervalMs: number): { at: number; skipped: number } {
  const at = planned + intervalMs;
  if (at + intervalMs / 2 > now) return { at, skipped: 0 };
  const skipped = Math.floor((now - at) / intervalMs) + 1;
  return { at: at + skipped * intervalMs, skipped };
}

/** Random delay added to one run (not carried over, so the phase is kept). */
export function jitterFor(jitterMs: number, intervalMs: number, random: () => number): number {
  const bound = Math.min(Math.max(0, jitterMs), intervalMs / 2);
  return bound > 0 ? Math.floor(random() * bound) : 0;
}

/** What a finished run needs to decide its target's next run. */
export interface RunEnd {
  /** The slot the run was planned at (its phase grid point; a recheck's own time). */
  planned: number;
  /** When the run finished. */
  now: number;
  phase: number;
  intervalMs: number;
  recheckMs: number;
  /** The run was a recheck. */
  rechecking: boolean;
  /** A result differs from the verdict and its threshold is not met yet (fast confirmation). */
  confirming: boolean;
}

/**
 * The next run after one finished (fast confirmation, issue 19). While a
 * differing result is being confirmed, the first recheck comes at once (a
 * retry, as operators that retry back to back do) and the further ones
 * `recheckMs` apart, so a failure must last (failureThreshold − 2) ×
 * recheckInterval to flip a threshold of 3 or more, and a one-off failure
 * costs one extra probe. A recheck is only taken when it comes sooner than
 * the regular slot (a slow probe can end close to it). Once confirmed either
 * way, the target is back on its phase, at least a recheck away; otherwise
 * the regular next slot (`nextSlot`). Steady state: one run per interval.
 */
export function nextRun(r: RunEnd): { at: number; recheck: boolean; skipped: number } {
  const regular = nextSlot(r.planned, r.now, r.intervalMs);
  if (r.confirming) {
    const at = r.now + (r.rechecking ? r.recheckMs : 0);
    if (at < regular.at) return { at, recheck: true, skipped: 0 };
  }
  if (r.rechecking) {
    return { at: slotAtOrAfter(r.now + r.recheckMs, r.phase, r.intervalMs), recheck: false, skipped: 0 };
  }
  return { at: regular.at, recheck: false, skipped: regular.skipped };
}

/**
 * The lateness a regular run may have by design: 1 % of its interval, at
 * most `maxTickMs` (100 ms by default). A run never starts before its time.
 */
export function latenessBoundMs(intervalMs: number, maxTickMs: number): number {
  return Math.min(intervalMs / 100, maxTickMs);
}

/**
 * Runs started by one wake-up, on average, that the tick may widen to: the
 * tick grows only while runs are sparse (where each wake-up costs more than
 * the runs it serves), never into bursts (10 runs are 1–2 ms of the loop).
 */
export const RUNS_PER_TICK = 10;

/**
 * The tick a regular run's start is rounded up to (the engine's run timer
 * fires only on multiples of it, so runs due close together share one
 * wake-up): the largest of `tickMs` × 1, 2, 5, 10, 20, 50, ... that is at
 * most the run's lateness bound and at most the time in which all targets
 * together make `RUNS_PER_TICK` runs (`runsPerSecond`), and never less than
 * `tickMs`. The steps divide each other's multiples of 10, so targets of
 * different intervals mostly share wake-ups.
 */
export function tickFor(
  intervalMs: number,
  runsPerSecond: number,
  tickMs: number,
  maxTickMs: number,
): number {
  const sparse = runsPerSecond > 0 ? (RUNS_PER_TICK * 1000) / runsPerSecond : Number.POSITIVE_INFINITY;
  const limit = Math.min(latenessBoundMs(intervalMs, maxTickMs), sparse);
  let tick = tickMs;
  for (let decade = tickMs; ; decade *= 10) {
    for (const step of [1, 2, 5]) {
      if (decade * step > limit) return tick;
      tick = decade * step;
    }
  }
}

/** `at` rounded up to a multiple of `tick`. */
export function onTick(at: number, tick: number): number {
  return Math.ceil(at / tick) * tick;
}
