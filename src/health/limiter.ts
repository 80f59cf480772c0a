/**
 * Bounded, fair probe concurrency.
 *
 * - At most `maxConcurrent` probes in flight, at most `maxPerHost` to one
 *   destination IP (one slow or hostile host cannot take every slot).
 * - Fair between tenants (namespaces) and, within a tenant, between flows
 *   (instances): free slots go to waiters round robin across tenants, then
 *   round robin across the tenant's flows, first in first out within a flow.
 * - Shares: with T tenants holding or waiting for slots, a tenant holding
 *   its share `(maxConcurrent - reserve) / T` or more gets another slot only
 *   while more than `reserve` slots stay free; a flow holding its share of
 *   the tenant while another flow of the tenant waits gets none. So one
 *   tenant alone can use all but `reserve` slots (work-conserving), and when
 *   it hangs all of them a newcomer still finds `reserve` free slots at once
 *   instead of waiting for a hung probe's timeout. No preemption: a slot is
 *   held until its probe ends (bounded by the probe's timeout).
 *
 * Callback-based rather than promise-based: this is on the path of every
 * probe, and a slot is usually free. A waiter can be cancelled (its target
 * was removed, its deadline passed) without ever running.
 */

export interface Ticket {
  /** Gives the slot back, or leaves the queue if it never ran. Idempotent. */
  release(): void;
}

/** Who asks for a slot: the tenant (namespace), the flow within it (instance) and the destination IP. */
export interface SlotKey {
  tenant: string;
  flow: string;
  host: string;
}

export interface LimiterOptions {
  maxConcurrent: number;
  maxPerHost: number;
  /** Slots a tenant over its share may not take (default maxConcurrent / 8). */
  reserve?: number;
}

