import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createBalancer } from "../../../src/balance/balancer.ts";
import {
  createMaglev,
  createRingHash,
  isPrime,
  maglevTableSize,
  nextPrime,
} from "../../../src/balance/consistent-hash.ts";
import { seededRng } from "../../../src/balance/random.ts";
import type { BalanceEndpoint } from "../../../src/balance/types.ts";

const algorithms = ["ring", "maglev"] as const;
type Algorithm = (typeof algorithms)[number];

const ep = (id: string, weight = 100): BalanceEndpoint => ({ id, weight, healthy: true, draining: false });
const keys = (n: number, prefix = "key") => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

function mapping(
  endpoints: readonly BalanceEndpoint[],
  algorithm: Algorithm,
  ks: readonly string[],
): string[] {
  const b = createBalancer(endpoints, { strategy: "ConsistentHash", consistentHash: { algorithm } });
  return ks.map((key) => b.pick({ key })!.endpoint.id);
}

const web = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"].map((a, i) =>
  ep(`web-${i}/${a}`, 100 * (1 + (i % 2))),
);

test("golden mapping: the same keys map to the same endpoints in every process and every release", () => {
  // Changing these values changes where every consumer sends every key: that is a breaking change
  // of the consistent-hash contract (docs/client.md), never an accident.
  const ks = ["alice", "bob", "carol", "dave", "user-42", "ünïcødé"];
  assert.deepEqual(mapping(web, "ring", ks), [
    "web-4/10.0.0.5",
    "web-4/10.0.0.5",
    "web-3/10.0.0.4",
    "web-4/10.0.0.5",
    "web-3/10.0.0.4",
    "web-3/10.0.0.4",
  ]);
  assert.deepEqual(mapping(web, "maglev", ks), [
    "web-3/10.0.0.4",
    "web-1/10.0.0.2",
    "web-1/10.0.0.2",
    "web-4/10.0.0.5",
    "web-0/10.0.0.1",
    "web-1/10.0.0.2",
  ]);
  const count = (algorithm: Algorithm) => {
    const c: Record<string, number> = {};
    for (const id of mapping(web, algorithm, keys(10_000))) c[id] = (c[id] ?? 0) + 1;
    return c;
  };
  assert.deepEqual(count("ring"), {
    "web-0/10.0.0.1": 1357,
    "web-1/10.0.0.2": 2813,
    "web-2/10.0.0.3": 1702,
    "web-3/10.0.0.4": 2899,
    "web-4/10.0.0.5": 1229,
  });
  assert.deepEqual(count("maglev"), {
    "web-0/10.0.0.1": 1453,
    "web-1/10.0.0.2": 2775,
    "web-2/10.0.0.3": 1506,
    "web-3/10.0.0.4": 2844,
    "web-4/10.0.0.5": 1422,
  });
});

const setArb = fc
  .uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 30 })
  .chain((ids) =>
    fc.tuple(
      fc.constant(ids),
      fc.array(fc.integer({ min: 1, max: 500 }), { minLength: ids.length, maxLength: ids.length }),
    ),
  );

for (const algorithm of algorithms) {
  test(`${algorithm}: independent of insertion order and identical across instances`, () => {
    fc.assert(
      fc.property(setArb, fc.integer(), ([ids, weights], seed) => {
        const endpoints = ids.map((id, i) => ep(id, weights[i]));
        const shuffled = [...endpoints];
        const rng = seededRng(seed);
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = Math.floor(rng() * (i + 1));
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const ks = keys(200);
        assert.deepEqual(mapping(endpoints, algorithm, ks), mapping(shuffled, algorithm, ks));
      }),
      { numRuns: 40 },
    );
  });

  test(`${algorithm}: when one of N endpoints leaves, about 1/N of the keys move`, () => {
    const ks = keys(20_000);
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 40 }), fc.nat(), (n, r) => {
        const all = Array.from({ length: n }, (_, i) => ep(`ep-${i}`));
        const removed = `ep-${r % n}`;
        const before = mapping(all, algorithm, ks);
        const after = mapping(
          all.filter((e) => e.id !== removed),
          algorithm,
          ks,
        );
        let moved = 0;
        let movedFromOthers = 0;
        for (let k = 0; k < ks.length; k++) {
          if (before[k] === after[k]) continue;
          moved++;
          if (before[k] !== removed) movedFromOthers++;
        }
        const fraction = moved / ks.length;
        if (algorithm === "ring") {
          // The ring moves exactly the keys the removed endpoint owned: its share, ~1/N.
          assert.equal(movedFromOthers, 0);
          assert.ok(fraction <= 1.5 / n && fraction >= 0.5 / n, `moved ${fraction}, 1/N = ${1 / n}`);
        } else {
          // Maglev moves the removed endpoint's keys plus a few others (more as N approaches M/100).
          assert.ok(fraction <= 1.5 / n, `moved ${fraction}, 1/N = ${1 / n}`);
          assert.ok(movedFromOthers / ks.length <= 0.5 / n, `moved from others ${movedFromOthers}`);
        }
      }),
      { numRuns: 15 },
    );
  });

  test(`${algorithm}: when an endpoint joins, keys move only to it`, () => {
    const ks = keys(20_000);
    const all = Array.from({ length: 12 }, (_, i) => ep(`ep-${i}`));
    const before = mapping(all, algorithm, ks);
    const after = mapping([...all, ep("new")], algorithm, ks);
    let moved = 0;
    let elsewhere = 0;
    for (let k = 0; k < ks.length; k++) {
      if (before[k] === after[k]) continue;
      moved++;
      if (after[k] !== "new") elsewhere++;
    }
    assert.ok(moved / ks.length <= 1.5 / 13);
    if (algorithm === "ring") assert.equal(elsewhere, 0);
    else assert.ok(elsewhere / ks.length <= 0.5 / 13);
  });

  test(`${algorithm}: key shares follow weights`, () => {
    const endpoints = [ep("a", 100), ep("b", 300), ep("c", 600), ep("d", 1000)];
    const counts = new Map<string, number>();
    const ks = keys(50_000, "w");
    for (const id of mapping(endpoints, algorithm, ks)) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const e of endpoints) {
      const share = (counts.get(e.id) ?? 0) / ks.length;
      const expected = e.weight / 2000;
      // Maglev's table follows weights to within a slot per turn; the ring to within its point variance.
      const tolerance = algorithm === "maglev" ? 0.1 : 0.35;
      assert.ok(Math.abs(share - expected) <= tolerance * expected, `${e.id}: ${share} vs ${expected}`);
    }
  });
}

