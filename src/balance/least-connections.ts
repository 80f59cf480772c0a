/**
 * Least connections, weighted: picks the endpoint with the fewest in-flight
 * requests relative to its weight (smallest inFlight / weight; compared by
 * cross-multiplication, so exactly). Endpoints tied on that ratio share
 * traffic by smooth weighted round-robin among themselves, so a caller that
 * sends one request at a time (every endpoint idle, all tied) still spreads
 * its requests in proportion to the weights instead of always hitting the
 * first endpoint.
 *
 * With `powerOfTwoChoices`, two distinct endpoints are drawn at random in
 * proportion to weight and the less loaded one wins: O(1) per pick instead of
 * the O(n) scan, with load that stays close to the exact choice.
 *
 * Counters are plain objects shared with the caller (the balancer keeps them
 * across rebuilds); this module only reads them. Incrementing on pick and
 * decrementing on release is the balancer's job.
 */
import { createWeightedRandom } from "./random.ts";
import type { Rng } from "./types.ts";

export interface InFlightCounter {
  n: number;
}

export interface LeastConnections {
  /** The position of the endpoint to use; the caller then increments its counter. */
  pick(): number;
}

export function createLeastConnections(
  weights: ArrayLike<number>,
  counters: readonly InFlightCounter[],
  options: { powerOfTwoChoices?: boolean; rng: Rng },
): LeastConnections {
  const n = weights.length;
  if (n === 0) throw new RangeError("createLeastConnections: empty set");
  if (counters.length !== n) throw new RangeError("createLeastConnections: one counter per weight");
  const w = Float64Array.from(weights);
  if (n === 1) return { pick: () => 0 };

  if (options.powerOfTwoChoices) {
    const sampler = createWeightedRandom(w, options.rng);
    return {
      pick() {
        const a = sampler.pick();
        let b = sampler.pick();
        // A few redraws make two distinct candidates very likely even when one
        // endpoint holds most of the weight; if not, `a` alone is a fine answer.
        for (let tries = 0; b === a && tries < 4; tries++) b = sampler.pick();
        return counters[b]!.n * w[a]! < counters[a]!.n * w[b]! ? b : a;
      },
    };
  }

  const current = new Float64Array(n);
  return {
    pick() {
      // Pass 1: the smallest n / w.
      let minN = counters[0]!.n;
      let minW = w[0]!;
      for (let i = 1; i < n; i++) {
        const c = counters[i]!.n;
        if (c * minW < minN * w[i]!) {
          minN = c;
          minW = w[i]!;
        }
      }
      // Pass 2: smooth weighted round-robin among the endpoints at that minimum.
      let best = -1;
      let bestValue = Number.NEGATIVE_INFINITY;
      let total = 0;
      for (let i = 0; i < n; i++) {
        const wi = w[i]!;
        if (counters[i]!.n * minW !== minN * wi) continue;
        const c = current[i]! + wi;
        current[i] = c;
        total += wi;
        if (c > bestValue) {
          bestValue = c;
          best = i;
        }
      }
      current[best] = bestValue - total;
      return best;
    },
  };
}
