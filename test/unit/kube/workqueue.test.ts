import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { itemExponential, tokenBucket } from "../../../src/kube/ratelimit.ts";
import { workQueue } from "../../../src/kube/workqueue.ts";
import { fakeClock } from "../../../src/util/clock.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));

/** A queue whose retries are only per-key exponential (no token bucket), on a fake clock. */
function testQueue(start = 0) {
  const clock = fakeClock(start);
  const q = workQueue({ clock, rateLimiter: itemExponential(5, 1000) });
  return { clock, q };
}

describe("work queue", () => {
  test("a key added many times before it is taken is handed out once", async () => {
    const { q } = testQueue();
    for (let i = 0; i < 10; i++) q.add("ns/a");
    q.add("ns/b");
    q.add("ns/a");
    assert.equal(q.len(), 2);
    assert.equal(await q.get(), "ns/a");
    assert.equal(await q.get(), "ns/b");
    assert.equal(q.len(), 0);
  });

  test("a key re-added while processing is handed out again after done, once", async () => {
    const { q } = testQueue();
    q.add("k");
    const k = await q.get();
    q.add("k");
    q.add("k");
    assert.equal(q.len(), 0, "not queued while a worker holds it");
    let second: string | undefined;
    void q.get().then((v) => {
      second = v;
    });
    await tick();
    assert.equal(second, undefined, "no second worker gets it while the first holds it");
    q.done(k!);
    await tick();
    assert.equal(second, "k");
    q.done("k");
    assert.equal(q.len(), 0);
  });

  test("waiting workers are woken in order and get FIFO keys", async () => {
    const { q } = testQueue();
    const got: (string | undefined)[] = [];
    const a = q.get().then((k) => got.push(k));
    const b = q.get().then((k) => got.push(k));
    q.add("1");
    q.add("2");
    await Promise.all([a, b]);
    assert.deepEqual(got, ["1", "2"]);
  });

  test("property: dedup, exclusion and no lost wake-ups under random interleavings", async () => {
    // Model: a synchronous simulation with N workers; operations are add(key), take(worker), finish(worker).
    const op = fc.oneof(
      fc.record({ t: fc.constant("add" as const), key: fc.constantFrom("a", "b", "c", "d") }),
      fc.record({ t: fc.constant("take" as const), w: fc.nat(3) }),
      fc.record({ t: fc.constant("finish" as const), w: fc.nat(3) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 120 }), async (ops) => {
        const { q } = testQueue();
        const holding = new Map<number, string>();
        const pendingTakes = new Map<number, Promise<string | undefined>>();
        // Keys added after the last time they were taken: must be handed out again eventually.
        const owed = new Set<string>();
        const taken: string[] = [];
        const settle = async () => {
          await tick();
          for (const [w, p] of pendingTakes) {
            const v = await Promise.race([p, Promise.resolve("__pending__")]);
            if (v === "__pending__") continue;
            pendingTakes.delete(w);
            assert.ok(v !== undefined);
            assert.ok(![...holding.values()].includes(v!), `key ${v} handed to two workers`);
            holding.set(w, v!);
            owed.delete(v!);
            taken.push(v!);
          }
        };
        for (const o of ops) {
          if (o.t === "add") {
            q.add(o.key);
            owed.add(o.key);
          } else if (o.t === "take") {
            if (!holding.has(o.w) && !pendingTakes.has(o.w)) pendingTakes.set(o.w, q.get());
          } else if (holding.has(o.w)) {
            q.done(holding.get(o.w)!);
            holding.delete(o.w);
          }
          await settle();
        }
        // Drain: finish everything, keep taking with one worker until idle.
        for (const [w, k] of holding) {
          q.done(k);
          holding.delete(w);
        }
        await settle();
        for (const [w] of holding) {
          q.done(holding.get(w)!);
          holding.delete(w);
        }
        for (let guard = 0; guard < 50 && (q.len() > 0 || holding.size > 0); guard++) {
          const k = await q.get();
          owed.delete(k!);
          q.done(k!);
        }
        // Workers still blocked in get() may have received keys in settle(); release them.
        await settle();
        for (const [, k] of holding) owed.delete(k);
        assert.deepEqual([...owed], [], "every added key was handed out after its last add");
        q.shutdown();
      }),
      { numRuns: 200 },
    );
  });

  test("addAfter adds the key when the delay passes on the injected clock", async () => {
    const { q, clock } = testQueue();
    q.addAfter("k", 1000);
    assert.equal(q.len(), 0);
    clock.advance(999);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "k");
  });

  test("addAfter keeps the earlier deadline when a key waits twice", () => {
    const { q, clock } = testQueue();
    q.addAfter("k", 500);
    q.addAfter("k", 2000);
    clock.advance(500);
    assert.equal(q.len(), 1, "the earlier deadline wins");
    const { q: q2, clock: c2 } = testQueue();
    q2.addAfter("k", 2000);
    q2.addAfter("k", 300);
    c2.advance(300);
    assert.equal(q2.len(), 1, "a later, earlier deadline replaces the first");
    c2.advance(5000);
    assert.equal(q2.len(), 1, "and the first one does not fire again as a duplicate");
  });

  test("property: requeueAfter fires no earlier than asked, at the right time", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 20 }),
        (delays) => {
          const { q, clock } = testQueue();
          for (const [i, d] of delays.entries()) q.addAfter(`k${i}`, d);
          const sorted = [...new Set(delays)].sort((a, b) => a - b);
          let t = 0;
          for (const d of sorted) {
            clock.advance(d - 1 - t);
            t = d - 1;
            assert.equal(q.len(), delays.filter((x) => x <= t).length);
            clock.advance(1);
            t = d;
            assert.equal(q.len(), delays.filter((x) => x <= t).length);
          }
        },
      ),
    );
  });

  test("per-key backoff grows 5, 10, 20 ms ... to the cap and forget resets it", async () => {
    const { q, clock } = testQueue();
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = clock.now();
      q.addRateLimited("k");
      // Find when it became ready.
      let waited = 0;
      while (q.len() === 0) {
        clock.advance(1);
        waited++;
      }
      delays.push(clock.now() - before);
      assert.equal(waited, delays.at(-1));
      q.done((await q.get())!);
    }
    assert.deepEqual(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    assert.equal(q.numRequeues("k"), 10);
    q.forget("k");
    assert.equal(q.numRequeues("k"), 0);
  });

  test("backoff is per key: one failing key does not slow another", () => {
    const { q } = testQueue();
    for (let i = 0; i < 5; i++) q.addRateLimited("bad");
    assert.equal(q.numRequeues("bad"), 5);
    assert.equal(q.numRequeues("good"), 0);
  });

  test("the overall token bucket limits retries across keys", () => {
    const clock = fakeClock();
    const bucket = tokenBucket(10, 3, clock);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((i) => bucket.when(`k${i}`)),
      [0, 0, 0, 100, 200],
    );
    clock.advance(1000);
    // 10 tokens accrued but capped at burst 3; two reservations were in debt.
    assert.equal(bucket.when("x"), 0);
  });

  test("shutdown: adds are ignored, queued keys drain, then get() resolves undefined", async () => {
    const { q } = testQueue();
    q.add("a");
    q.add("b");
    q.addAfter("later", 10);
    q.shutdown();
    q.add("c");
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
    assert.equal(await q.get(), undefined);
  });

  test("shutdown wakes blocked workers; discardPending drops queued keys", async () => {
    const { q } = testQueue();
    const blocked = q.get();
    q.shutdown();
    assert.equal(await blocked, undefined);
    const { q: q2 } = testQueue();
    q2.add("a");
    q2.shutdown({ discardPending: true });
    assert.equal(await q2.get(), undefined);
  });

  test("shutdownWithDrain waits for keys being processed", async () => {
    const { q } = testQueue();
    q.add("a");
    const k = await q.get();
    let drained = false;
    const p = q.shutdownWithDrain().then(() => {
      drained = true;
    });
    await tick();
    assert.equal(drained, false);
    q.done(k!);
    await p;
    assert.equal(drained, true);
  });

  test("stats report unfinished work and the longest running processor", async () => {
    const { q, clock } = testQueue();
    q.add("a");
    q.add("b");
    await q.get();
    clock.advance(2000);
    await q.get();
    clock.advance(1000);
    const s = q.stats();
    assert.equal(s.processing, 2);
    assert.equal(s.longestRunningProcessorSeconds, 3);
    assert.equal(s.unfinishedWorkSeconds, 4);
  });
});
