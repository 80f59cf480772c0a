/**
 * Weighted random selection (Vose's alias method: O(n) build, O(1) pick with
 * one random number) and a small seedable generator for reproducible tests
 * and benchmarks.
 */
import type { Rng } from "./types.ts";

/** sfc32 (Small Fast Counting, 32-bit): seedable, passes PractRand; not for secrets. */
export function seededRng(seed: number): Rng {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed | 0;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Discard the first outputs: they still echo the seed.
  for (let i = 0; i < 15; i++) next();
  return next;
}

export interface WeightedRandom {
  /** A position in `weights`, drawn with probability weight / sum of weights. */
  pick(): number;
}

/**
 * Vose's alias method. Weights must be > 0 and at least one must be given;
 * positions are returned in the order of `weights`.
 */
export function createWeightedRandom(weights: ArrayLike<number>, rng: Rng): WeightedRandom {
  const n = weights.length;
  if (n === 0) throw new RangeError("createWeightedRandom: no weights");
  const prob = new Float64Array(n);
  const alias = new Int32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += weights[i]!;
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < n; i++) {
    prob[i] = (weights[i]! * n) / sum;
    alias[i] = i;
    (prob[i]! < 1 ? small : large).push(i);
  }
  while (small.length > 0 && large.length > 0) {
    const s = small.pop()!;
    const l = large[large.length - 1]!;
    alias[s] = l;
    prob[l] = prob[l]! + prob[s]! - 1;
    if (prob[l]! < 1) {
      large.pop();
      small.push(l);
    }
  }
  // Whatever is left is 1 up to rounding error.
  for (const i of large) prob[i] = 1;
  for (const i of small) prob[i] = 1;
  return {
    pick() {
      const u = rng() * n;
      const i = u | 0;
      return u - i < prob[i]! ? i : alias[i]!;
    },
  };
}
