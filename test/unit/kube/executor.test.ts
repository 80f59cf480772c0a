import assert from "node:assert/strict";
import { test } from "node:test";
import { applier } from "../../../src/kube/apply.ts";
import { ApiError, type KubeRequest } from "../../../src/kube/client.ts";
import { APPLIED_HASH_ANNOTATION, planExecutor } from "../../../src/kube/executor.ts";
import { type KubeObject, resources } from "../../../src/kube/object.ts";
import { writeTracker } from "../../../src/kube/tracker.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { fakeInformer, scriptedClient } from "./fakes.ts";

const owned = (meta: { labels?: Record<string, string> }) => meta.labels?.mine === "yes";
const cm = (name: string, labels?: Record<string, string>): KubeObject =>
  ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "ns", labels } }) as KubeObject;
const alreadyExists = () => new ApiError(409, { reason: "AlreadyExists", message: "exists" }, "POST");

/** An executor over a client the test scripts; `live` answers GETs. */
function setup(onWrite: (req: KubeRequest) => unknown, live: Record<string, KubeObject> = {}) {
  const client = scriptedClient({
    onRequest: (req) => {
      if (req.method === "GET") return live[req.path] ?? Promise.reject(new ApiError(404, {}, "GET"));
      return onWrite(req);
    },
  });
  const clock = fakeClock(1000);
  const tracker = writeTracker(clock);
  const cache = fakeInformer<KubeObject>();
  tracker.observe(cache);
  const executor = planExecutor({
    client,
    applier: applier(client),
    owned,
    tracker,
    tracked: [resources.configMaps],
  });
  return { client, tracker, executor, cache };
}

test("create, apply and delete run in order; writes of tracked types are tracked under the group", async () => {
  let rv = 10;
  const { client, tracker, executor, cache } = setup((req) => {
    if (req.method === "DELETE") return {};
    const body = req.body as KubeObject;
    return { ...body, metadata: { ...body.metadata, resourceVersion: String(++rv) } };
  });
  const result = await executor.run(
    [
      { op: "create", type: resources.configMaps, body: cm("a") },
      { op: "apply", type: resources.configMaps, body: cm("b") },
      { op: "delete", type: resources.configMaps, namespace: "ns", name: "c", uid: "u-c" },
    ],
    { group: "ns/svc" },
  );
  assert.deepEqual(
    client.requests.map((r) => `${r.method} ${r.path}`),
    [
      "POST /api/v1/namespaces/ns/configmaps",
      "PATCH /api/v1/namespaces/ns/configmaps/b",
      "DELETE /api/v1/namespaces/ns/configmaps/c",
    ],
  );
  assert.equal(client.requests[1]!.query?.force, true);
  assert.deepEqual((client.requests[2]!.body as { preconditions: unknown }).preconditions, {
    uid: "u-c",
    resourceVersion: undefined,
  });
  assert.deepEqual(
    result.written.map((o) => o?.metadata.resourceVersion),
    ["11", "12", undefined],
  );
  assert.equal(result.conflict, undefined);
  assert.equal(tracker.behind("ns/svc"), true);
  cache.upsert({ ...cm("a"), metadata: { ...cm("a").metadata, resourceVersion: "11" } });
  cache.upsert({ ...cm("b"), metadata: { ...cm("b").metadata, resourceVersion: "12" } });
  cache.upsert(cm("c"));
  cache.remove("ns/c");
  assert.equal(tracker.behind("ns/svc"), false);
});

test("without a group nothing is tracked", async () => {
  const { tracker, executor } = setup(() => ({}));
  await executor.run([{ op: "delete", type: resources.configMaps, namespace: "ns", name: "c", uid: "u" }]);
  assert.equal(tracker.behind(""), false);
});

test("a create meeting an object it does not own is a conflict, never a takeover; the rest still runs", async () => {
  const { client, executor } = setup(
    (req) => {
      if (req.method === "POST") throw alreadyExists();
      return req.body;
    },
    { "/api/v1/namespaces/ns/configmaps/a": cm("a", { mine: "no" }) },
  );
  const result = await executor.run([
    { op: "create", type: resources.configMaps, body: cm("a") },
    { op: "apply", type: resources.configMaps, body: cm("b") },
  ]);
  assert.deepEqual(result.conflict, { kind: "ConfigMap", name: "a" });
  assert.equal(result.behind, false);
  assert.equal(result.written[0], undefined);
  assert.deepEqual(
    client.requests.map((r) => r.method),
    ["POST", "GET", "PATCH"],
  );
});

test("a create meeting its own object (the cache is behind) adopts it", async () => {
  const live = {
    ...cm("a", { mine: "yes" }),
    metadata: { ...cm("a", { mine: "yes" }).metadata, uid: "u-a" },
  };
  const { executor } = setup(
    () => {
      throw alreadyExists();
    },
    { "/api/v1/namespaces/ns/configmaps/a": live },
  );
  const result = await executor.run([{ op: "create", type: resources.configMaps, body: cm("a") }]);
  assert.equal(result.behind, true);
  assert.equal(result.conflict, undefined);
  assert.equal(result.written[0]?.metadata.uid, "u-a");
});

test("an upsert writes nothing when the recorded content hash matches", async () => {
  let created: KubeObject | undefined;
  const { client, executor } = setup((req) => {
    created = req.body as KubeObject;
    return created;
  });
  const desired = cm("svc");
  await executor.run([{ op: "upsert", type: resources.configMaps, body: desired, existing: undefined }]);
  const hash = created?.metadata.annotations?.[APPLIED_HASH_ANNOTATION];
  assert.ok(hash);
  assert.equal(desired.metadata.annotations, undefined, "the planned body is not mutated");
  const again = await executor.run([
    { op: "upsert", type: resources.configMaps, body: cm("svc"), existing: created },
  ]);
  assert.equal(again.written[0], created);
  assert.equal(client.requests.length, 1);
});

test("an upsert of changed content re-labels the create's managedFields entry, then applies with its version", async () => {
  const existing: KubeObject = {
    ...cm("svc"),
    metadata: {
      ...cm("svc").metadata,
      uid: "u",
      resourceVersion: "5",
      annotations: { [APPLIED_HASH_ANNOTATION]: "old" },
    },
  };
  const live: KubeObject = {
    ...existing,
    metadata: {
      ...existing.metadata,
      managedFields: [{ manager: "roster", operation: "Update", fieldsV1: { f: {} } }],
    },
  };
  const { client, executor } = setup(
    (req) => {
      const body = req.body as KubeObject;
      if (req.contentType === "application/merge-patch+json")
        return { ...live, metadata: { ...live.metadata, resourceVersion: "6" } };
      return body;
    },
    { "/api/v1/namespaces/ns/configmaps/svc": live },
  );
  const result = await executor.run([
    { op: "upsert", type: resources.configMaps, body: cm("svc", { x: "1" }), existing },
  ]);
  assert.deepEqual(
    client.requests.map((r) => `${r.method} ${r.contentType ?? ""}`),
    ["GET ", "PATCH application/merge-patch+json", "PATCH application/apply-patch+yaml"],
  );
  const relabel = client.requests[1]!.body as { metadata: { managedFields: { operation: string }[] } };
  assert.deepEqual(
    relabel.metadata.managedFields.map((e) => e.operation),
    ["Apply"],
  );
  assert.equal(result.written[0]?.metadata.resourceVersion, "6");
});
