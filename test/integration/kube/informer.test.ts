/**
 * The informer against the real API server: the cache (and what the
 * handlers were told) converges to the server's state after heavy churn,
 * after connections are cut while changes happen, and after a watch goes
 * silent. Faults are injected at the TCP level by a proxy; the API is real.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { kubeClient } from "../../../src/kube/client.ts";
import { createInformer } from "../../../src/kube/informer.ts";
import { resources } from "../../../src/kube/object.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";
import {
  churn,
  expectConverged,
  type FaultProxy,
  faultProxy,
  handlerMirror,
  serverAddress,
  viaProxy,
} from "../../support/kube-faults.ts";

const proxies: FaultProxy[] = [];
after(async () => {
  for (const p of proxies) await p.close();
});

describe("informer against the sandbox", () => {
  test("converges after thousands of ConfigMaps are created, updated and deleted quickly", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "inf-churn");
    const client = kubeClient(kc);
    const informer = createInformer({ client, type: resources.configMaps, namespace: ns });
    const mirror = handlerMirror(informer);
    informer.start();
    t.after(() => informer.stop());
    assert.equal(await informer.waitForSync(), true);
    await churn(client, ns, { prefix: "cm", creates: 2000, updates: 1000, deletes: 700, concurrency: 48 });
    const n = await expectConverged(informer, mirror, client, ns);
    assert.equal(n, 1300);
    const s = informer.stats();
    t.diagnostic(`events ${s.events}, relists ${s.relists}, restarts ${JSON.stringify(s.watchRestarts)}`);
  });

  test("converges when the watch connection is cut again and again while changes happen", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "inf-cut");
    const proxy = await faultProxy(serverAddress(kc));
    proxies.push(proxy);
    const direct = kubeClient(kc);
    const informer = createInformer({
      client: kubeClient(viaProxy(kc, proxy)),
      type: resources.configMaps,
      namespace: ns,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    const mirror = handlerMirror(informer);
    informer.start();
    t.after(() => informer.stop());
    await informer.waitForSync();
    let cuts = 0;
    let running = true;
    const cutter = (async () => {
      while (running) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 150));
        cuts += proxy.cutAll() > 0 ? 1 : 0;
      }
    })();
    await churn(direct, ns, { prefix: "cut", creates: 800, updates: 400, deletes: 300, concurrency: 24 });
    running = false;
    await cutter;
    assert.ok(cuts >= 3, `cut the watch ${cuts} times`);
    await expectConverged(informer, mirror, direct, ns);
    const s = informer.stats();
    assert.ok(s.watchRestarts.error + s.watchRestarts.closed >= 1, JSON.stringify(s.watchRestarts));
    t.diagnostic(`cuts ${cuts}, restarts ${JSON.stringify(s.watchRestarts)}, relists ${s.relists}`);
  });

  test("a silent watch (connection alive, nothing arrives) is restarted by the inactivity timeout and catches up", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "inf-silent");
    const proxy = await faultProxy(serverAddress(kc));
    proxies.push(proxy);
    const direct = kubeClient(kc);
    const informer = createInformer({
      client: kubeClient(viaProxy(kc, proxy)),
      type: resources.configMaps,
      namespace: ns,
      inactivityTimeoutMs: 2000,
    });
    const mirror = handlerMirror(informer);
    informer.start();
    t.after(() => informer.stop());
    await informer.waitForSync();
    await churn(direct, ns, { prefix: "before", creates: 50, updates: 0, deletes: 0 });
    await expectConverged(informer, mirror, direct, ns);
    const restartsBefore = informer.stats().watchRestarts.inactivity;
    assert.ok(proxy.freezeAll() >= 1, "froze the watch connection");
    // Changes the frozen watch cannot deliver.
    await churn(direct, ns, { prefix: "during", creates: 100, updates: 50, deletes: 30 });
    await expectConverged(informer, mirror, direct, ns, 30_000);
    assert.ok(
      informer.stats().watchRestarts.inactivity > restartsBefore,
      "restarted by the inactivity timeout",
    );
  });

  test("label and field selectors restrict the cache", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "inf-sel");
    const client = kubeClient(kc);
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    for (const [name, team] of [
      ["a", "x"],
      ["b", "y"],
      ["c", "x"],
    ]) {
      await client.request({ method: "POST", path, body: { metadata: { name, labels: { team } } } });
    }
    const byLabel = createInformer({
      client,
      type: resources.configMaps,
      namespace: ns,
      labelSelector: "team=x",
    });
    const byField = createInformer({
      client,
      type: resources.configMaps,
      namespace: ns,
      fieldSelector: "metadata.name=b",
    });
    byLabel.start();
    byField.start();
    t.after(async () => {
      await byLabel.stop();
      await byField.stop();
    });
    await Promise.all([byLabel.waitForSync(), byField.waitForSync()]);
    assert.deepEqual(byLabel.keys().sort(), [`${ns}/a`, `${ns}/c`]);
    assert.deepEqual(byField.keys(), [`${ns}/b`]);
  });
});
