/**
 * Types shared by the load-balancing strategies. The strategies are pure
 * algorithms over a snapshot of endpoints; they know nothing about Kubernetes
 * or the published ConfigMap format (the client maps that format onto these).
 */

import { LOAD_BALANCING_STRATEGIES } from "../api/published.ts";

export const strategyNames = LOAD_BALANCING_STRATEGIES;
export type StrategyName = (typeof strategyNames)[number];

/** What a strategy needs to know about one endpoint. */
export interface BalanceEndpoint {
  /**
   * Stable, unique identity. Consistent hashing hashes it, and every table is
   * built in `id` order, so the same set maps keys identically in every process
   * whatever order the endpoints arrive in.
   */
  readonly id: string;
  /** Relative capacity, >= 0. Weight 0 receives no traffic. */
  readonly weight: number;
  readonly zone?: string | undefined;
  /** Passed its health checks (as published). */
  readonly healthy: boolean;
  /** In maintenance: receives no new traffic, even in panic. */
  readonly draining: boolean;
}

/** A uniform random number in [0, 1). */
export type Rng = () => number;

export interface ConsistentHashOptions {
  /** `ring` (ring hash with virtual nodes, default) or `maglev`. */
  algorithm?: "ring" | "maglev";
  /** Ring: virtual nodes for an endpoint of weight 100 (the default weight); scaled by weight. Default 100. */
  vnodes?: number;
  /** Ring: a set with fewer points in total is scaled up to this many (Envoy's minimum_ring_size). Default 0. */
  minRingSize?: number;
  /** Ring: cap on the total number of points; beyond it every count is scaled down. Default 262144. */
  maxRingSize?: number;
  /** Maglev: lookup table size, a prime. Default 65537. */
  tableSize?: number;
}

export interface LeastConnectionsOptions {
  /**
   * Power of two choices: sample two endpoints (weighted) and take the less
   * loaded one, O(1) per pick instead of a scan of the whole set. Worth it for
   * large sets (hundreds of endpoints). Default false: exact least-loaded.
   */
  powerOfTwoChoices?: boolean;
}

export interface ZoneAwareOptions {
  /**
   * Same-zone endpoints are preferred only while at least this percentage of
   * the zone's non-draining endpoints (weight > 0) are healthy. Default 70,
   * Envoy's overprovisioning factor 1.4 expressed as a floor (1 / 1.4 ≈ 71%).
   */
  minHealthyPercent?: number;
  /** ... and at least this many same-zone endpoints are healthy. Default 1. */
  minHealthy?: number;
}

export interface BalancerOptions {
  strategy: StrategyName;
  consistentHash?: ConsistentHashOptions;
  leastConnections?: LeastConnectionsOptions;
  /** Zone-aware preference settings, or `false` to ignore callers' zones. */
  zoneAware?: ZoneAwareOptions | false;
  /** Randomness for Random, power-of-two-choices, start offsets and keyless hashing; default Math.random. */
  rng?: Rng;
}
