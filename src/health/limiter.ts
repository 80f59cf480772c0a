/**
 * Bounded probe concurrency: a global limit, and a per-destination-host limit
 * so that one slow or hostile host (slowloris, blackhole) cannot take all the
 * global slots. Waiters are served first in, first out; a waiter can be
 * cancelled (its target was removed) without ever running.
 *
 * Callback-based rather than promise-based: this is on the path of every
 * probe, and a slot is usually free.
 */

export interface Ticket {
  /** Gives the slot back, or leaves the queue if it never ran. Idempotent. */
  release(): void;
}

export interface Limiter {
  acquire(host: string, run: () => void): Ticket;
  readonly inFlight: number;
  readonly queued: number;
  readonly hosts: number;
}

/** A FIFO with O(1) push/shift that compacts itself. */
class Fifo<T> {
  items: (T | undefined)[] = [];
  head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

type Stage = "host" | "global" | "running" | "done";

interface Waiter {
  host: string;
  run: () => void;
  stage: Stage;
}

interface HostState {
  active: number;
  waiting: Fifo<Waiter>;
}

export function limiter(maxConcurrent: number, maxPerHost: number): Limiter {
  const max = Math.max(1, maxConcurrent);
  const perHost = Math.max(1, maxPerHost);
  const hosts = new Map<string, HostState>();
  const globalWaiting = new Fifo<Waiter>();
  let active = 0;
  let queued = 0;

  function toGlobal(w: Waiter): void {
    if (active < max) {
      active++;
      w.stage = "running";
      w.run();
    } else {
      w.stage = "global";
      queued++;
      globalWaiting.push(w);
    }
  }

  function nextGlobal(): void {
    while (active < max) {
      const w = globalWaiting.shift();
      if (!w) return;
      if (w.stage !== "global") continue; // cancelled while queued
      queued--;
      active++;
      w.stage = "running";
      w.run();
    }
  }

  function releaseHost(host: string): void {
    const h = hosts.get(host);
    if (!h) return;
    h.active--;
    for (;;) {
      const w = h.waiting.shift();
      if (!w) break;
      if (w.stage !== "host") continue;
      queued--;
      h.active++;
      toGlobal(w);
      break;
    }
    if (h.active === 0 && h.waiting.length === 0) hosts.delete(host);
  }

  return {
    acquire(host, run) {
      const w: Waiter = { host, run, stage: "host" };
      let h = hosts.get(host);
      if (!h) {
        h = { active: 0, waiting: new Fifo() };
        hosts.set(host, h);
      }
      if (h.active < perHost) {
        h.active++;
        toGlobal(w);
      } else {
        queued++;
        h.waiting.push(w);
      }
      return {
        release() {
          const stage = w.stage;
          w.stage = "done";
          if (stage === "host") {
            queued--;
          } else if (stage === "global") {
            queued--;
            releaseHost(w.host);
          } else if (stage === "running") {
            active--;
            nextGlobal();
            releaseHost(w.host);
          }
        },
      };
    },
    get inFlight() {
      return active;
    },
    get queued() {
      return queued;
    },
    get hosts() {
      return hosts.size;
    },
  };
}
