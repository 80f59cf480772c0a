import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createBalancer } from "../../../src/balance/balancer.ts";
import { seededRng } from "../../../src/balance/random.ts";
import { type BalanceEndpoint, type StrategyName, strategyNames } from "../../../src/balance/types.ts";

interface Ep extends BalanceEndpoint {
  readonly zone: string;
}

const endpointArb: fc.Arbitrary<Ep> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 6 }),
  weight: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 })),
  zone: fc.constantFrom("a", "b", "c"),
  healthy: fc.boolean(),
  draining: fc.boolean(),
});

function picks(
  strategy: StrategyName,
  endpoints: readonly Ep[],
  n: number,
  opts: { zone?: string; panic?: boolean } = {},
) {
  const b = createBalancer(endpoints, { strategy, panic: opts.panic, rng: seededRng(9) });
  const out: Ep[] = [];
  for (let i = 0; i < n; i++) {
    const p = b.pick({ key: `k${i}`, zone: opts.zone });
    if (!p) break;
    out.push(p.endpoint);
    if (i % 2 === 0) p.release();
  }
  return { b, out };
}

for (const strategy of strategyNames) {
  test(`${strategy}: never picks a draining, weight-0 or (outside panic) unhealthy endpoint`, () => {
    fc.assert(
      fc.property(
        fc.array(endpointArb, { maxLength: 12 }),
        fc.boolean(),
        fc.option(fc.constantFrom("a", "b", "c")),
        (eps, panic, zone) => {
          const { b, out } = picks(strategy, eps, 60, { panic, zone: zone ?? undefined });
          const eligible = b.eligible;
          if (eligible.length === 0) assert.equal(out.length, 0);
          else assert.equal(out.length, 60);
          for (const e of out) {
            assert.equal(e.draining, false);
            assert.ok(e.weight > 0);
            if (!panic) assert.equal(e.healthy, true);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test(`${strategy}: in panic, unhealthy non-draining endpoints take traffic too`, () => {
    const eps: Ep[] = [
      { id: "up", weight: 10, zone: "a", healthy: true, draining: false },
      { id: "down1", weight: 10, zone: "a", healthy: false, draining: false },
      { id: "down2", weight: 10, zone: "b", healthy: false, draining: false },
      { id: "drained", weight: 10, zone: "a", healthy: true, draining: true },
    ];
    const normal = new Set(picks(strategy, eps, 300).out.map((e) => e.id));
    assert.deepEqual([...normal], ["up"]);
    const panicking = new Set(picks(strategy, eps, 300, { panic: true, zone: "a" }).out.map((e) => e.id));
    assert.deepEqual([...panicking].sort(), ["down1", "down2", "up"]);
  });

  test(`${strategy}: a caller's zone is preferred while that zone is healthy enough`, () => {
    const zoneA = Array.from(
      { length: 4 },
      (_, i): Ep => ({
        id: `a${i}`,
        weight: 10,
        zone: "a",
        healthy: i < 3, // 3 of 4 healthy: 75% >= 70%
        draining: false,
      }),
    );
    const zoneB = Array.from(
      { length: 4 },
      (_, i): Ep => ({
        id: `b${i}`,
        weight: 10,
        zone: "b",
        healthy: i < 2, // 2 of 4 healthy: 50% < 70%
        draining: false,
      }),
    );
    const eps = [...zoneA, ...zoneB];
    const fromA = picks(strategy, eps, 400, { zone: "a" }).out;
    assert.ok(fromA.every((e) => e.zone === "a"));
    // Zone b is not healthy enough: its callers spread over every zone.
    const fromB = new Set(picks(strategy, eps, 400, { zone: "b" }).out.map((e) => e.zone));
    assert.deepEqual([...fromB].sort(), ["a", "b"]);
    // Unknown zone, or no zone: every zone.
    assert.equal(new Set(picks(strategy, eps, 400, { zone: "z" }).out.map((e) => e.zone)).size, 2);
    assert.equal(new Set(picks(strategy, eps, 400).out.map((e) => e.zone)).size, 2);
    // Draining endpoints are a deliberate removal: they do not count against the zone's health.
    const drainedB = eps.map((e) => (e.id === "b3" || e.id === "b2" ? { ...e, draining: true } : e));
    assert.ok(picks(strategy, drainedB, 200, { zone: "b" }).out.every((e) => e.zone === "b"));
  });
}

test("zone preference: thresholds are configurable, can be turned off, and are off in panic", () => {
  const eps: Ep[] = [
    { id: "a0", weight: 1, zone: "a", healthy: true, draining: false },
    { id: "a1", weight: 1, zone: "a", healthy: false, draining: false },
    { id: "b0", weight: 1, zone: "b", healthy: true, draining: false },
  ];
  assert.equal(createBalancer(eps, { strategy: "RoundRobin" }).zonePreferred("a"), false); // 50% < 70%
  assert.equal(
    createBalancer(eps, { strategy: "RoundRobin", zoneAware: { minHealthyPercent: 50 } }).zonePreferred("a"),
    true,
  );
  assert.equal(
    createBalancer(eps, { strategy: "RoundRobin", zoneAware: { minHealthy: 2 } }).zonePreferred("b"),
    false,
  );
  assert.equal(createBalancer(eps, { strategy: "RoundRobin" }).zonePreferred("b"), true);
  assert.equal(createBalancer(eps, { strategy: "RoundRobin", zoneAware: false }).zonePreferred("b"), false);
  assert.equal(createBalancer(eps, { strategy: "RoundRobin", panic: true }).zonePreferred("b"), false);
});

test("no eligible endpoint: pick() returns undefined", () => {
  const eps: Ep[] = [{ id: "x", weight: 1, zone: "a", healthy: false, draining: false }];
  for (const strategy of strategyNames) {
    assert.equal(createBalancer(eps, { strategy }).pick(), undefined);
    assert.equal(createBalancer([], { strategy }).pick({ zone: "a", key: "k" }), undefined);
  }
});

test("endpoints are kept in id order with duplicate ids dropped", () => {
  const mk = (id: string, weight: number): Ep => ({ id, weight, zone: "a", healthy: true, draining: false });
  const b = createBalancer([mk("c", 1), mk("a", 1), mk("b", 1), mk("a", 5)], { strategy: "RoundRobin" });
  assert.deepEqual(
    b.endpoints.map((e) => [e.id, e.weight]),
    [
      ["a", 1],
      ["b", 1],
      ["c", 1],
    ],
  );
});

test("RoundRobin rotates through every eligible endpoint in turn, from a random start", () => {
  const eps = ["a", "b", "c", "d"].map(
    (id): Ep => ({ id, weight: 1 + id.charCodeAt(0), zone: "z", healthy: true, draining: false }),
  );
  const b = createBalancer(eps, { strategy: "RoundRobin", rng: () => 0.6 });
  const seq = Array.from({ length: 8 }, () => b.pick()!.endpoint.id);
  assert.deepEqual(seq, ["c", "d", "a", "b", "c", "d", "a", "b"]);
});

test("picks of strategies without in-flight tracking allocate no new result objects", () => {
  const eps = ["a", "b"].map((id): Ep => ({ id, weight: 1, zone: "z", healthy: true, draining: false }));
  for (const strategy of ["RoundRobin", "WeightedRoundRobin", "Random", "ConsistentHash"] as const) {
    const b = createBalancer(eps, { strategy, rng: seededRng(1) });
    const seen = new Set<unknown>();
    for (let i = 0; i < 50; i++) seen.add(b.pick({ key: `k${i % 7}` }));
    assert.ok(seen.size <= 2, strategy);
  }
});
