import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createWeightedRandom, seededRng } from "../../../src/balance/random.ts";

test("the alias table gives each position exactly weight / total of the unit interval", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 20 }), (weights) => {
      const total = weights.reduce((a, b) => a + b, 0);
      // A grid "rng" sweeping [0, 1) evenly measures the probability of each position.
      const grid = 200_000;
      let k = 0;
      const wr = createWeightedRandom(weights, () => (k++ + 0.5) / grid);
      const counts = new Array<number>(weights.length).fill(0);
      for (let i = 0; i < grid; i++) counts[wr.pick()]!++;
      for (let i = 0; i < weights.length; i++) {
        // Grid resolution: each position can be off by about one grid step per column.
        assert.ok(Math.abs(counts[i]! / grid - weights[i]! / total) <= (weights.length + 1) / grid);
      }
    }),
    { numRuns: 50 },
  );
});

test("with a seeded generator the distribution stays within 5 standard deviations of the weights", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 12 }),
      fc.integer(),
      (weights, seed) => {
        const total = weights.reduce((a, b) => a + b, 0);
        const draws = 20_000;
        const wr = createWeightedRandom(weights, seededRng(seed));
        const counts = new Array<number>(weights.length).fill(0);
        for (let i = 0; i < draws; i++) counts[wr.pick()]!++;
        for (let i = 0; i < weights.length; i++) {
          const p = weights[i]! / total;
          const sd = Math.sqrt(draws * p * (1 - p));
          assert.ok(
            Math.abs(counts[i]! - draws * p) <= 5 * sd + 1,
            `position ${i}: ${counts[i]} vs ${draws * p}`,
          );
        }
      },
    ),
    { numRuns: 50, seed: 42 },
  );
});

test("seededRng is reproducible and uniform enough", () => {
  const a = seededRng(7);
  const b = seededRng(7);
  const c = seededRng(8);
  const xs = Array.from({ length: 10 }, a);
  assert.deepEqual(xs, Array.from({ length: 10 }, b));
  assert.notDeepEqual(xs, Array.from({ length: 10 }, c));
  const r = seededRng(1);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const x = r();
    assert.ok(x >= 0 && x < 1);
    buckets[Math.floor(x * 10)]!++;
  }
  for (const n of buckets) assert.ok(Math.abs(n - 10_000) < 500);
});
