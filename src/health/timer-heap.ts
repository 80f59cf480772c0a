/**
 * The engine's run queue: entries ordered by `at` in a min-heap, served by
 * one clock timer for the earliest entry. Thousands of targets cost one timer,
 * not one each; due times are rounded up to `tickMs` so entries close together
 * fire in one wake-up.
 */
import type { Clock, Timer } from "../util/clock.ts";
import { type HeapItem, MinHeap } from "./heap.ts";

export interface TimerHeap<T extends HeapItem> {
  /** Queues `item` to be handed to `due` once the clock reaches `item.at`. */
  push(item: T): void;
  /** Entries queued and not yet due. */
  readonly size: number;
  /** Cancels the timer and drops the entries; later pushes never fire. */
  close(): void;
}

/**
 * `due(item, now)` runs for every entry whose `at` has passed, in order of
 * `at`, with the time of the wake-up. It may push: an entry pushed while
 * firing that is already due fires in the same wake-up; the timer is re-armed
 * once, after the batch.
 */
export function timerHeap<T extends HeapItem>(
  clock: Clock,
  tickMs: number,
  due: (item: T, now: number) => void,
): TimerHeap<T> {
  const heap = new MinHeap<T>();
  let timer: Timer | undefined;
  let timerAt = Number.POSITIVE_INFINITY;
  let firing = false;
  let closed = false;

  function arm(): void {
    const top = heap.peek();
    if (!top || closed || firing) return;
    const at = Math.ceil(top.at / tickMs) * tickMs;
    if (timer && timerAt <= at) return;
    timer?.cancel();
    timerAt = at;
    timer = clock.setTimer(fire, at - clock.now());
  }

  function fire(): void {
    timer = undefined;
    timerAt = Number.POSITIVE_INFINITY;
    const now = clock.now();
    firing = true;
    try {
      for (let top = heap.peek(); top && top.at <= now; top = heap.peek()) {
        heap.pop();
        due(top, now);
      }
    } finally {
      firing = false;
    }
    arm();
  }

  return {
    push(item) {
      if (closed) return;
      heap.push(item);
      arm();
    },
    get size() {
      return heap.size;
    },
    close() {
      closed = true;
      timer?.cancel();
      timer = undefined;
      heap.clear();
    },
  };
}
