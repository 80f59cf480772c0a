import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { createController, secondary } from "../../../src/kube/controller.ts";
import { createLogger } from "../../../src/kube/log.ts";
import { runtimeMetrics } from "../../../src/kube/metrics.ts";
import type { KubeObject } from "../../../src/kube/object.ts";
import { itemExponential } from "../../../src/kube/ratelimit.ts";
import { TerminalError } from "../../../src/kube/reconcile.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { configMap, fakeInformer } from "./fakes.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));
async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

describe("controller", () => {
  test("property: one reconcile per key at a time, bounded concurrency, and the last reconcile sees the final state", async () => {
    const events = fc.array(
      fc.record({ key: fc.integer({ min: 0, max: 5 }), ticks: fc.integer({ min: 0, max: 3 }) }),
      { minLength: 1, maxLength: 60 },
    );
    await fc.assert(
      fc.asyncProperty(
        events,
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.nat(4), { maxLength: 30 }),
        async (evs, conc, work) => {
          const inf = fakeInformer<KubeObject>();
          inf.markSynced();
          const inFlight = new Set<string>();
          let maxParallel = 0;
          const lastSeen = new Map<string, string | undefined>();
          let calls = 0;
          const c = createController({
            name: "prop",
            primary: inf,
            concurrency: conc,
            rateLimiter: () => itemExponential(1, 1),
            reconcile: async (key) => {
              assert.ok(!inFlight.has(key), `${key} reconciled by two workers at once`);
              inFlight.add(key);
              maxParallel = Math.max(maxParallel, inFlight.size);
              lastSeen.set(key, inf.get(key)?.metadata.resourceVersion);
              await ticks(work[calls++ % Math.max(1, work.length)] ?? 0);
              inFlight.delete(key);
            },
          });
          await c.start();
          let rv = 0;
          for (const e of evs) {
            inf.upsert(configMap(`cm${e.key}`, "ns", String(++rv)));
            await ticks(e.ticks);
          }
          await ticks(200);
          assert.ok(maxParallel <= conc, `ran ${maxParallel} > ${conc} at once`);
          for (const key of inf.keys()) {
            assert.equal(
              lastSeen.get(key),
              inf.get(key)!.metadata.resourceVersion,
              `${key} missed its last change`,
            );
          }
          await c.stop();
        },
      ),
      { numRuns: 60 },
    );
  });

  test("workers start only once the caches have synced, then see every key", async () => {
    const inf = fakeInformer<KubeObject>();
    const seen: string[] = [];
    const c = createController({ name: "sync", primary: inf, reconcile: (k) => void seen.push(k) });
    inf.upsert(configMap("a"));
    inf.upsert(configMap("b"));
    const started = c.start();
    await ticks(5);
    assert.deepEqual(seen, []);
    inf.markSynced();
    await started;
    await ticks(5);
    assert.deepEqual(seen.sort(), ["ns/a", "ns/b"]);
    await c.stop();
  });

  test("requeueAfterMs reconciles again after that long on the injected clock", async () => {
    const clock = fakeClock(0);
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    const at: number[] = [];
    const c = createController({
      name: "after",
      primary: inf,
      clock,
      reconcile: () => {
        at.push(clock.now());
        return { requeueAfterMs: 30_000 };
      },
    });
    await c.start();
    inf.upsert(configMap("a"));
    await ticks(3);
    assert.deepEqual(at, [0]);
    clock.advance(29_999);
    await ticks(3);
    assert.deepEqual(at, [0]);
    clock.advance(1);
    await ticks(3);
    assert.deepEqual(at, [0, 30_000]);
    await c.stop();
  });

  test("errors are retried with growing backoff; success resets it; terminal errors are not retried", async () => {
    const clock = fakeClock(0);
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    const metrics = runtimeMetrics({ processMetrics: false });
    const calls: Record<string, number[]> = { "ns/flaky": [], "ns/fatal": [] };
    const c = createController({
      name: "errs",
      primary: inf,
      clock,
      metrics,
      rateLimiter: () => itemExponential(5, 1000),
      reconcile: (key) => {
        calls[key]!.push(clock.now());
        if (key === "ns/fatal") throw new TerminalError("spec is invalid");
        if (calls[key]!.length <= 3) throw new Error("API hiccup");
      },
    });
    await c.start();
    inf.upsert(configMap("flaky"));
    inf.upsert(configMap("fatal"));
    for (let t = 0; t < 100; t++) {
      await ticks(2);
      clock.advance(1);
    }
    assert.deepEqual(calls["ns/flaky"], [0, 5, 15, 35], "retries after 5, 10, 20 ms");
    assert.equal(c.queue()!.numRequeues("ns/flaky"), 0, "success forgot the backoff");
    assert.deepEqual(calls["ns/fatal"], [0], "a terminal error is not retried");
    const text = await metrics.registry.metrics();
    assert.match(text, /controller_runtime_reconcile_total\{controller="errs",result="error"\} 4/);
    assert.match(text, /controller_runtime_reconcile_total\{controller="errs",result="success"\} 1/);
    assert.match(text, /controller_runtime_terminal_reconcile_errors_total\{controller="errs"\} 1/);
    assert.match(text, /workqueue_retries_total\{name="errs",controller="errs"\} 3/);
    await c.stop();
  });

  test("requeue: true retries with backoff", async () => {
    const clock = fakeClock(0);
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    const at: number[] = [];
    const c = createController({
      name: "rq",
      primary: inf,
      clock,
      rateLimiter: () => itemExponential(5, 1000),
      reconcile: () => {
        at.push(clock.now());
        return at.length < 3 ? { requeue: true } : {};
      },
    });
    await c.start();
    inf.upsert(configMap("a"));
    for (let t = 0; t < 40; t++) {
      await ticks(2);
      clock.advance(1);
    }
    assert.deepEqual(at, [0, 5, 15]);
    await c.stop();
  });

  test("secondary objects are mapped to primary keys (old and new on update)", async () => {
    const primary = fakeInformer<KubeObject>();
    const slices = fakeInformer<KubeObject>();
    primary.markSynced();
    slices.markSynced();
    const seen: string[] = [];
    const c = createController({
      name: "map",
      primary,
      secondaries: [
        secondary(slices, (o) => {
          const svc = o.metadata.labels?.svc;
          return svc ? [`${o.metadata.namespace}/${svc}`] : [];
        }),
      ],
      reconcile: (k) => void seen.push(k),
    });
    await c.start();
    const s1 = configMap("slice-1");
    s1.metadata.labels = { svc: "web" };
    slices.upsert(s1);
    await ticks(5);
    const s2 = configMap("slice-1", "ns", "2");
    s2.metadata.labels = { svc: "api" };
    slices.upsert(s2);
    await ticks(5);
    assert.deepEqual(seen.sort(), ["ns/api", "ns/web", "ns/web"]);
    await c.stop();
  });

  test("a secondary's update filter drops the updates it rejects; adds and deletes always map", async () => {
    const primary = fakeInformer<KubeObject>();
    const slices = fakeInformer<KubeObject>();
    primary.markSynced();
    slices.markSynced();
    const seen: string[] = [];
    const c = createController({
      name: "filtered",
      primary,
      secondaries: [
        secondary(
          slices,
          (o) => [`${o.metadata.namespace}/${o.metadata.labels?.svc}`],
          (o, n) => o.metadata.labels?.svc !== n.metadata.labels?.svc,
        ),
      ],
      reconcile: (k) => void seen.push(k),
    });
    await c.start();
    const at = (rv: string, svc: string) => {
      const s = configMap("slice-1", "ns", rv);
      s.metadata.labels = { svc };
      return s;
    };
    slices.upsert(at("1", "web"));
    await ticks(5);
    slices.upsert(at("2", "web")); // rejected: same service
    await ticks(5);
    assert.deepEqual(seen, ["ns/web"]);
    slices.upsert(at("3", "api")); // passes: both sides mapped
    await ticks(5);
    slices.remove("ns/slice-1");
    await ticks(5);
    assert.deepEqual(seen.sort(), ["ns/api", "ns/api", "ns/web", "ns/web"]);
    await c.stop();
  });

  test("stop waits for running reconciles, aborts their signal, and nothing runs afterwards", async () => {
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let aborted = false;
    let after = 0;
    let stoppedFlag = false;
    const c = createController({
      name: "stop",
      primary: inf,
      reconcile: async (_k, ctx) => {
        if (stoppedFlag) after++;
        ctx.signal.addEventListener("abort", () => {
          aborted = true;
        });
        await gate;
      },
    });
    await c.start();
    inf.upsert(configMap("a"));
    inf.upsert(configMap("b"));
    await ticks(3);
    let stopped = false;
    const s = c.stop().then(() => {
      stopped = true;
    });
    await ticks(3);
    assert.equal(aborted, true);
    assert.equal(stopped, false, "stop waits for the running reconcile");
    release();
    await s;
    stoppedFlag = true;
    inf.upsert(configMap("c"));
    await ticks(5);
    assert.equal(after, 0);
  });

  test("a reconcile that fails because stop() aborted it is not logged as a failure", async () => {
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    const lines: string[] = [];
    const logger = createLogger({ level: "info" }, { write: (l: string) => void lines.push(l) });
    let entered!: () => void;
    const running = new Promise<void>((r) => {
      entered = r;
    });
    const c = createController({
      name: "abort",
      primary: inf,
      logger,
      reconcile: (_k, ctx) =>
        new Promise((_resolve, reject) => {
          entered();
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
        }),
    });
    await c.start();
    inf.upsert(configMap("a"));
    await running;
    await c.stop();
    assert.deepEqual(
      lines.filter((l) => JSON.parse(l).level === "error"),
      [],
    );
  });

  test("setConcurrency raises and lowers the number of workers live", async () => {
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    let running = 0;
    let peak = 0;
    const c = createController({
      name: "conc",
      primary: inf,
      concurrency: 1,
      reconcile: async () => {
        running++;
        peak = Math.max(peak, running);
        await ticks(3);
        running--;
      },
    });
    await c.start();
    c.setConcurrency(4);
    for (let i = 0; i < 20; i++) inf.upsert(configMap(`k${i}`));
    await ticks(40);
    assert.equal(peak, 4);
    c.setConcurrency(2);
    peak = 0;
    for (let i = 0; i < 20; i++) inf.upsert(configMap(`k${i}`, "ns", "2"));
    await ticks(80);
    assert.ok(peak <= 4 && peak >= 1);
    running = 0;
    peak = 0;
    for (let i = 0; i < 20; i++) inf.upsert(configMap(`k${i}`, "ns", "3"));
    await ticks(80);
    assert.equal(peak, 2, "after the excess workers exit, at most 2 run");
    await c.stop();
  });
});
