/**
 * Compares what is published (per source: the EndpointSlices' ready
 * addresses, the ConfigMaps' ready addresses) with the ground truth, address
 * by address, as both change.
 *
 * Every truth event "touches" the addresses it may move (truth.ts); after a
 * touch the published state has `deadlineMs` to agree with the truth. Then:
 *
 * - a **transition** is a change of an address's expected readiness; it is
 *   *confirmed* when the source publishes the new value (latency recorded),
 *   *superseded* when the truth changes again first;
 * - a **miss**: published ≠ truth for longer than `deadlineMs` after the
 *   address was last touched (a transition never published, or published
 *   late: both are recorded, with the time it was resolved, if ever);
 * - a **flap**: a published change *away* from the truth more than
 *   `deadlineMs` after the last touch, i.e. readiness that moved without any
 *   truth change that could explain it. A change away from the truth within
 *   the window is *transient* (e.g. a service passing through a smaller set
 *   on its way into panic, docs/reliability.md finding 2) and only counted.
 *
 * Pure bookkeeping: times are passed in, nothing is read from a clock.
 */

export interface Incident {
  kind: "miss" | "flap";
  source: string;
  address: string;
  /** Instance and service, as the soak knows them. */
  what: string;
  expected: boolean;
  published: boolean;
  lastTouchAt: number;
  detectedAt: number;
  /** When the source agreed with the truth again; undefined: never (by the end). */
  resolvedAt?: number;
  /** The soak's recent actions on this address or its service. */
  history: string[];
}

export interface CheckerOptions {
  deadlineMs: number;
  sources: readonly string[];
  truth(address: string): boolean;
  describe(address: string): string;
  history(address: string): string[];
}

export interface CheckerSummary {
  transitions: number;
  /** Per source: transitions confirmed, superseded, and publication latency (ms) of the confirmed ones. */
  bySource: Record<string, { confirmed: number; superseded: number; transient: number; latencies: number[] }>;
  misses: Incident[];
  flaps: Incident[];
}

export interface Checker {
  /** The published state when checking starts (after the initial convergence). */
  seed(source: string, ready: Iterable<string>): void;
  touch(addresses: Iterable<string>, at: number): void;
  truthChanged(address: string, value: boolean, at: number): void;
  published(source: string, address: string, value: boolean, at: number): void;
  /** Detects mismatches that outlived their deadline. */
  tick(now: number): void;
  /** Current disagreements, whatever their age. */
  mismatches(): { source: string; address: string; expected: boolean }[];
  /** Addresses touched within the last `deadlineMs`. */
  settling(now: number): number;
  summary(): CheckerSummary;
}

export function createChecker(o: CheckerOptions): Checker {
  const lastTouch = new Map<string, number>();
  const pub = new Map<string, Set<string>>(o.sources.map((s) => [s, new Set<string>()]));
  const pending = new Map<string, Map<string, number>>(o.sources.map((s) => [s, new Map()]));
  const open = new Map<string, Map<string, Incident>>(o.sources.map((s) => [s, new Map()]));
  const summary: CheckerSummary = {
    transitions: 0,
    bySource: Object.fromEntries(
      o.sources.map((s) => [s, { confirmed: 0, superseded: 0, transient: 0, latencies: [] }]),
    ),
    misses: [],
    flaps: [],
  };
  const expired = (address: string, now: number) =>
    now > (lastTouch.get(address) ?? Number.NEGATIVE_INFINITY) + o.deadlineMs;

  const incident = (
    kind: Incident["kind"],
    source: string,
    address: string,
    published: boolean,
    at: number,
  ): Incident => {
    const i: Incident = {
      kind,
      source,
      address,
      what: o.describe(address),
      expected: o.truth(address),
      published,
      lastTouchAt: lastTouch.get(address) ?? Number.NaN,
      detectedAt: at,
      history: o.history(address),
    };
    (kind === "miss" ? summary.misses : summary.flaps).push(i);
    return i;
  };

  const universe = () => {
    const all = new Set<string>(lastTouch.keys());
    for (const set of pub.values()) for (const a of set) all.add(a);
    for (const m of open.values()) for (const a of m.keys()) all.add(a);
    return all;
  };

  return {
    seed(source, ready) {
      pub.set(source, new Set(ready));
    },
    touch(addresses, at) {
      for (const a of addresses) lastTouch.set(a, at);
    },
    truthChanged(address, value, at) {
      summary.transitions++;
      for (const source of o.sources) {
        const waiting = pending.get(source)!;
        if (waiting.has(address)) {
          summary.bySource[source]!.superseded++;
          waiting.delete(address);
        }
        if (pub.get(source)!.has(address) !== value) waiting.set(address, at);
      }
    },
    published(source, address, value, at) {
      const set = pub.get(source)!;
      if (set.has(address) === value) return;
      if (value) set.add(address);
      else set.delete(address);
      const s = summary.bySource[source]!;
      const openHere = open.get(source)!;
      if (value === o.truth(address)) {
        const since = pending.get(source)!.get(address);
        pending.get(source)!.delete(address);
        const inc = openHere.get(address);
        if (inc) {
          inc.resolvedAt = at;
          openHere.delete(address);
        } else if (expired(address, at)) {
          // Wrong for longer than the deadline, fixed before a tick saw it: late.
          incident("miss", source, address, !value, at).resolvedAt = at;
        } else if (since !== undefined) {
          s.confirmed++;
          s.latencies.push(at - since);
        }
        return;
      }
      if (!expired(address, at)) {
        s.transient++;
        return;
      }
      if (!openHere.has(address)) openHere.set(address, incident("flap", source, address, value, at));
    },
    tick(now) {
      for (const a of universe()) {
        const e = o.truth(a);
        let settled = expired(a, now);
        for (const source of o.sources) {
          const p = pub.get(source)!.has(a);
          const openHere = open.get(source)!;
          if (p === e) {
            const inc = openHere.get(a);
            if (inc) {
              inc.resolvedAt = now;
              openHere.delete(a);
            }
            continue;
          }
          settled = false;
          if (!expired(a, now) || openHere.has(a)) continue;
          pending.get(source)!.delete(a);
          openHere.set(a, incident("miss", source, a, p, now));
        }
        // Forget addresses that are quiet and agree everywhere (deleted instances).
        if (settled && !e && o.sources.every((s) => !pub.get(s)!.has(a))) lastTouch.delete(a);
      }
    },
    mismatches() {
      const out: { source: string; address: string; expected: boolean }[] = [];
      for (const a of universe()) {
        const e = o.truth(a);
        for (const source of o.sources) {
          if (pub.get(source)!.has(a) !== e) out.push({ source, address: a, expected: e });
        }
      }
      return out;
    },
    settling(now) {
      let n = 0;
      for (const a of lastTouch.keys()) if (!expired(a, now)) n++;
      return n;
    },
    summary: () => summary,
  };
}
