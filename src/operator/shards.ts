/**
 * Which replica probes which instance. With one replica it probes them all;
 * with sharding on, the live members (src/kube/membership.ts) split the
 * instances by rendezvous hashing (highest random weight): each instance
 * goes to the member with the highest hash of (member, instance). Every
 * replica computes the same owner from the same member list without talking
 * to the others, shares are even (binomial), and when a member joins or
 * leaves only the instances it gains or loses move.
 */
import { murmur3 } from "../util/hash.ts";

export interface Shards {
  /** Whether this replica probes the instance and writes its status. */
  owns(instanceKey: string): boolean;
}

/** One replica (sharding off): it owns every instance. */
export const allShards: Shards = { owns: () => true };

/** The member that owns `key`, or undefined when there are no members. */
export function rendezvousOwner(key: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const score = murmur3(key, murmur3(m));
    // Ties (rare with 32 bits) go to the smaller name, so every replica agrees.
    if (score > bestScore || (score === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/**
 * The shares of `identity` among `members()`: nothing while the member list
 * is empty (not joined yet), so a starting replica never probes everything
 * for a moment before the others are known.
 */
export function memberShards(identity: string, members: () => readonly string[]): Shards {
  return { owns: (key) => rendezvousOwner(key, members()) === identity };
}