export interface Limiter {
  acquire(key: SlotKey, run: () => void): Ticket;
  readonly inFlight: number;
  readonly queued: number;
  readonly hosts: number;
  /** Slots the tenant holds now. */
  held(tenant: string): number;
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

type Stage = "host" | "fair" | "running" | "done";

interface Waiter {
  host: string;
  flow: FlowState;
  run: () => void;
  stage: Stage;
}

interface HostState {
  active: number;
  waiting: Fifo<Waiter>;
}

interface FlowState {
  key: string;
  tenant: TenantState;
  active: number;
  /** Waiters in the fair stage (cancelled ones excluded). */
  waiting: number;
  /** Waiters still waiting for a host slot. */
  atHost: number;
  queue: Fifo<Waiter>;
  inRing: boolean;
}

interface TenantState {
  key: string;
  active: number;
  waiting: number;
  /** Flows holding or waiting for slots. */
  flows: Map<string, FlowState>;
  /** Flows with waiters, in round-robin order (may hold drained ones, dropped when met). */
  ring: Fifo<FlowState>;
  waitingFlows: number;
  inRing: boolean;
}

export function limiter(options: LimiterOptions): Limiter {
  const max = Math.max(1, Math.floor(options.maxConcurrent));
  const perHost = Math.max(1, Math.floor(options.maxPerHost));
  const reserve = Math.min(max - 1, Math.max(0, Math.floor(options.reserve ?? max / 8)));
  const hosts = new Map<string, HostState>();
  const tenants = new Map<string, TenantState>();
  const ring = new Fifo<TenantState>();
  let active = 0;
  let queued = 0;

  function flowOf(key: SlotKey): FlowState {
    let t = tenants.get(key.tenant);
    if (!t) {
      t = {
        key: key.tenant,
        active: 0,
        waiting: 0,
        flows: new Map(),
        ring: new Fifo(),
        waitingFlows: 0,
        inRing: false,
      };
      tenants.set(key.tenant, t);
    }
    let f = t.flows.get(key.flow);
    if (!f) {
      f = { key: key.flow, tenant: t, active: 0, waiting: 0, atHost: 0, queue: new Fifo(), inRing: false };
      t.flows.set(key.flow, f);
    }
    return f;
  }

  /** Forgets a flow (and its tenant) that holds and waits for nothing. */
  function tidy(f: FlowState): void {
    const t = f.tenant;
    if (f.active + f.waiting + f.atHost === 0 && !f.inRing && t.flows.get(f.key) === f) t.flows.delete(f.key);
    if (t.flows.size === 0 && !t.inRing && tenants.get(t.key) === t) tenants.delete(t.key);
  }

  function tenantEligible(t: TenantState): boolean {
    const share = Math.max(1, Math.floor((max - reserve) / tenants.size));
    return t.active < share || max - active > reserve;
  }

  function flowEligible(f: FlowState): boolean {
    if (f.tenant.waitingFlows <= 1) return true;
    return f.active < Math.max(1, Math.floor((max - reserve) / f.tenant.flows.size));
  }

  function start(w: Waiter): void {
    const f = w.flow;
    active++;
    f.active++;
    f.tenant.active++;
    w.stage = "running";
    w.run();
  }

  function enqueue(w: Waiter): void {
    const f = w.flow;
    const t = f.tenant;
    w.stage = "fair";
    queued++;
    f.queue.push(w);
    if (f.waiting++ === 0) t.waitingFlows++;
    t.waiting++;
    if (!f.inRing) {
      f.inRing = true;
      t.ring.push(f);
    }
    if (!t.inRing) {
      t.inRing = true;
      ring.push(t);
    }
  }

  /** Takes `w` out of the fair stage's counts (it starts or was cancelled). */
  function unqueue(w: Waiter): void {
    const f = w.flow;
    queued--;
    f.tenant.waiting--;
    if (--f.waiting === 0) f.tenant.waitingFlows--;
  }

  /** The next waiter of an eligible flow of `t`, round robin over its flows. */
  function takeFrom(t: TenantState): Waiter | undefined {
    for (let n = t.ring.length; n > 0; n--) {
      const f = t.ring.shift()!;
      if (f.waiting === 0) {
        f.inRing = false;
        tidy(f);
        continue;
      }
      let w: Waiter | undefined;
      if (flowEligible(f)) {
        do w = f.queue.shift();
        while (w && w.stage !== "fair");
      }
      if (w) unqueue(w);
      if (f.waiting > 0) t.ring.push(f);
      else f.inRing = false;
      if (w) return w;
    }
    return undefined;
  }

  /** Hands free slots to eligible waiters, round robin over tenants. */
  function dispatch(): void {
    while (active < max) {
      let w: Waiter | undefined;
      for (let n = ring.length; n > 0 && !w; n--) {
        const t = ring.shift()!;
        if (t.waiting > 0 && tenantEligible(t)) w = takeFrom(t);
        if (t.waiting > 0) ring.push(t);
        else {
          t.inRing = false;
          if (t.flows.size === 0) tenants.delete(t.key);
        }
      }
      if (!w) return;
      start(w);
    }
  }

  /** A waiter that holds its host slot asks for a global one. */
  function toFair(w: Waiter): void {
    if (
      active < max &&
      w.flow.tenant.waiting === 0 &&
      tenantEligible(w.flow.tenant) &&
      flowEligible(w.flow)
    ) {
      start(w);
    } else {
      enqueue(w);
      dispatch();
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
      w.flow.atHost--;
      h.active++;
      toFair(w);
      break;
    }
    if (h.active === 0 && h.waiting.length === 0) hosts.delete(host);
  }

  return {
    acquire(key, run) {
      const w: Waiter = { host: key.host, flow: flowOf(key), run, stage: "host" };
      let h = hosts.get(key.host);
      if (!h) {
        h = { active: 0, waiting: new Fifo() };
        hosts.set(key.host, h);
      }
      if (h.active < perHost) {
        h.active++;
        toFair(w);
      } else {
        queued++;
        w.flow.atHost++;
        h.waiting.push(w);
      }
      return {
        release() {
          const stage = w.stage;
          w.stage = "done";
          const f = w.flow;
          if (stage === "host") {
            queued--;
            f.atHost--;
            tidy(f);
          } else if (stage === "fair") {
            unqueue(w);
            tidy(f);
            releaseHost(w.host);
            // One tenant fewer can mean larger shares.
            dispatch();
          } else if (stage === "running") {
            active--;
            f.active--;
            f.tenant.active--;
            tidy(f);
            dispatch();
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
    held(tenant) {
      return tenants.get(tenant)?.active ?? 0;
    },
  };
}
