import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { createManager } from "../../../src/kube/manager.ts";
import type { KubeObject } from "../../../src/kube/object.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { eventually } from "../../support/cluster.ts";
import { configMap, fakeInformer, scriptedClient } from "./fakes.ts";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("manager", () => {
  test("reconfigure applies ports, log level and concurrency live without restarting controllers", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const m = createManager({
      client: scriptedClient({}),
      healthPort: p1,
      metricsPort: p1,
      bindAddress: "127.0.0.1",
      concurrency: { default: 1 },
      // Nothing here waits on time: the fake clock keeps real timers out of the manager.
      clock: fakeClock(),
    });
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    let running = 0;
    let peak = 0;
    let done = 0;
    // Reconciles hold until released, so the peak is the concurrency, not a race with a sleep.
    const held: (() => void)[] = [];
    const c = m.controller({
      name: "things",
      primary: inf,
      reconcile: async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => held.push(r));
        running--;
        done++;
      },
    });
    await m.start();
    try {
      assert.equal(m.isLeader(), true, "leader election off: this replica runs the controllers");
      assert.equal((await fetch(`http://127.0.0.1:${p1}/healthz`)).status, 200);
      assert.match(
        await (await fetch(`http://127.0.0.1:${p1}/metrics`)).text(),
        /controller_runtime_max_concurrent_reconciles\{controller="things"\} 1/,
      );
      const queueBefore = await eventually(() => c.queue(), {
        intervalMs: 1,
        what: "the controller's queue",
      });

      await m.reconfigure({
        healthPort: p2,
        metricsPort: p2,
        logLevel: "debug",
        concurrency: { default: 3 },
      });
      assert.deepEqual(m.ports(), { health: p2, metrics: p2 });
      assert.equal((await fetch(`http://127.0.0.1:${p2}/readyz`)).status, 200);
      await assert.rejects(fetch(`http://127.0.0.1:${p1}/healthz`));
      assert.equal(m.logger.level, "debug");
      assert.equal(c.queue(), queueBefore, "same queue: nothing was restarted");
      for (let i = 0; i < 12; i++) inf.upsert(configMap(`k${i}`));
      // Release one held reconcile at a time once three run: never a fourth at once.
      while (done < 12) {
        const want = Math.min(3, 12 - done);
        await eventually(() => (running === want ? true : undefined), {
          intervalMs: 1,
          what: `${want} reconciles running`,
        });
        const before = done;
        held.shift()?.();
        await eventually(() => (done > before ? true : undefined), { intervalMs: 1, what: "a release" });
      }
      assert.equal(peak, 3);
    } finally {
      await m.stop();
    }
    assert.equal(await m.done, "stopped");
  });
});
