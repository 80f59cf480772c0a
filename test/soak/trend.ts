/**
 * Is a resource flat over a soak? Samples are (seconds since start, value).
 *
 * Memory moves in a sawtooth (the heap grows until a major GC, which gives
 * pages back) and probe connections come and go in bursts, with periods of
 * minutes; a line fitted to a short stretch of a sawtooth mostly measures
 * where in the tooth it starts. So growth is judged on the upper envelope:
 *
 * - `growthLastHalf`: the 90th percentile of the last quarter's samples
 *   against that of the third quarter (the two quarters of the last half;
 *   the first half is warm-up: heap sizing, JIT, connection pools), as a
 *   fraction; `increaseLastHalf` is the same difference in units. A leak
 *   raises every tooth, so it raises the envelope; the 90th percentile
 *   ignores a single spike.
 * - reported as well: least-squares slope over all samples (per hour), the
 *   means of the first and last quarter, minimum and maximum.
 *
 * The limits ("flat") are in soak.ts.
 */

export interface Trend {
  samples: number;
  first: number;
  last: number;
  min: number;
  max: number;
  firstQuarter: number;
  lastQuarter: number;
  slopePerHour: number;
  p90ThirdQuarter: number;
  p90LastQuarter: number;
  increaseLastHalf: number;
  growthLastHalf: number;
}

export function leastSquaresSlope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

export function p90(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
}

export function trend(points: readonly (readonly [number, number])[]): Trend {
  const ys = points.map((p) => p[1]);
  const n = ys.length;
  const quarter = (k: number) => ys.slice(Math.floor((k * n) / 4), Math.floor(((k + 1) * n) / 4));
  const third = p90(quarter(2));
  const last = p90(quarter(3));
  const increase = last - third;
  return {
    samples: n,
    first: ys[0] ?? Number.NaN,
    last: ys.at(-1) ?? Number.NaN,
    min: n ? Math.min(...ys) : Number.NaN,
    max: n ? Math.max(...ys) : Number.NaN,
    firstQuarter: mean(quarter(0)),
    lastQuarter: mean(quarter(3)),
    slopePerHour: leastSquaresSlope(points) * 3600,
    p90ThirdQuarter: third,
    p90LastQuarter: last,
    increaseLastHalf: increase,
    growthLastHalf: third > 0 ? increase / third : increase > 0 ? Number.POSITIVE_INFINITY : 0,
  };
}
