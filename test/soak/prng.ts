/**
 * A small seeded PRNG (mulberry32) so that a soak's sequence of actions is
 * reproducible from its seed. The sequence depends on the seed and on the
 * state the soak reached (what exists when an action is drawn), which in
 * turn depends only on earlier draws: timing does not feed back.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  /** Exponentially distributed with this mean (gaps of a Poisson process). */
  exponential(mean: number): number;
  /** k distinct elements of xs, in random order. */
  sample<T>(xs: readonly T[], k: number): T[];
}

export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: (xs) => {
      if (xs.length === 0) throw new Error("pick from an empty list");
      return xs[int(xs.length)]!;
    },
    exponential: (mean) => -mean * Math.log(1 - next()),
    sample: (xs, k) => {
      const copy = [...xs];
      for (let i = copy.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [copy[i], copy[j]] = [copy[j]!, copy[i]!];
      }
      return copy.slice(0, k);
    },
  };
}
