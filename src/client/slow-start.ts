/**
 * Slow start in the client: the weights a service's balancer is built with
 * while some of its endpoints ramp up (published `slowStartSince` under
 * loadBalancing.slowStart). Each weight is slowStartWeight() of
 * src/api/published.ts, the one definition of the ramp; this module only
 * decides which weight it ramps and how the strategy uses it.
 *
 * - WeightedRoundRobin, LeastConnections, Random: the published weight ramps.
 * - RoundRobin treats endpoints as equal: each counts as weight 100 (the
 *   default weight) and a ramping one as its ramped share of it.
 * - ConsistentHash: never ramps (a moving weight would move keys; the API
 *   does not allow slow start with it).
 * - While any endpoint ramps, RoundRobin and WeightedRoundRobin pick
 *   weighted-random over the ramped weights: the balancer is rebuilt as the
 *   weights move, and a round-robin sequence restarted at every rebuild
 *   would favour whoever comes first in it. Once every ramp is over, the
 *   strategy is itself again.
 */
import { type PublishedSlowStart, slowStartEnd, slowStartWeight } from "../api/published.ts";
import type { StrategyName } from "../balance/index.ts";
import type { RosterEndpoint } from "./endpoint.ts";

/** The weight RoundRobin gives every endpoint of weight > 0 while one ramps. */
export const ROUND_ROBIN_RAMP_WEIGHT = 100;

export interface Ramp {
  /** The weight of every endpoint (by id) at the time asked. */
  weights: ReadonlyMap<string, number>;
  /** When the last ramp of the set ends (ms since the epoch). */
  end: number;
  /** The strategy to balance with while the ramp lasts. */
  strategy: StrategyName;
}

/**
 * The ramp of a set at `nowMs`, or undefined when no endpoint ramps (no slow
 * start published, every window over, or a ConsistentHash strategy): the
 * set is then balanced by its published weights.
 */
export function rampOf(
  endpoints: readonly RosterEndpoint[],
  slowStart: PublishedSlowStart | undefined,
  strategy: StrategyName,
  nowMs: number,
): Ramp | undefined {
  if (!slowStart || strategy === "ConsistentHash") return undefined;
  let end = 0;
  for (const e of endpoints) {
    const until = slowStartEnd(e, slowStart);
    if (until !== undefined && until > nowMs && e.weight > 0) end = Math.max(end, until);
  }
  if (end === 0) return undefined;
  const equal = strategy === "RoundRobin";
  const weights = new Map<string, number>();
  for (const e of endpoints) {
    const weight = equal ? (e.weight > 0 ? ROUND_ROBIN_RAMP_WEIGHT : 0) : e.weight;
    weights.set(e.id, slowStartWeight({ weight, slowStartSince: e.slowStartSince }, slowStart, nowMs));
  }
  const rotating = strategy === "RoundRobin" || strategy === "WeightedRoundRobin";
  return { weights, end, strategy: rotating ? "Random" : strategy };
}

/** Whether two ramps weigh every endpoint the same (no rebuild needed). */
export function sameWeights(a: Ramp | undefined, b: Ramp | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.strategy !== b.strategy || a.weights.size !== b.weights.size) return false;
  for (const [id, w] of a.weights) if (b.weights.get(id) !== w) return false;
  return true;
}
