// unmanagedServices: Roster's own Services come from the (label-filtered)
// cache; any other name costs one GET, remembered briefly and bounded.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError } from "../../../src/kube/client.ts";
import type { KubeObject } from "../../../src/kube/object.ts";
import { unmanagedServices } from "../../../src/operator/unmanaged.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { fakeInformer, scriptedClient } from "../kube/fakes.ts";

const managedLabels = { "app.kubernetes.io/managed-by": "roster.dev" };

function setup(live: Map<string, Record<string, string>>) {
  const clock = fakeClock();
  const managed = fakeInformer<KubeObject>();
  const client = scriptedClient({
    onRequest: (req) => {
      const [, , , , namespace, , name] = req.path.split("/");
      const labels = live.get(`${namespace}/${name}`);
      if (!labels) throw new ApiError(404, { reason: "NotFound" }, `GET ${req.path}`);
      return { metadata: { name, namespace, labels } };
    },
  });
  const changed: string[] = [];
  const u = unmanagedServices({
    client,
    managed,
    clock,
    ttlMs: 1000,
    maxEntries: 2,
    onChange: (k) => changed.push(k),
  });
  return { clock, managed, client, u, changed };
}

test("a managed Service in the cache needs no request", async () => {
  const { managed, client, u } = setup(new Map());
  managed.upsert({ metadata: { name: "web", namespace: "a", labels: managedLabels } });
  assert.equal(await u.isUnmanaged("a/web"), false);
  assert.equal(client.requests.length, 0);
});

test("a name missing from the cache: one GET, remembered for the TTL; a change is reported", async () => {
  const live = new Map([["a/web", { app: "web" }]]);
  const { clock, client, u, changed } = setup(live);
  const [x, y] = await Promise.all([u.isUnmanaged("a/web"), u.isUnmanaged("a/web")]);
  assert.deepEqual([x, y], [true, true]);
  assert.equal(client.requests.length, 1, "concurrent checks share one GET");
  assert.deepEqual(changed, ["a/web"]);
  live.delete("a/web");
  clock.advance(999);
  assert.equal(await u.isUnmanaged("a/web"), true, "remembered");
  clock.advance(1);
  assert.equal(await u.isUnmanaged("a/web"), false, "gone after the TTL");
  assert.deepEqual(changed, ["a/web", "a/web"]);
  assert.equal(await u.isUnmanaged("a/none"), false, "no Service: nothing in the way");
  assert.deepEqual(changed, ["a/web", "a/web"], "absent stays absent: no change");
});

test("the memo is bounded", async () => {
  const { client, u } = setup(new Map());
  for (const n of ["a", "b", "c"]) await u.isUnmanaged(`ns/${n}`);
  const before = client.requests.length;
  await u.isUnmanaged("ns/c");
  assert.equal(client.requests.length, before);
  await u.isUnmanaged("ns/a");
  assert.equal(client.requests.length, before + 1, "the oldest was evicted");
});
