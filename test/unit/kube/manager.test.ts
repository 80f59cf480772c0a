import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { createManager } from "../../../src/kube/manager.ts";
import type { KubeObject } from "../../../src/kube/object.ts";
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
    });
    const inf = fakeInformer<KubeObject>();
    inf.markSynced();
    let running = 0;
    let peak = 0;
    const c = m.controller({
      name: "things",
      primary: inf,
      reconcile: async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
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
      await new Promise((r) => setTimeout(r, 20));
      const queueBefore = c.queue();
      assert.ok(queueBefore);

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
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(peak, 3);
    } finally {
      await m.stop();
    }
    assert.equal(await m.done, "stopped");
  });
});
