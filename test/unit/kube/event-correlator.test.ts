import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { eventCorrelator, type SimilarEvent } from "../../../src/kube/event-correlator.ts";

const reasons = ["BecameUnhealthy", "BecameHealthy", "FlapDamping", "Deregistered"];

function ev(i: number, reason: string, note = "HTTP 503"): SimilarEvent {
  return { group: "service/ns/web", object: `si/ns/web-${i}`, type: "Warning", reason, action: reason, note };
}

describe("event correlator", () => {
  test("the 10th distinct similar event and later ones are combined under one key", () => {
    const c = eventCorrelator();
    const keys = Array.from({ length: 30 }, (_, i) => c.aggregate(ev(i, "BecameUnhealthy"), 0));
    assert.deepEqual(
      keys.map((k) => k.combined),
      Array.from({ length: 30 }, (_, i) => i >= 9),
    );
    assert.equal(new Set(keys.slice(9).map((k) => k.key)).size, 1);
    assert.equal(new Set(keys.slice(0, 9).map((k) => k.key)).size, 9);
  });

  test("an identical repeat keeps its own key (a series), and a quiet window starts over", () => {
    const c = eventCorrelator();
    const a = c.aggregate(ev(1, "BecameUnhealthy"), 0);
    assert.deepEqual(c.aggregate(ev(1, "BecameUnhealthy"), 1000), a);
    for (let i = 2; i < 20; i++) c.aggregate(ev(i, "BecameUnhealthy"), 2000);
    assert.equal(c.aggregate(ev(30, "BecameUnhealthy"), 3000).combined, true);
    assert.equal(c.aggregate(ev(31, "BecameUnhealthy"), 3000 + 10 * 60_000 + 1).combined, false);
  });

  test("other groups, types and reasons are counted apart", () => {
    const c = eventCorrelator();
    for (let i = 0; i < 9; i++) c.aggregate(ev(i, "BecameUnhealthy"), 0);
    assert.equal(c.aggregate(ev(100, "BecameHealthy"), 0).combined, false);
    assert.equal(c.aggregate({ ...ev(100, "BecameUnhealthy"), group: "service/ns/api" }, 0).combined, false);
    assert.equal(c.aggregate(ev(100, "BecameUnhealthy"), 0).combined, true);
  });

  test("spam filter: burst per object, one token per refill period", () => {
    const c = eventCorrelator({ burst: 3, refillMs: 1000 });
    const got = [0, 0, 0, 0, 999, 1000, 1000].map((t) => c.allow("si/ns/web-1", t));
    assert.deepEqual(got, [true, true, true, false, false, true, false]);
    assert.equal(c.allow("si/ns/web-2", 1000), true);
  });

  test("memory is bounded by maxKeys, least recently used first", () => {
    const c = eventCorrelator({ maxKeys: 50 });
    for (let i = 0; i < 1000; i++) {
      c.aggregate({ ...ev(i, "BecameUnhealthy"), group: `g${i}` }, i);
      c.allow(`o${i}`, i);
    }
    assert.deepEqual(c.size, { aggregates: 50, buckets: 50 });
  });

  test("property: N transitions in a group cost a bounded number of Events, each reason is reported, counts add up", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            instance: fc.nat(300),
            reason: fc.constantFrom(...reasons),
            note: fc.constantFrom("HTTP 503", "timeout", "connection refused"),
            dt: fc.nat(5000),
          }),
          { minLength: 1, maxLength: 2500 },
        ),
        (storm) => {
          const c = eventCorrelator();
          let now = 0;
          // key -> occurrences (an Event and its series count)
          const counts = new Map<string, number>();
          const reasonOf = new Map<string, string>();
          for (const s of storm) {
            now += s.dt;
            const { key } = c.aggregate(ev(s.instance, s.reason, s.note), now);
            counts.set(key, (counts.get(key) ?? 0) + 1);
            reasonOf.set(key, s.reason);
          }
          // Gaps stay under the 10 min window: per reason, 9 Events of their own and one combined.
          assert.ok(counts.size <= reasons.length * 10, `${counts.size} Events`);
          const total = [...counts.values()].reduce((a, b) => a + b, 0);
          assert.equal(total, storm.length, "every transition is counted in some Event");
          assert.deepEqual(new Set(reasonOf.values()), new Set(storm.map((s) => s.reason)));
        },
      ),
      { numRuns: 200 },
    );
  });
});
