// The sandbox is a real control plane: these tests check what the rest of the
// suite relies on — version stamping, garbage collection of owner references,
// namespace deletion, and a restart on the same data.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CoreV1Api, KubeConfig, VersionApi } from "@kubernetes/client-node";
import { defaultSandboxBinary, startSandbox } from "../../../src/dev/sandbox.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";

test("reports the Kubernetes version it was built from", async () => {
  const { kc } = await testCluster();
  const version = await kc.makeApiClient(VersionApi).getCode();
  assert.equal(version.major, "1");
  assert.match(version.gitVersion, /^v1\.\d+\.\d+$/);
});

test("garbage-collects objects whose owner is deleted", async (t) => {
  const { kc } = await testCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await testNamespace(t, "gc");
  const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "owner" } } });
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: {
        name: "dependent",
        ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata!.uid! }],
      },
    },
  });
  await core.deleteNamespacedConfigMap({ namespace, name: "owner" });
  await eventually(
    async () => {
      const left = await core.listNamespacedConfigMap({
        namespace,
        fieldSelector: "metadata.name=dependent",
      });
      return left.items.length === 0 ? true : undefined;
    },
    { timeoutMs: 30_000, what: "the dependent ConfigMap to be garbage-collected" },
  );
});

test("deletes a namespace with its content", async () => {
  const { kc } = await testCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const name = `ns-delete-${process.pid}`;
  await core.createNamespace({ body: { metadata: { name } } });
  await core.createNamespacedConfigMap({ namespace: name, body: { metadata: { name: "content" } } });
  await core.deleteNamespace({ name });
  await eventually(
    async () => {
      const list = await core.listNamespace({ fieldSelector: `metadata.name=${name}` });
      return list.items.length === 0 ? true : undefined;
    },
    { timeoutMs: 30_000, what: `namespace ${name} to be gone` },
  );
});

test("restarts on the same data and port", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "roster-sandbox-restart-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = await startSandbox({ dir: join(dir, "data"), controllers: [] });
  const kc = new KubeConfig();
  kc.loadFromFile(first.kubeconfigPath);
  await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
    namespace: "default",
    body: { metadata: { name: "kept" }, data: { a: "1" } },
  });
  await first.stop();

  const second = await startSandbox({ dir: join(dir, "data"), controllers: [] });
  t.after(() => second.stop());
  assert.equal(second.server, first.server);
  const again = new KubeConfig();
  again.loadFromFile(second.kubeconfigPath);
  const kept = await again
    .makeApiClient(CoreV1Api)
    .readNamespacedConfigMap({ namespace: "default", name: "kept" });
  assert.deepEqual(kept.data, { a: "1" });
});

test("--help lists its own flags only, not those linked libraries register (cAdvisor's -containerd, ...)", () => {
  // Go's flag package prints usage on stderr.
  const { status, stderr: help } = spawnSync(defaultSandboxBinary, ["--help"], { encoding: "utf8" });
  assert.equal(status, 0);
  const listed = [...help.matchAll(/^ {2}-([a-z][-a-z_]*)/gm)].map((m) => m[1]);
  assert.deepEqual(listed, [
    "apiserver-arg",
    "controller-manager-arg",
    "controllers",
    "data-plane",
    "dir",
    "exit-with-parent",
    "log-file",
    "node",
    "node-image",
    "port",
  ]);
  assert.match(help, /^Usage: roster-sandbox \[flags\]/);
});
