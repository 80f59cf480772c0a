export { murmur3, murmur3Bytes } from "../util/hash.ts";
export type {
  Balancer,
  CreateBalancerOptions,
  EndpointView,
  InFlightTracker,
  Picked,
  PickOptions,
} from "./balancer.ts";
export { createBalancer, createInFlightTracker, isEligible } from "./balancer.ts";
export type { ConsistentHash, RingHashOptions } from "./consistent-hash.ts";
export {
  createMaglev,
  createRingHash,
  DEFAULT_MAGLEV_TABLE_SIZE,
  isPrime,
  maglevTableSize,
  nextPrime,
  ringPointCounts,
} from "./consistent-hash.ts";
export type { InFlightCounter, LeastConnections } from "./least-connections.ts";
export { createLeastConnections } from "./least-connections.ts";
export type { WeightedRandom } from "./random.ts";
export { createWeightedRandom, seededRng } from "./random.ts";
export type { RoundRobin } from "./round-robin.ts";
export { createRoundRobin } from "./round-robin.ts";
export type {
  BalanceEndpoint,
  BalancerOptions,
  ConsistentHashOptions,
  LeastConnectionsOptions,
  Rng,
  StrategyName,
  ZoneAwareOptions,
} from "./types.ts";
export { strategyNames } from "./types.ts";
export type { SmoothWeightedRoundRobin, SmoothWeightedRoundRobinOptions } from "./weighted-round-robin.ts";
export { createSmoothWeightedRoundRobin } from "./weighted-round-robin.ts";
