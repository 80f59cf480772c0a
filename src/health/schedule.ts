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
