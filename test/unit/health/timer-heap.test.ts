import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { timerHeap } from "../../../src/health/timer-heap.ts";
import { fakeClock } from "../../../src/util/clock.ts";

interface Entry {
  at: number;
  name: string;
}

test("entries fire in order of at, each once, at the tick after their time", () => {
  const clock = fakeClock(0);
  const fired: [string, number][] = [];
  const q = timerHeap<Entry>(clock, 10, (e, now) => fired.push([e.name, now]));
  q.push({ at: 25, name: "b" });
  q.push({ at: 3, name: "a" });
  q.push({ at: 25, name: "c" });
  clock.advance(9);
  assert.equal(fired.length, 0);
  clock.advance(1);
  assert.deepEqual(fired, [["a", 10]]);
  clock.advance(30);
  assert.deepEqual(
    fired.map(([, now]) => now),
    [10, 30, 30],
  );
  assert.deepEqual(new Set(fired.slice(1).map(([n]) => n)), new Set(["b", "c"]));
  assert.equal(q.size, 0);
});

test("one clock timer serves the whole queue", () => {
  const clock = fakeClock(0);
  const q = timerHeap<Entry>(clock, 1, () => {});
  for (let i = 0; i < 100; i++) q.push({ at: 1000 - i, name: `e${i}` });
  assert.equal(clock.pending(), 1);
  clock.advance(1000);
  assert.equal(clock.pending(), 0);
  assert.equal(q.size, 0);
});

test("an entry pushed while firing that is already due fires in the same wake-up", () => {
  const clock = fakeClock(0);
  const fired: [string, number][] = [];
  const q = timerHeap<Entry>(clock, 1, (e, now) => {
    fired.push([e.name, now]);
    if (e.name === "first") q.push({ at: now, name: "again" });
    if (e.name === "again") q.push({ at: now + 50, name: "later" });
  });
  q.push({ at: 5, name: "first" });
  clock.advance(5);
  assert.deepEqual(fired, [
    ["first", 5],
    ["again", 5],
  ]);
  assert.equal(clock.pending(), 1);
  clock.advance(50);
  assert.deepEqual(fired.at(-1), ["later", 55]);
});

test("an earlier push re-arms the timer sooner", () => {
  const clock = fakeClock(0);
  const fired: string[] = [];
  const q = timerHeap<Entry>(clock, 1, (e) => fired.push(e.name));
  q.push({ at: 100, name: "late" });
  q.push({ at: 10, name: "early" });
  clock.advance(10);
  assert.deepEqual(fired, ["early"]);
  clock.advance(90);
  assert.deepEqual(fired, ["early", "late"]);
});

test("close cancels the timer and nothing fires afterwards", () => {
  const clock = fakeClock(0);
  const fired: string[] = [];
  const q = timerHeap<Entry>(clock, 1, (e) => fired.push(e.name));
  q.push({ at: 10, name: "a" });
  q.close();
  assert.equal(clock.pending(), 0);
  q.push({ at: 20, name: "b" });
  clock.advance(100);
  assert.equal(fired.length, 0);
  assert.equal(q.size, 0);
});

test("any pushes fire sorted by at, never before their time", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 50 }),
      fc.integer({ min: 1, max: 50 }),
      (ats, tick) => {
        const clock = fakeClock(0);
        const fired: { at: number; now: number }[] = [];
        const q = timerHeap<{ at: number }>(clock, tick, (e, now) => fired.push({ at: e.at, now }));
        for (const at of ats) q.push({ at });
        clock.advance(20_000);
        assert.deepEqual(
          fired.map((f) => f.at),
          [...ats].sort((a, b) => a - b),
        );
        for (const f of fired) assert.ok(f.now >= f.at && f.now < f.at + tick);
      },
    ),
  );
});
