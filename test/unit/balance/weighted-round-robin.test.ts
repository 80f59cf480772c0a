import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createSmoothWeightedRoundRobin } from "../../../src/balance/weighted-round-robin.ts";

const weightsArb = fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 8 });

function run(weights: number[], picks: number, maxCachedPeriod?: number): number[] {
  const wrr = createSmoothWeightedRoundRobin(weights, { maxCachedPeriod });
  return Array.from({ length: picks }, () => wrr.pick());
}

test("nginx's example: weights {5,1,1} give a a b a c a a", () => {
  assert.deepEqual(run([5, 1, 1], 7), [0, 0, 1, 0, 2, 0, 0]);
});

test("every window of sum-of-weights consecutive picks holds each endpoint exactly weight times", () => {
  fc.assert(
    fc.property(weightsArb, (weights) => {
      const total = weights.reduce((a, b) => a + b, 0);
      const seq = run(weights, 3 * total);
      const counts = new Array<number>(weights.length).fill(0);
      for (let t = 0; t < seq.length; t++) {
        counts[seq[t]!]!++;
        if (t >= total) counts[seq[t - total]!]!--;
        if (t >= total - 1) assert.deepEqual(counts, weights, `window ending at ${t}`);
      }
    }),
    { numRuns: 300 },
  );
});

test("picks are interleaved: an endpoint never runs more than ceil(w / heaviest other w) times in a row", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 2, maxLength: 8 }), (weights) => {
      const total = weights.reduce((a, b) => a + b, 0);
      const seq = run(weights, 2 * total); // two periods: runs across the period boundary count too
      const maxRun = new Array<number>(weights.length).fill(0);
      let run_ = 0;
      for (let t = 0; t < seq.length; t++) {
        run_ = t > 0 && seq[t] === seq[t - 1] ? run_ + 1 : 1;
        maxRun[seq[t]!] = Math.max(maxRun[seq[t]!]!, run_);
      }
      for (let i = 0; i < weights.length; i++) {
        const heaviestOther = Math.max(...weights.filter((_, j) => j !== i));
        assert.ok(
          maxRun[i]! <= Math.ceil(weights[i]! / heaviestOther),
          `endpoint ${i} (weight ${weights[i]}) ran ${maxRun[i]} in a row, weights ${weights}`,
        );
      }
    }),
    { numRuns: 300 },
  );
});

test("equal weights alternate strictly (plain rotation)", () => {
  assert.deepEqual(run([3, 3, 3], 6), [0, 1, 2, 0, 1, 2]);
});

test("the cached period replays exactly what the O(n) step computes", () => {
  fc.assert(
    fc.property(weightsArb, fc.integer({ min: 1, max: 500 }), (weights, picks) => {
      assert.deepEqual(run(weights, picks), run(weights, picks, 0));
    }),
  );
});

test("the period is sum(weights) / gcd(weights)", () => {
  assert.equal(createSmoothWeightedRoundRobin([100, 200, 300]).period, 6);
  assert.equal(createSmoothWeightedRoundRobin([7]).period, 1);
});

test("rejects weights that are not positive integers", () => {
  assert.throws(() => createSmoothWeightedRoundRobin([1, 0]), RangeError);
  assert.throws(() => createSmoothWeightedRoundRobin([1.5]), RangeError);
  assert.throws(() => createSmoothWeightedRoundRobin([]), RangeError);
});
