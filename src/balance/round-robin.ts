/**
 * Plain round-robin: endpoints in turn, weights ignored (except that the
 * balancer never hands weight-0 endpoints to any strategy). The rotation
 * starts at a random offset so that many clients rebuilt at the same moment
 * do not all send their first request to the same endpoint.
 */
import type { Rng } from "./types.ts";

export interface RoundRobin {
  pick(): number;
}

export function createRoundRobin(size: number, rng: Rng): RoundRobin {
  if (size <= 0) throw new RangeError("createRoundRobin: empty set");
  let next = Math.min(size - 1, Math.floor(rng() * size));
  return {
    pick() {
      const i = next;
      next = i + 1 === size ? 0 : i + 1;
      return i;
    },
  };
}
