// Fast confirmation with a fake clock: after a result that differs from the
// verdict, the next runs are rechecks (the first at once, then at
// recheckInterval) until the threshold flips the verdict or a result agrees
// again; in steady state one run per interval.
// Driven through heartbeat probes (a Lease read, no network).
import assert from "node:assert/strict";
import { test } from "node:test";
import { createProbeEngine, recheckMsOf } from "../../../src/health/engine.ts";
import { phaseOf } from "../../../src/health/schedule.ts";
import type { CheckSpec, Transition } from "../../../src/health/types.ts";
import { type FakeClock, fakeClock } from "../../../src/util/clock.ts";

const T0 = 1_000_000;
// Two turns: a retry started at once by a run's end must finish within the same fake millisecond.
const flush = async () => {
  for (let i = 0; i < 2; i++) await new Promise<void>((r) => setImmediate(r));
};

async function advance(clock: FakeClock, ms: number, stepMs = 1): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await flush();
  }
}

function check(extra: Partial<CheckSpec> = {}): CheckSpec {
  return {
    probes: [{ type: "heartbeat", lease: { namespace: "ns", name: "lease" } }],
    intervalMs: 1000,
    timeoutMs: 500,
    failureThreshold: 3,
    successThreshold: 2,
    ...extra,
  };
}

function setup() {
  const clock = fakeClock(T0);
  let up = true;
  const runs: number[] = [];
  const transitions: Transition[] = [];
  const engine = createProbeEngine({
    clock,
    tickMs: 1,
    maxTickMs: 1,
    leaseReader: () => ({ renewTimeMs: up ? clock.now() : clock.now() - 60_000, leaseDurationMs: 30_000 }),
    onProbe: (o) => runs.push(o.at - T0),
    onTransition: (t) => {
      if (t.address === undefined) transitions.push(t);
    },
  });
  const set = (v: boolean) => {
    up = v;
  };
  return { clock, engine, runs, transitions, set };
}

test("the default recheckInterval is a quarter of the interval, at most the timeout", () => {
  assert.equal(recheckMsOf(check()), 250);
  assert.equal(recheckMsOf(check({ intervalMs: 10_000, timeoutMs: 1000 })), 1000);
  assert.equal(recheckMsOf(check({ recheckIntervalMs: 100 })), 100);
});

test("steady state: one run per interval on the target's phase", async (t) => {
  const { clock, engine, runs } = setup();
  t.after(() => engine.close());
  engine.set({ id: "ns/a", host: "10.0.0.1", check: check({ successThreshold: 1 }) });
  await advance(clock, 10_000);
  assert.equal(runs.length, 10);
  const phase = phaseOf("ns/a", 1000);
  assert.ok(runs.every((r) => (r - phase) % 1000 === 0));
  assert.equal(engine.stats().rechecks, 0);
});

test("a differing result is retried at once, then rechecked at recheckInterval: failureThreshold 3 takes one recheckInterval, not 2 intervals", async (t) => {
  const { clock, engine, runs, transitions, set } = setup();
  t.after(() => engine.close());
  engine.set({ id: "ns/a", host: "10.0.0.1", check: check({ successThreshold: 1 }) });
  await advance(clock, 3000);
  assert.equal(engine.summary("ns/a")?.verdict, "Healthy");
  const phase = phaseOf("ns/a", 1000);
  const failAt = 3000 + phase; // the next regular run after this point fails
  set(false);
  await advance(clock, phase + 1000);
  const after = runs.filter((r) => r >= failAt);
  // The retry starts at once and ends when the fake clock moves on (1 ms steps).
  assert.deepEqual(after.slice(0, 3), [failAt, failAt, failAt + 251]);
  const down = transitions.find((x) => x.to === "Unhealthy")!;
  assert.equal(down.at - T0, failAt + 251, "unhealthy after 250 ms, not 2 s");
  // Confirmed: back to one run per interval on the phase.
  await advance(clock, 5000);
  const later = runs.filter((r) => r > failAt + 251);
  assert.ok(later.length >= 5 && later.length <= 6, `${later.length} runs in 5.5 s`);
  assert.ok(
    later.every((r) => (r - phase) % 1000 === 0),
    `on the phase: ${later}`,
  );
  assert.equal(engine.stats().rechecks, 2);
});

test("a one-off failure is rechecked once, then the verdict stands and runs go back to the interval", async (t) => {
  const { clock, engine, runs, transitions, set } = setup();
  t.after(() => engine.close());
  engine.set({ id: "ns/a", host: "10.0.0.1", check: check({ successThreshold: 1 }) });
  await advance(clock, 2000);
  const phase = phaseOf("ns/a", 1000);
  const failAt = 2000 + phase;
  await advance(clock, phase - 1); // just before the failing run
  set(false);
  await advance(clock, 1);
  set(true);
  await advance(clock, 4000);
  const after = runs.filter((r) => r >= failAt);
  assert.deepEqual(after.slice(0, 3), [failAt, failAt, failAt + 1000]);
  assert.ok(!transitions.some((x) => x.to === "Unhealthy"), "one failure is below the threshold");
  assert.equal(engine.stats().rechecks, 1);
});

test("recovery is confirmed the same way (successThreshold 3: a retry at once, then a recheck)", async (t) => {
  const { clock, engine, transitions, set } = setup();
  t.after(() => engine.close());
  set(false);
  engine.set({ id: "ns/a", host: "10.0.0.1", check: check({ successThreshold: 3 }) });
  await advance(clock, 3000);
  assert.equal(engine.summary("ns/a")?.verdict, "Unhealthy");
  const phase = phaseOf("ns/a", 1000);
  const upAt = 3000 + phase;
  set(true);
  await advance(clock, 2000 + phase);
  const healthy = transitions.find((x) => x.to === "Healthy")!;
  assert.equal(healthy.at - T0, upAt + 251); // the retry ends 1 ms on (1 ms steps)
});

test("a recheckInterval of the whole interval turns fast confirmation off", async (t) => {
  const { clock, engine, transitions, set } = setup();
  t.after(() => engine.close());
  engine.set({
    id: "ns/a",
    host: "10.0.0.1",
    check: check({ successThreshold: 1, recheckIntervalMs: 1000 }),
  });
  await advance(clock, 2000);
  const phase = phaseOf("ns/a", 1000);
  set(false);
  await advance(clock, 4000);
  const down = transitions.find((x) => x.to === "Unhealthy")!;
  assert.equal(down.at - T0, 2000 + phase + 2000);
  assert.equal(engine.stats().rechecks, 0);
});

test("failureThreshold 4: a retry at once, then rechecks recheckInterval apart", async (t) => {
  const { clock, engine, runs, transitions, set } = setup();
  t.after(() => engine.close());
  engine.set({
    id: "ns/a",
    host: "10.0.0.1",
    check: check({ successThreshold: 1, failureThreshold: 4, recheckIntervalMs: 100 }),
  });
  await advance(clock, 2000);
  const phase = phaseOf("ns/a", 1000);
  const failAt = 2000 + phase;
  set(false);
  await advance(clock, phase + 1000);
  // The retry ends 1 ms on (the fake clock moves in 1 ms steps).
  assert.deepEqual(runs.filter((r) => r >= failAt).slice(0, 4), [failAt, failAt, failAt + 101, failAt + 201]);
  assert.equal(transitions.find((x) => x.to === "Unhealthy")!.at - T0, failAt + 201);
  assert.equal(engine.stats().rechecks, 3);
});
