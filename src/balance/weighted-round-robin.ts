/**
 * Smooth weighted round-robin, the nginx algorithm: on every pick each
 * endpoint's `current` grows by its weight, the largest `current` wins (first
 * one on ties) and gives back the sum of weights. Over any window of
 * sum-of-weights consecutive picks, each endpoint is picked exactly `weight`
 * times, and its picks are spread through the window instead of coming in a
 * burst.
 *
 * The sequence is periodic: after sum(weights) / gcd(weights) picks every
 * `current` is back to zero. So the first period is computed step by step
 * (O(n) per pick) and remembered; later picks replay it in O(1). Periods
 * longer than `maxCachedPeriod` are never cached and always cost O(n).
 */

export interface SmoothWeightedRoundRobin {
  pick(): number;
  /** Length of the pick sequence's period. */
  readonly period: number;
}

export interface SmoothWeightedRoundRobinOptions {
  /** Longest period kept in memory (4 bytes per pick). Default 65536. */
  maxCachedPeriod?: number;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/**
 * Weights must be positive integers (the balancer drops weight-0 endpoints
 * before building). Positions are returned in the order of `weights`; ties go
 * to the earliest position.
 */
export function createSmoothWeightedRoundRobin(
  weights: ArrayLike<number>,
  options: SmoothWeightedRoundRobinOptions = {},
): SmoothWeightedRoundRobin {
  const n = weights.length;
  if (n === 0) throw new RangeError("createSmoothWeightedRoundRobin: empty set");
  let g = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i]!;
    if (!(Number.isInteger(w) && w > 0)) throw new RangeError(`weight must be a positive integer, got ${w}`);
    g = gcd(w, g);
  }
  // Dividing by the gcd gives the same sequence with a shorter period.
  const w = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    w[i] = weights[i]! / g;
    total += w[i]!;
  }
  const current = new Float64Array(n);
  const step = (): number => {
    let best = 0;
    let bestValue = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const c = current[i]! + w[i]!;
      current[i] = c;
      if (c > bestValue) {
        bestValue = c;
        best = i;
      }
    }
    current[best] = bestValue - total;
    return best;
  };
  const maxCached = options.maxCachedPeriod ?? 65536;
  if (total > maxCached) return { pick: step, period: total };

  const period = total;
  const sequence = new Int32Array(period);
  let filled = 0;
  let pos = 0;
  return {
    period,
    pick() {
      let r: number;
      if (pos < filled) {
        r = sequence[pos]!;
      } else {
        r = step();
        sequence[pos] = r;
        filled++;
      }
      pos = pos + 1 === period ? 0 : pos + 1;
      return r;
    },
  };
}
