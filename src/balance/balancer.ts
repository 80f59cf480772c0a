/**
 * A balancer: one strategy over one snapshot of a service's endpoints, plus
 * the rules every strategy shares.
 *
 * Which endpoints can receive traffic ("eligible"):
 * - never a draining endpoint, never one of weight 0;
 * - normally only healthy endpoints;
 * - when the published set is flagged `panic` (too few healthy instances, so
 *   the operator published every non-draining one), healthy or not: failing
 *   open spreads load instead of crushing the few survivors.
 *
 * Zone-aware preference: a caller that says which zone it is in gets an
 * endpoint of its own zone while that zone is healthy enough (see
 * `zonePreferred`); otherwise it picks across all zones. Nothing changes in
 * panic: all eligible endpoints of all zones are used.
 *
 * Tables are computed once per snapshot (the all-zones pool eagerly, a zone's
 * pool on its first use); picks allocate nothing except the release handle of
 * LeastConnections. A new snapshot means a new balancer built by
 * `createBalancer`; passing the same `InFlightTracker` keeps the in-flight
 * counts of endpoints that remain.
 */
import { type ConsistentHash, createMaglev, createRingHash } from "./consistent-hash.ts";
import { createLeastConnections, type InFlightCounter } from "./least-connections.ts";
import { createWeightedRandom } from "./random.ts";
import { createRoundRobin } from "./round-robin.ts";
import type { BalanceEndpoint, BalancerOptions, Rng, StrategyName, ZoneAwareOptions } from "./types.ts";
import { createSmoothWeightedRoundRobin } from "./weighted-round-robin.ts";

export interface PickOptions {
  /** Consistent-hash key; ignored by the other strategies. Without one, ConsistentHash picks at random (weighted). */
  key?: string | undefined;
  /** The caller's zone, for zone-aware preference. */
  zone?: string | undefined;
}

/** A picked endpoint. Call `release()` when the request ends (idempotent; a no-op except for LeastConnections). */
export interface Picked<T> {
  readonly endpoint: T;
  release(): void;
}

/** In-flight request counts by endpoint id, kept across rebuilds of a service's balancer. */
export interface InFlightTracker {
  /** Current in-flight count of an endpoint (0 if unknown). */
  get(id: string): number;
  /** The live counter of an endpoint, created at 0. */
  counter(id: string): InFlightCounter;
  /** Forgets endpoints that are not in `ids`; handles still out on them become harmless. */
  retain(ids: ReadonlySet<string>): void;
}

export function createInFlightTracker(): InFlightTracker {
  const counters = new Map<string, InFlightCounter>();
  return {
    get: (id) => counters.get(id)?.n ?? 0,
    counter(id) {
      let c = counters.get(id);
      if (!c) {
        c = { n: 0 };
        counters.set(id, c);
      }
      return c;
    },
    retain(ids) {
      for (const id of counters.keys()) if (!ids.has(id)) counters.delete(id);
    },
  };
}

export interface Balancer<T> {
  readonly strategy: StrategyName;
  readonly panic: boolean;
  /** The snapshot, sorted by id (duplicates dropped, first kept). */
  readonly endpoints: readonly T[];
  /** Endpoints that can receive traffic from a caller with no zone. */
  readonly eligible: readonly T[];
  /** The endpoint to use, or undefined when no endpoint is eligible. */
  pick(options?: PickOptions): Picked<T> | undefined;
  /** Whether a caller in `zone` is kept in its zone right now. */
  zonePreferred(zone: string): boolean;
  /** In-flight requests on an endpoint (LeastConnections counts them; other strategies report 0). */
  inFlight(id: string): number;
}

export interface CreateBalancerOptions extends BalancerOptions {
  /** The published panic flag. */
  panic?: boolean;
  /** Keep LeastConnections counts across rebuilds by passing the previous balancer's tracker. */
  tracker?: InFlightTracker;
}

interface Pool {
  /** Snapshot index of the chosen endpoint, or -1. */
  pick(key: string | undefined): number;
}

const emptyPool: Pool = { pick: () => -1 };
const noop = (): void => {};

/** Weights are integers: anything else is rounded, negatives are 0. */
function weightOf(e: BalanceEndpoint): number {
  return Math.max(0, Math.round(e.weight));
}

/**
 * Whether an endpoint can receive new traffic: not draining, weight > 0, and
 * healthy unless the set is in panic.
 */
export function isEligible(e: BalanceEndpoint, panic: boolean): boolean {
  return !e.draining && weightOf(e) > 0 && (panic || e.healthy);
}

function buildPool(
  strategy: StrategyName,
  members: readonly number[],
  endpoints: readonly BalanceEndpoint[],
  counters: readonly InFlightCounter[] | undefined,
  options: BalancerOptions,
  rng: Rng,
): Pool {
  const n = members.length;
  if (n === 0) return emptyPool;
  const idx = Int32Array.from(members);
  const weights = members.map((i) => weightOf(endpoints[i]!));
  switch (strategy) {
    case "RoundRobin": {
      const rr = createRoundRobin(n, rng);
      return { pick: () => idx[rr.pick()]! };
    }
    case "WeightedRoundRobin": {
      const wrr = createSmoothWeightedRoundRobin(weights);
      return { pick: () => idx[wrr.pick()]! };
    }
    case "Random": {
      const r = createWeightedRandom(weights, rng);
      return { pick: () => idx[r.pick()]! };
    }
    case "LeastConnections": {
      const lc = createLeastConnections(
        weights,
        members.map((i) => counters![i]!),
        { powerOfTwoChoices: options.leastConnections?.powerOfTwoChoices ?? false, rng },
      );
      return { pick: () => idx[lc.pick()]! };
    }
    case "ConsistentHash": {
      const ids = members.map((i) => endpoints[i]!.id);
      const o = options.consistentHash ?? {};
      const ch: ConsistentHash =
        o.algorithm === "maglev"
          ? createMaglev(ids, weights, rng, { tableSize: o.tableSize })
          : createRingHash(ids, weights, rng, {
              vnodes: o.vnodes,
              minRingSize: o.minRingSize,
              maxRingSize: o.maxRingSize,
            });
      return { pick: (key) => idx[key === undefined ? ch.pickRandom() : ch.pick(key)]! };
    }
  }
}

