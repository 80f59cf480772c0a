/**
 * Informer faults that need a private control plane: the API server
 * restarting under the informer, and a forced `410 Gone` after etcd
 * compaction. Each test starts its own sandbox (never the shared one).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { type Sandbox, startSandbox } from "../../../src/dev/sandbox.ts";
import { kubeClient } from "../../../src/kube/client.ts";
import { createInformer } from "../../../src/kube/informer.ts";
import { resources } from "../../../src/kube/object.ts";
import {
  churn,
  expectConverged,
  faultProxy,
  handlerMirror,
  retrying,
  serverAddress,
  viaProxy,
} from "../../support/kube-faults.ts";

/** Stops a private sandbox at once: its graceful shutdown waits ~20 s for clients' connections to drain. */
async function crash(sandbox: Sandbox): Promise<void> {
  try {
    process.kill(sandbox.pid, "SIGKILL");
  } catch {
    // already gone
  }
  await sandbox.stop();
}

function loadKc(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  await retrying(() =>
    kubeClient(kc).request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name } } }),
  );
}

describe("informer faults on a private sandbox", () => {
  test("converges after the API server is restarted while changes happen", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "roster-restart-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    let sandbox = await startSandbox({ dir: join(dir, "sandbox") });
    const kc = loadKc(sandbox.kubeconfigPath);
    const ns = "restart";
    await createNamespace(kc, ns);
    // The informer's client and the writer's client are separate, as in real life.
    const informer = createInformer({
      client: kubeClient(kc),
      type: resources.configMaps,
      namespace: ns,
      backoff: { initialMs: 100, maxMs: 1000 },
    });
    const mirror = handlerMirror(informer);
    informer.start();
    t.after(async () => {
      await informer.stop();
      await crash(sandbox);
    });
    await informer.waitForSync();

    await churn(kubeClient(kc), ns, { prefix: "a", creates: 300, updates: 100, deletes: 50 });
    // Restart mid-churn: the writer retries through the outage.
    const writer = churn(kubeClient(kc), ns, {
      prefix: "b",
      creates: 400,
      updates: 200,
      deletes: 150,
      concurrency: 8,
    });
    await new Promise((r) => setTimeout(r, 300));
    // A crash, not a graceful stop: the sandbox's graceful shutdown waits ~20 s for open
    // watches to drain, and a control plane that vanishes mid-stream is the harsher case.
    await crash(sandbox);
    sandbox = await startSandbox({ dir: join(dir, "sandbox") });
    assert.equal(loadKc(sandbox.kubeconfigPath).getCurrentCluster()!.server, kc.getCurrentCluster()!.server);
    await writer;
    await churn(kubeClient(kc), ns, { prefix: "c", creates: 100, updates: 50, deletes: 100 });

    const n = await expectConverged(informer, mirror, kubeClient(kc), ns);
    assert.equal(n, 250 + 250 + 0);
    const s = informer.stats();
    assert.ok(s.watchRestarts.error + s.watchRestarts.closed >= 1, JSON.stringify(s.watchRestarts));
    t.diagnostic(`restarts ${JSON.stringify(s.watchRestarts)}, relists ${s.relists}`);
  });

  test("a 410 after etcd compaction makes the informer relist and deliver the difference", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "roster-410-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // Without the watch cache, watches read etcd directly, so compaction expires old resourceVersions quickly.
    const sandbox = await startSandbox({
      dir: join(dir, "sandbox"),
      apiserverArgs: ["--watch-cache=false", "--etcd-compaction-interval=1s"],
    });
    const kc = loadKc(sandbox.kubeconfigPath);
    const ns = "expired";
    await createNamespace(kc, ns);
    const direct = kubeClient(kc);
    const proxy = await faultProxy(serverAddress(kc));
    const informer = createInformer({
      client: kubeClient(viaProxy(kc, proxy)),
      type: resources.configMaps,
      namespace: ns,
      backoff: { initialMs: 200, maxMs: 500 },
    });
    const mirror = handlerMirror(informer);
    informer.start();
    t.after(async () => {
      await informer.stop();
      await proxy.close();
      await crash(sandbox);
    });
    await informer.waitForSync();
    await churn(direct, ns, { prefix: "a", creates: 200, updates: 0, deletes: 0 });
    await expectConverged(informer, mirror, direct, ns);
    const before = informer.stats();

    // Take the informer off the network, change things, let etcd compact past its resourceVersion.
    proxy.refuse(true);
    proxy.cutAll();
    await churn(direct, ns, { prefix: "a", existing: 200, creates: 0, updates: 100, deletes: 80 });
    await churn(direct, ns, { prefix: "b", creates: 50, updates: 0, deletes: 0 });
    await new Promise((r) => setTimeout(r, 3500));
    proxy.refuse(false);

    await expectConverged(informer, mirror, direct, ns);
    const after = informer.stats();
    assert.ok(
      after.watchRestarts.expired > before.watchRestarts.expired,
      JSON.stringify(after.watchRestarts),
    );
    assert.ok(after.relists > before.relists, `relisted (${after.relists})`);
    assert.equal(informer.size, 200 - 80 + 50);
  });
});