test("maglev: slots per endpoint are proportional to weight", () => {
  const m = createMaglev(["a", "b", "c"], [1, 2, 7], seededRng(1), { tableSize: 65537 });
  const counts = [0, 0, 0];
  for (const i of m.table) counts[i]!++;
  assert.ok(Math.abs(counts[0]! / 65537 - 0.1) < 0.001);
  assert.ok(Math.abs(counts[1]! / 65537 - 0.2) < 0.001);
  assert.ok(Math.abs(counts[2]! / 65537 - 0.7) < 0.001);
});

test("maglev table size: a prime, grown only for sets with fewer than 10 slots per endpoint", () => {
  assert.equal(maglevTableSize(100), 65537);
  assert.equal(maglevTableSize(100, 251 * 4 + 5), 1009);
  assert.equal(maglevTableSize(10_000), nextPrime(100_000));
  assert.ok(isPrime(maglevTableSize(10_000)));
  assert.throws(() => maglevTableSize(10, 1000), RangeError);
});

test("without a key, ConsistentHash picks at random in proportion to weight", () => {
  const b = createBalancer([ep("a", 100), ep("b", 300)], {
    strategy: "ConsistentHash",
    consistentHash: { algorithm: "maglev" },
    rng: seededRng(5),
  });
  let a = 0;
  for (let i = 0; i < 20_000; i++) if (b.pick()!.endpoint.id === "a") a++;
  assert.ok(Math.abs(a / 20_000 - 0.25) < 0.02);
});

test("ring cap: sets larger than maxRingSize still get at least one point each", () => {
  const endpoints = Array.from({ length: 50 }, (_, i) => ep(`e${i}`));
  const b = createBalancer(endpoints, {
    strategy: "ConsistentHash",
    consistentHash: { algorithm: "ring", maxRingSize: 60 },
  });
  const seen = new Set(keys(5000).map((key) => b.pick({ key })!.endpoint.id));
  assert.ok(seen.size > 25);
});

test("ring size: vnodes per weight 100, floored by minRingSize and capped by maxRingSize", () => {
  const rng = seededRng(1);
  assert.equal(createRingHash(["a", "b"], [100, 300], rng).size, 400);
  assert.equal(createRingHash(["a", "b"], [100, 300], rng, { vnodes: 10 }).size, 40);
  assert.equal(createRingHash(["a", "b"], [100, 300], rng, { minRingSize: 1024 }).size, 1024);
  assert.equal(createRingHash(["a", "b"], [100, 300], rng, { minRingSize: 100 }).size, 400);
  assert.equal(createRingHash(["a", "b"], [100, 300], rng, { maxRingSize: 100 }).size, 100);
  // Above the floor, an endpoint leaving moves only its own keys.
  const ids = Array.from({ length: 20 }, (_, i) => `e${i}`);
  const w = ids.map(() => 100);
  const before = createRingHash(ids, w, rng, { minRingSize: 1024 });
  const after = createRingHash(ids.slice(1), w.slice(1), rng, { minRingSize: 1024 });
  for (let k = 0; k < 5000; k++) {
    const b = before.pick(`k${k}`);
    if (b !== 0) assert.equal(after.pick(`k${k}`) + 1, b);
  }
});
