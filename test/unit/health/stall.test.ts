import assert from "node:assert/strict";
import { test } from "node:test";
import { stallMonitor } from "../../../src/health/stall.ts";
import { type Clock, fakeClock } from "../../../src/util/clock.ts";

/** A fake clock whose thread can be "blocked": time passes, timers fire only afterwards, late. */
function blockableClock() {
  const inner = fakeClock(1000);
  let offset = 0;
  const clock: Clock = {
    now: () => inner.now() + offset,
    setTimer: (fn, ms) => inner.setTimer(fn, ms),
  };
  return {
    clock,
    run: (ms: number) => inner.advance(ms),
    /** The loop is blocked for `ms`: time moves, no timer fires until the next `run`. */
    block(ms: number) {
      offset += ms;
    },
  };
}

test("a stall is measured from when the sampler was due until it ran", () => {
  const c = blockableClock();
  const m = stallMonitor({ clock: c.clock, sampleMs: 25 });
  c.run(100);
  assert.equal(m.blockedMs(1000, c.clock.now()), 0, "timers on time: no stall");
  const before = c.clock.now(); // 1100
  c.block(2000);
  // Still blocked (the sampler is overdue): the stall under way already counts.
  assert.ok(m.blockedMs(before, c.clock.now()) >= 1900);
  c.run(25); // the sampler runs, 2 s late
  const blocked = m.blockedMs(before, c.clock.now());
  assert.ok(blocked >= 1975 && blocked <= 2025, `${blocked}`);
  // Only the overlap with the asked window counts.
  assert.equal(m.blockedMs(before + 500, before + 1000), 500);
  assert.equal(m.blockedMs(0, before - 10), 0);
  c.run(1000);
  assert.equal(m.blockedMs(c.clock.now() - 500, c.clock.now()), 0, "back to normal");
  m.stop();
});

test("timer noise is no stall; old stalls are forgotten", () => {
  const c = blockableClock();
  const m = stallMonitor({ clock: c.clock, sampleMs: 25, keepMs: 10_000 });
  for (let i = 0; i < 20; i++) {
    c.block(1);
    c.run(25);
  }
  assert.equal(m.blockedMs(0, c.clock.now()), 0, "1 ms of lateness is timer noise");
  // A saturated loop: every tick 10 ms late adds up.
  const busyFrom = c.clock.now();
  for (let i = 0; i < 20; i++) {
    c.block(10);
    c.run(25);
  }
  assert.equal(m.blockedMs(busyFrom, c.clock.now()), 200);
  c.block(500);
  c.run(25);
  const at = c.clock.now();
  assert.ok(m.blockedMs(0, at) >= 475);
  c.run(20_000);
  assert.equal(m.blockedMs(0, at), 0, "dropped after keepMs");
  m.stop();
});

test("on demand: no sampling while nothing holds it, stalls measured while held", () => {
  const c = blockableClock();
  let pending = 0;
  const counting: Clock = {
    now: c.clock.now,
    setTimer(fn, ms) {
      pending++;
      const t = c.clock.setTimer(() => {
        pending--;
        fn();
      }, ms);
      return {
        cancel() {
          pending--;
          t.cancel();
        },
      };
    },
  };
  const m = stallMonitor({ clock: counting, sampleMs: 25, onDemand: true });
  assert.equal(pending, 0, "idle: no timer");
  c.block(5000);
  c.run(100);
  assert.equal(m.blockedMs(0, c.clock.now()), 0, "a block while nothing is held is not measured");
  // A probe in flight: a block during it is measured from the first due tick.
  m.hold();
  m.hold();
  assert.equal(pending, 1, "holds nest: one sampler");
  const start = c.clock.now();
  c.run(25);
  c.block(1000);
  assert.ok(m.blockedMs(start, c.clock.now()) >= 975, "a stall under way counts while held");
  c.run(25);
  const blocked = m.blockedMs(start, c.clock.now());
  assert.ok(blocked >= 975 && blocked <= 1025, `${blocked}`);
  m.release();
  assert.equal(pending, 1, "still held once");
  m.release();
  assert.equal(pending, 0, "released: the sampler stops");
  assert.equal(m.blockedMs(start, c.clock.now()), blocked, "the recorded stall is kept");
  c.block(3000);
  assert.equal(m.blockedMs(c.clock.now() - 3000, c.clock.now()), 0, "not sampling: no overdue tick");
  m.stop();
});
