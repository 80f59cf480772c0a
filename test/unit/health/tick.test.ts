/**
 * The engine's run tick (schedule.ts `tickFor`): runs due close together
 * share one wake-up of the run timer. The tick widens while runs are sparse,
 * bounded by 1 % of the interval and 100 ms, stays at 10 ms when runs are
 * dense, and rechecks keep 10 ms. A run never starts before it is due.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createProbeEngine } from "../../../src/health/engine.ts";
import { latenessBoundMs, onTick, RUNS_PER_TICK, tickFor } from "../../../src/health/schedule.ts";
import type { CheckSpec, ProbeObservation } from "../../../src/health/types.ts";
import { type FakeClock, fakeClock } from "../../../src/util/clock.ts";

const flush = () => new Promise<void>((r) => setImmediate(r));
async function advance(clock: FakeClock, ms: number, stepMs = 10): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await flush();
  }
}

test("tickFor: 1 % of the interval at most 100 ms while sparse, 10 ms when dense, never below tickMs", () => {
  assert.equal(tickFor(10_000, 50, 10, 100), 100); // 500 targets at 10 s
  assert.equal(tickFor(10_000, 500, 10, 100), 20); // 5,000 targets: 10 runs per 20 ms
  assert.equal(tickFor(10_000, 5000, 10, 100), 10); // 50,000 targets
  assert.equal(tickFor(60_000, 1, 10, 100), 100); // capped at maxTickMs
  assert.equal(tickFor(5000, 10, 10, 100), 50); // 1 % of 5 s
  assert.equal(tickFor(1000, 10, 10, 100), 10);
  assert.equal(tickFor(500, 1, 10, 100), 10); // 1 % is 5 ms: tickMs is the floor
  assert.equal(tickFor(10_000, 50, 1, 1), 1); // maxTickMs = tickMs: a fixed tick
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3_600_000 }),
      fc.double({ min: 0, max: 1e6, noNaN: true }),
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 1, max: 1000 }),
      (interval, rate, tickMs, extra) => {
        const maxTickMs = tickMs + extra;
        const tick = tickFor(interval, rate, tickMs, maxTickMs);
        assert.ok(tick >= tickMs);
        assert.equal(tick % tickMs, 0, "a multiple of tickMs, so ticks of different targets coincide");
        // Beyond tickMs, within the lateness bound and the sparse bound.
        if (tick > tickMs) {
          assert.ok(tick <= latenessBoundMs(interval, maxTickMs));
          assert.ok(rate === 0 || tick <= (RUNS_PER_TICK * 1000) / rate);
        }
      },
    ),
  );
});

test("onTick rounds up, never down", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1e12 }), fc.integer({ min: 1, max: 1000 }), (at, tick) => {
      const t = onTick(at, tick);
      assert.ok(t >= at && t < at + tick && t % tick === 0);
    }),
  );
});

const T0 = 1_000_000;
function heartbeat(check: Partial<CheckSpec> = {}): CheckSpec {
  return {
    probes: [{ type: "heartbeat", lease: { namespace: "ns", name: "lease" } }],
    intervalMs: 10_000,
    timeoutMs: 1000,
    failureThreshold: 2,
    successThreshold: 1,
    ...check,
  };
}

/** An engine on a fake clock; every lease is fresh. */
function setup() {
  const clock = fakeClock(T0);
  const observations: ProbeObservation[] = [];
  const engine = createProbeEngine({
    clock,
    leaseReader: () => ({ renewTimeMs: clock.now(), leaseDurationMs: 30_000 }),
    onProbe: (o) => observations.push(o),
  });
  return { clock, engine, observations };
}

/** Distinct times at which runs started: each one is a wake-up of the run timer. */
const wakeups = (os: ProbeObservation[]) => new Set(os.map((o) => o.at)).size;

test("500 targets at 10 s: runs start on a 100 ms tick, at most 100 ms late, about 10 wake-ups a second", async (t) => {
  const { clock, engine, observations } = setup();
  t.after(() => engine.close());
  for (let i = 0; i < 500; i++) engine.set({ id: `ns/t${i}`, host: "10.0.0.1", check: heartbeat() });
  await advance(clock, 10_000); // first runs: every target once
  observations.length = 0;
  await advance(clock, 20_000);
  assert.equal(observations.length, 1000, "one run per target per interval");
  for (const o of observations) {
    assert.ok(o.lateMs >= 0, "never early");
    assert.ok(o.lateMs < 100, `late by ${o.lateMs} ms`);
    assert.equal(o.at % 100, 0);
  }
  // The same runs on a 10 ms tick (their due times rounded up to 10 ms) would have woken the timer
  // more than twice as often.
  const fine = new Set(observations.map((o) => onTick(o.at - o.lateMs, 10))).size;
  assert.ok(wakeups(observations) * 2 < fine, `${wakeups(observations)} wake-ups against ${fine}`);
  assert.ok(
    observations.some((o) => o.lateMs > 10),
    "the tick did widen",
  );
});

test("dense runs keep a 10 ms tick (no bursts): 2,000 targets at 1 s", async (t) => {
  const { clock, engine, observations } = setup();
  t.after(() => engine.close());
  for (let i = 0; i < 2000; i++)
    engine.set({ id: `ns/t${i}`, host: "10.0.0.1", check: heartbeat({ intervalMs: 1000, timeoutMs: 500 }) });
  await advance(clock, 3000, 5);
  assert.ok(observations.length >= 4000);
  for (const o of observations) {
    assert.ok(o.lateMs >= 0 && o.lateMs < 10, `late by ${o.lateMs} ms`);
    assert.equal(o.at % 10, 0);
  }
});

test("rechecks keep the 10 ms tick while regular runs use 100 ms", async (t) => {
  const clock = fakeClock(T0);
  const observations: ProbeObservation[] = [];
  const engine = createProbeEngine({
    clock,
    // Target "ns/down" reads a stale lease: its failures are confirmed at recheckInterval (250 ms).
    leaseReader: (_ns, name) => ({
      renewTimeMs: name === "down" ? clock.now() - 60_000 : clock.now(),
      leaseDurationMs: 30_000,
    }),
    onProbe: (o) => observations.push(o),
  });
  t.after(() => engine.close());
  for (let i = 0; i < 100; i++) engine.set({ id: `ns/t${i}`, host: "10.0.0.1", check: heartbeat() });
  engine.set({
    id: "ns/down",
    host: "10.0.0.1",
    check: heartbeat({
      probes: [{ type: "heartbeat", lease: { namespace: "ns", name: "down" } }],
      failureThreshold: 3,
      recheckIntervalMs: 250,
    }),
  });
  await advance(clock, 12_000);
  const down = observations.filter((o) => o.id === "ns/down");
  // First run, a recheck at once, one 250 ms after that one finished, then the verdict stands.
  assert.ok(down.length >= 3);
  assert.equal(engine.stats().rechecks, 2);
  for (const o of down.slice(1, 3))
    assert.ok(o.lateMs >= 0 && o.lateMs < 10, `recheck late by ${o.lateMs} ms`);
  assert.ok(down[1]!.at - down[0]!.at < 10, "the first recheck comes at once");
  // The fake clock moves in 10 ms steps, so a run ends up to one step after it starts.
  const gap = down[2]!.at - down[1]!.at;
  assert.ok(gap >= 250 && gap <= 260, `second recheck ${gap} ms after the first`);
  assert.equal(engine.summary("ns/down")?.verdict, "Unhealthy");
  const regular = observations.filter((o) => o.id !== "ns/down");
  assert.ok(regular.every((o) => o.at % 100 === 0 && o.lateMs < 100));
});
