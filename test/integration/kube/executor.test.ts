/**
 * The plan executor against the real API server: creates, content-hash
 * upserts that write nothing when nothing changed, AlreadyExists on an
 * object it does not own (a conflict, the object untouched) and on its own
 * (adopted), and UID-preconditioned deletes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { applier } from "../../../src/kube/apply.ts";
import { type KubeClient, type KubeRequest, kubeClient } from "../../../src/kube/client.ts";
import { APPLIED_HASH_ANNOTATION, planExecutor } from "../../../src/kube/executor.ts";
import { type KubeObject, resourcePath, resources } from "../../../src/kube/object.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const MINE = { mine: "yes" };

test("plan executor against the sandbox", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "executor");
  const client = kubeClient(kc);
  const writes: KubeRequest[] = [];
  const spy: KubeClient = {
    ...client,
    request<T>(r: KubeRequest) {
      if (r.method !== "GET") writes.push(r);
      return client.request<T>(r);
    },
  };
  const executor = planExecutor({
    client: spy,
    applier: applier(spy),
    owned: (meta) => meta.labels?.mine === "yes",
  });
  const cm = (name: string, data: Record<string, string>, labels = MINE): ConfigMap => ({
    metadata: { name, namespace: ns, labels },
    data,
  });
  const get = (name: string) =>
    client.request<ConfigMap>({
      method: "GET",
      path: resourcePath(resources.configMaps, { namespace: ns, name }),
    });

  // An upsert creates, then writes nothing for the same content, then applies a change.
  const first = await executor.run([
    { op: "upsert", type: resources.configMaps, body: cm("up", { a: "1" }), existing: undefined },
  ]);
  const created = first.written[0]!;
  assert.ok(created.metadata.annotations?.[APPLIED_HASH_ANNOTATION]);
  writes.length = 0;
  const same = await executor.run([
    { op: "upsert", type: resources.configMaps, body: cm("up", { a: "1" }), existing: created },
  ]);
  assert.equal(writes.length, 0, "unchanged content: no write");
  assert.equal(same.written[0], created);
  const changed = await executor.run([
    { op: "upsert", type: resources.configMaps, body: cm("up", { a: "2" }), existing: created },
  ]);
  assert.equal((changed.written[0] as ConfigMap).data?.a, "2");
  // The create's Update entry became the field manager's Apply entry.
  const live = await client.request<KubeObject>({
    method: "GET",
    path: resourcePath(resources.configMaps, { namespace: ns, name: "up" }),
  });
  const ours = (live.metadata.managedFields as { manager: string; operation: string }[]).filter(
    (e) => e.manager === "roster",
  );
  assert.deepEqual(
    ours.map((e) => e.operation),
    ["Apply"],
  );

  // A create that meets an object it does not own: a conflict, the object untouched.
  await client.request({
    method: "POST",
    path: resourcePath(resources.configMaps, { namespace: ns }),
    body: { apiVersion: "v1", kind: "ConfigMap", ...cm("theirs", { x: "theirs" }, { mine: "no" }) },
  });
  const conflict = await executor.run([
    { op: "create", type: resources.configMaps, body: cm("theirs", { x: "ours" }) },
  ]);
  assert.deepEqual(conflict.conflict, { kind: "ConfigMap", name: "theirs" });
  assert.equal((await get("theirs")).data?.x, "theirs");

  // A create that meets its own object (a cache that is behind): adopted.
  const adopted = await executor.run([
    { op: "create", type: resources.configMaps, body: cm("up", { a: "3" }) },
  ]);
  assert.equal(adopted.behind, true);
  assert.equal(adopted.written[0]?.metadata.uid, created.metadata.uid);

  // Deletes carry the UID: a stale one deletes nothing, the right one deletes.
  await assert.rejects(
    executor.run([{ op: "delete", type: resources.configMaps, namespace: ns, name: "up", uid: "stale" }]),
    (err: Error) => /409|Conflict|Precondition/i.test(err.message),
  );
  await executor.run([
    { op: "delete", type: resources.configMaps, namespace: ns, name: "up", uid: created.metadata.uid },
    { op: "delete", type: resources.configMaps, namespace: ns, name: "gone", uid: "x" },
  ]);
  await assert.rejects(get("up"), (err: Error) => /404/.test(err.message));
});
