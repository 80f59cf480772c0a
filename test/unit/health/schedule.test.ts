import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { jitterFor, nextRun, nextSlot, phaseOf, slotAtOrAfter } from "../../../src/health/schedule.ts";

test("phases of many targets spread evenly over the interval", () => {
  const interval = 10_000;
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 10_000; i++) {
    const phase = phaseOf(`default/instance-${i}`, interval);
    assert.ok(phase >= 0 && phase < interval);
    buckets[Math.floor(phase / 1000)]!++;
  }
  // Even: each tenth of the interval gets ~1,000 of 10,000 first probes.
  for (const b of buckets) assert.ok(b > 900 && b < 1100, `bucket of ${b}`);
});

test("the phase is stable for an id", () => {
  assert.equal(phaseOf("ns/a", 5000), phaseOf("ns/a", 5000));
  assert.notEqual(phaseOf("ns/a", 5000), phaseOf("ns/b", 5000));
});

test("slotAtOrAfter returns the first run time on the phase grid", () => {
  assert.equal(slotAtOrAfter(0, 300, 1000), 300);
  assert.equal(slotAtOrAfter(300, 300, 1000), 300);
  assert.equal(slotAtOrAfter(301, 300, 1000), 1300);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1e12 }),
      fc.integer({ min: 1, max: 1e6 }),
      fc.nat(),
      (t, interval, p) => {
        const phase = p % interval;
        const s = slotAtOrAfter(t, phase, interval);
        assert.ok(s >= t && s < t + interval);
        assert.equal((((s - phase) % interval) + interval) % interval, 0);
      },
    ),
  );
});

test("nextSlot keeps the phase, runs a slightly late slot, skips slots overrun by far", () => {
  assert.deepEqual(nextSlot(1000, 1500, 1000), { at: 2000, skipped: 0 });
  // The previous run ended 300 ms after the next slot: still run it (late).
  assert.deepEqual(nextSlot(1000, 2300, 1000), { at: 2000, skipped: 0 });
  // 700 ms late: skip it, keep the phase.
  assert.deepEqual(nextSlot(1000, 2700, 1000), { at: 3000, skipped: 1 });
  assert.deepEqual(nextSlot(1000, 5200, 1000), { at: 6000, skipped: 4 });
});

test("jitter stays within its bound and at most half an interval", () => {
  assert.equal(
    jitterFor(0, 1000, () => 0.99),
    0,
  );
  assert.equal(
    jitterFor(100, 1000, () => 0.5),
    50,
  );
  assert.equal(
    jitterFor(5000, 1000, () => 0.999),
    499,
  );
});

test("nextRun: steady state, a retry at once, rechecks recheckMs apart, back on the phase", () => {
  const base = { phase: 300, intervalMs: 1000, recheckMs: 250, rechecking: false, confirming: false };
  // Every result agrees: the next slot of the phase.
  assert.deepEqual(nextRun({ ...base, planned: 1300, now: 1305 }), { at: 2300, recheck: false, skipped: 0 });
  // A differing result on a regular run: retried at once.
  assert.deepEqual(nextRun({ ...base, confirming: true, planned: 1300, now: 1305 }), {
    at: 1305,
    recheck: true,
    skipped: 0,
  });
  // Still pending after a recheck: the next one recheckMs later.
  assert.deepEqual(nextRun({ ...base, confirming: true, rechecking: true, planned: 1305, now: 1310 }), {
    at: 1560,
    recheck: true,
    skipped: 0,
  });
  // Confirmed either way after a recheck: back on the phase, at least a recheck away.
  assert.deepEqual(nextRun({ ...base, rechecking: true, planned: 1560, now: 1565 }), {
    at: 2300,
    recheck: false,
    skipped: 0,
  });
  assert.deepEqual(nextRun({ ...base, rechecking: true, planned: 2200, now: 2200 }), {
    at: 3300,
    recheck: false,
    skipped: 0,
  });
  // A retry that would not come before the regular slot (the run ended at it) is not taken.
  assert.deepEqual(nextRun({ ...base, confirming: true, planned: 1300, now: 2300 }), {
    at: 2300,
    recheck: false,
    skipped: 0,
  });
  // An overrun regular run skips slots as nextSlot does.
  assert.deepEqual(nextRun({ ...base, planned: 1300, now: 3900 }), { at: 4300, recheck: false, skipped: 2 });
});
