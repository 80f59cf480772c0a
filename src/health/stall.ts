/**
 * Event-loop stall detector. A probe's deadline is a timer on the same
 * thread as everything else the operator does (10,000 status writes, watch
 * events, GC): when that thread is blocked for a while, the deadline timer
 * fires as soon as it resumes, before the socket callbacks whose data has
 * been waiting in the kernel all along. Such a timeout says nothing about
 * the target, so the engine asks this monitor how long the loop was blocked
 * during a probe and voids a timeout the loop caused.
 *
 * It samples: a timer every `sampleMs`; a tick that comes more than
 * `toleranceMs` late means the loop was busy from when it was due until it
 * ran, whether in one long block or in many short ones (a saturated loop
 * delays every callback). Recent stalls are kept for `keepMs` (longer than
 * any probe timeout, at most 60 s).
 *
 * `onDemand`: the sampler runs only while something holds it (the engine
 * holds it for each probe in flight). Stalls matter only within a probe,
 * and an idle operator should not wake up 40 times a second: at 500
 * targets every 10 s, probes are in flight a few percent of the time.
 */
import type { Clock, Timer } from "../util/clock.ts";

export interface StallMonitor {
  /** Milliseconds the event loop was blocked within [from, to] (including a stall still under way). */
  blockedMs(from: number, to: number): number;
  /** With `onDemand`: sample from now on until the matching `release` (holds nest). */
  hold(): void;
  release(): void;
  stop(): void;
}

export interface StallMonitorOptions {
  clock: Clock;
  /** Default 25 ms. */
  sampleMs?: number;
  /** Lateness of a tick that is timer noise, not a stall (default 2 ms). */
  toleranceMs?: number;
  /** Default 90 s. */
  keepMs?: number;
  /** Sample only while held (default: always). */
  onDemand?: boolean;
}

/** Never sees a stall (tests on a fake clock that want none). */
export const noStalls: StallMonitor = { blockedMs: () => 0, hold() {}, release() {}, stop() {} };

export function stallMonitor(options: StallMonitorOptions): StallMonitor {
  const { clock } = options;
  const sampleMs = Math.max(1, options.sampleMs ?? 25);
  const toleranceMs = Math.max(0, options.toleranceMs ?? 2);
  const keepMs = options.keepMs ?? 90_000;
  /** [start, end] pairs from index `head` on, oldest first. */
  let stalls: number[] = [];
  let head = 0;
  let due = clock.now() + sampleMs;
  let timer: Timer | undefined;
  let stopped = false;
  let holds = 0;
  const sampling = () => !stopped && (!options.onDemand || holds > 0);

  const tick = () => {
    const now = clock.now();
    if (now - due > toleranceMs) stalls.push(due, now);
    while (head < stalls.length && stalls[head + 1]! < now - keepMs) head += 2;
    if (head > 1024 && head * 2 > stalls.length) {
      stalls = stalls.slice(head);
      head = 0;
    }
    due = now + sampleMs;
    timer = sampling() ? clock.setTimer(tick, sampleMs) : undefined;
  };
  if (sampling()) timer = clock.setTimer(tick, sampleMs);

  const overlap = (a: number, b: number, from: number, to: number) =>
    Math.max(0, Math.min(b, to) - Math.max(a, from));

  return {
    blockedMs(from, to) {
      let sum = 0;
      for (let i = stalls.length - 2; i >= head; i -= 2) {
        if (stalls[i + 1]! <= from) break;
        sum += overlap(stalls[i]!, stalls[i + 1]!, from, to);
      }
      // The sampler is overdue: the loop is only now resuming from a stall it has not recorded yet.
      const now = clock.now();
      if (timer && now - due > toleranceMs) sum += overlap(due, now, from, to);
      return sum;
    },
    hold() {
      holds++;
      if (holds === 1 && options.onDemand && !stopped && !timer) {
        due = clock.now() + sampleMs;
        timer = clock.setTimer(tick, sampleMs);
      }
    },
    release() {
      holds = Math.max(0, holds - 1);
      if (holds === 0 && options.onDemand && timer) {
        // Not blocked now (this runs on the loop): only a tick already overdue is a stall to keep.
        const now = clock.now();
        if (now - due > toleranceMs) stalls.push(due, now);
        timer.cancel();
        timer = undefined;
      }
    },
    stop() {
      stopped = true;
      timer?.cancel();
    },
  };
}