/** How the balancer sees an item that is not itself a BalanceEndpoint. */
export type EndpointView<T> = (item: T) => BalanceEndpoint;

const byId = <E extends { id: string }>(a: E, b: E) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Builds a balancer over `input`. Items are BalanceEndpoints, or anything
 * else with a `view` that maps them to one (computed once, at build): picks
 * return the original items.
 */
export function createBalancer<T extends BalanceEndpoint>(
  input: readonly T[],
  options: CreateBalancerOptions & { view?: EndpointView<T> },
): Balancer<T>;
export function createBalancer<T>(
  input: readonly T[],
  options: CreateBalancerOptions & { view: EndpointView<T> },
): Balancer<T>;
export function createBalancer<T>(
  input: readonly T[],
  options: CreateBalancerOptions & { view?: EndpointView<T> },
): Balancer<T> {
  const { strategy } = options;
  const panic = options.panic ?? false;
  const rng = options.rng ?? Math.random;
  const zoneOpts: ZoneAwareOptions | false = options.zoneAware ?? {};
  const minHealthyPercent = zoneOpts === false ? 0 : (zoneOpts.minHealthyPercent ?? 70);
  const minHealthy = zoneOpts === false ? 0 : Math.max(1, zoneOpts.minHealthy ?? 1);
  const view = options.view ?? ((item: T) => item as unknown as BalanceEndpoint);

  // Id order makes every table independent of the order endpoints arrived in.
  const items: T[] = [];
  const endpoints: BalanceEndpoint[] = [];
  {
    const seen = new Set<string>();
    const sorted = input
      .map((item) => {
        const ep = view(item);
        return { item, ep, id: ep.id };
      })
      .sort(byId);
    for (const { item, ep } of sorted) {
      if (seen.has(ep.id)) continue;
      seen.add(ep.id);
      items.push(item);
      endpoints.push(ep);
    }
  }
  const eligibleIdx: number[] = [];
  for (let i = 0; i < endpoints.length; i++) if (isEligible(endpoints[i]!, panic)) eligibleIdx.push(i);

  const tracker = options.tracker ?? createInFlightTracker();
  tracker.retain(new Set(endpoints.map((e) => e.id)));
  const counters = strategy === "LeastConnections" ? endpoints.map((e) => tracker.counter(e.id)) : undefined;

  // Results for strategies whose release does nothing are made once, so such picks allocate nothing.
  const fixed: Picked<T>[] | undefined =
    strategy === "LeastConnections"
      ? undefined
      : items.map((endpoint) => Object.freeze({ endpoint, release: noop }));

  const globalPool = buildPool(strategy, eligibleIdx, endpoints, counters, options, rng);

  // Per zone: healthy and non-draining counts (weight > 0), for the preference rule.
  const zoneStats = new Map<string, { healthy: number; serving: number }>();
  for (const e of endpoints) {
    if (e.zone === undefined || e.draining || weightOf(e) === 0) continue;
    let s = zoneStats.get(e.zone);
    if (!s) {
      s = { healthy: 0, serving: 0 };
      zoneStats.set(e.zone, s);
    }
    s.serving++;
    if (e.healthy) s.healthy++;
  }
  const zonePreferred = (zone: string): boolean => {
    if (zoneOpts === false || panic) return false;
    const s = zoneStats.get(zone);
    if (!s) return false;
    return s.healthy >= minHealthy && s.healthy * 100 >= minHealthyPercent * s.serving;
  };
  const zonePools = new Map<string, Pool>();
  const poolFor = (zone: string): Pool => {
    let pool = zonePools.get(zone);
    if (pool === undefined) {
      // Zones without endpoints are not cached: callers' zone strings must not grow memory.
      if (!zoneStats.has(zone)) return globalPool;
      pool = zonePreferred(zone)
        ? buildPool(
            strategy,
            eligibleIdx.filter((i) => endpoints[i]!.zone === zone),
            endpoints,
            counters,
            options,
            rng,
          )
        : globalPool;
      zonePools.set(zone, pool);
    }
    return pool;
  };

  return {
    strategy,
    panic,
    endpoints: items,
    eligible: eligibleIdx.map((i) => items[i]!),
    zonePreferred,
    inFlight: (id) => (counters ? tracker.get(id) : 0),
    pick(pickOptions) {
      const zone = pickOptions?.zone;
      const pool = zone === undefined ? globalPool : poolFor(zone);
      const i = pool.pick(pickOptions?.key);
      if (i < 0) return undefined;
      if (fixed) return fixed[i];
      const counter = counters![i]!;
      counter.n++;
      let released = false;
      return {
        endpoint: items[i]!,
        release() {
          if (released) return;
          released = true;
          counter.n--;
        },
      };
    },
  };
}
