/** The soak's pure parts: ground truth, checker, trends, PRNG (`node --test test/soak/logic.test.ts`). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createChecker } from "../../soak/checker.ts";
import { createRng } from "../../soak/prng.ts";
import { trend } from "../../soak/trend.ts";
import { createTruth, type InstanceTruth } from "../../soak/truth.ts";

const inst = (name: string, service: string, address: string, failing = false): InstanceTruth => ({
  name,
  service,
  address,
  target: 0,
  failing,
  drain: false,
});

function add(truth: ReturnType<typeof createTruth>, i: InstanceTruth) {
  return truth.change(i.service, [i.address], () => {
    truth.instances.set(i.name, i);
    const s = truth.services.get(i.service) ?? { name: i.service, instances: new Set<string>() };
    s.instances.add(i.name);
    truth.services.set(i.service, s);
  });
}

test("truth: healthy, drained and failing instances; panic publishes every non-drained one", () => {
  const truth = createTruth();
  const a = inst("a", "s", "10.0.0.1");
  const b = inst("b", "s", "10.0.0.2", true);
  const c = inst("c", "s", "10.0.0.3", true);
  add(truth, a);
  add(truth, b);
  const ch = add(truth, c);
  assert.deepEqual([...truth.readySet("s")], ["10.0.0.1"]);
  assert.deepEqual([...ch.touched], ["10.0.0.3"], "no panic: only the new instance is touched");

  // 1 healthy of 3 is 33 % < 50 %: panic.
  const p = truth.change("s", [], () => {
    truth.services.get("s")!.policy = { panicThreshold: 50 };
  });
  assert.deepEqual([...truth.readySet("s")].sort(), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  assert.deepEqual([...p.changed].sort(), [
    ["10.0.0.2", true],
    ["10.0.0.3", true],
  ]);

  // Draining c: 1 healthy of 2 eligible is 50 %, not fewer: no panic, c not ready.
  truth.change("s", ["10.0.0.3"], () => {
    c.drain = true;
  });
  assert.deepEqual([...truth.readySet("s")], ["10.0.0.1"]);
  assert.equal(truth.ready("10.0.0.2"), false);

  // Deleting everything: the service is gone, nothing is ready.
  for (const i of [a, b, c]) {
    truth.change("s", [i.address], () => {
      truth.instances.delete(i.name);
      truth.services.get("s")!.instances.delete(i.name);
    });
  }
  assert.equal(truth.exists("s"), true, "the policy keeps it");
  truth.change("s", [], () => {
    truth.services.get("s")!.policy = undefined;
  });
  assert.equal(truth.exists("s"), false);
  assert.equal(truth.ready("10.0.0.1"), false);
});

function checker() {
  const expected = new Map<string, boolean>();
  const c = createChecker({
    deadlineMs: 1000,
    sources: ["slices"],
    truth: (a) => expected.get(a) ?? false,
    describe: (a) => a,
    history: () => [],
  });
  const set = (a: string, v: boolean, at: number) => {
    expected.set(a, v);
    c.touch([a], at);
    c.truthChanged(a, v, at);
  };
  return { c, set };
}

test("checker: a transition published within the deadline is confirmed", () => {
  const { c, set } = checker();
  set("x", true, 0);
  c.tick(500);
  c.published("slices", "x", true, 700);
  c.tick(5000);
  const s = c.summary();
  assert.equal(s.transitions, 1);
  assert.equal(s.bySource.slices!.confirmed, 1);
  assert.deepEqual(s.bySource.slices!.latencies, [700]);
  assert.equal(s.misses.length, 0);
  assert.equal(s.flaps.length, 0);
});

test("checker: a transition never published is a miss; late publication resolves it", () => {
  const { c, set } = checker();
  set("x", true, 0);
  c.tick(900);
  assert.equal(c.summary().misses.length, 0);
  c.tick(1100);
  assert.equal(c.summary().misses.length, 1);
  c.tick(1500);
  assert.equal(c.summary().misses.length, 1, "counted once");
  c.published("slices", "x", true, 2000);
  assert.equal(c.summary().misses[0]!.resolvedAt, 2000);
  assert.equal(c.summary().bySource.slices!.confirmed, 0);
});

test("checker: a late fix between two ticks is still a miss", () => {
  const { c, set } = checker();
  set("x", true, 0);
  c.published("slices", "x", true, 1200);
  assert.equal(c.summary().misses.length, 1);
});

test("checker: readiness moving without a truth change is a flap; within the deadline it is transient", () => {
  const { c, set } = checker();
  set("x", true, 0);
  c.published("slices", "x", true, 300);
  c.published("slices", "x", false, 600); // e.g. an intermediate step into panic
  c.published("slices", "x", true, 800);
  assert.equal(c.summary().bySource.slices!.transient, 1);
  c.published("slices", "x", false, 5000);
  c.tick(9000);
  const s = c.summary();
  assert.equal(s.flaps.length, 1);
  assert.equal(s.misses.length, 0, "the flap's mismatch is not also a miss");
  c.published("slices", "x", true, 9500);
  assert.equal(c.summary().flaps[0]!.resolvedAt, 9500);
  // An address nobody created appearing is a flap too.
  c.published("slices", "y", true, 10_000);
  assert.equal(c.summary().flaps.length, 2);
});

test("checker: a truth change before publication supersedes the previous one", () => {
  const { c, set } = checker();
  set("x", true, 0);
  set("x", false, 300);
  c.tick(5000);
  const s = c.summary();
  assert.equal(s.transitions, 2);
  assert.equal(s.bySource.slices!.superseded, 1);
  assert.equal(s.misses.length, 0);
  assert.deepEqual(c.mismatches(), []);
});

test("trend: the upper envelope of the last quarter against the third; a sawtooth is flat", () => {
  const line = trend(Array.from({ length: 100 }, (_, i) => [i * 10, 100 + i] as const));
  assert.ok(Math.abs(line.slopePerHour - 360) < 1e-6);
  // p90 of samples 75..99 is 197 (value of i=97... index ceil(0.9*25)-1=22 → i=97), of 50..74 is 172.
  assert.equal(line.increaseLastHalf, 25);
  assert.ok(Math.abs(line.growthLastHalf - 25 / 172) < 1e-9);
  // A sawtooth (GC cycles of 12 samples, shorter than a quarter) starting mid-tooth: flat.
  const saw = trend(Array.from({ length: 60 }, (_, i) => [i * 10, 200 + ((i + 5) % 12) * 5] as const));
  assert.ok(Math.abs(saw.growthLastHalf) < 0.05, String(saw.growthLastHalf));
  // The same sawtooth on a leak of 1 unit per sample: caught.
  const leak = trend(Array.from({ length: 60 }, (_, i) => [i * 10, 200 + ((i + 5) % 12) * 5 + i] as const));
  assert.ok(leak.increaseLastHalf >= 10, String(leak.increaseLastHalf));
});

test("prng: a seed gives the same sequence", () => {
  const a = createRng(42);
  const b = createRng(42);
  assert.deepEqual(
    Array.from({ length: 5 }, () => a.next()),
    Array.from({ length: 5 }, () => b.next()),
  );
  assert.deepEqual(createRng(1).sample([1, 2, 3, 4], 4).sort(), [1, 2, 3, 4]);
});
