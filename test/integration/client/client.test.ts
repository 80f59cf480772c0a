// The client against a real API server: published ConfigMaps are written with
// the real API exactly as the operator writes them (labels, name, canonical
// document), and the client must follow every change within one watch event.
// (Once the operator exists, an operator-driven version of this test joins it.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { CoreV1Api, type V1ConfigMap } from "@kubernetes/client-node";
import type { PublishedEndpoint } from "../../../src/api/published.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { NoHealthyEndpointsError, UnknownServiceError } from "../../../src/client/errors.ts";
import type { UpdatedEvent } from "../../../src/client/registry.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { type DocSpec, endpoint, configMap as publishedConfigMap } from "../../unit/client/fixtures.ts";

/** The fixture's ConfigMap (plain JSON, as the informer sees it) as the typed client-node body. */
const configMap = (spec: DocSpec): V1ConfigMap => publishedConfigMap(spec) as V1ConfigMap;

test("the client follows a published service: add, fail, drain, weight change, panic, deletion", async (t) => {
  const { kc } = await testCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await testNamespace(t, "client");
  const client = new RosterClient(kc, { namespace });
  t.after(() => client.close());

  const updates: UpdatedEvent[] = [];
  client.on("updated", (e) => updates.push(e));
  const registered: string[] = [];
  client.on("registered", (e) => registered.push(e.endpoint.instance));
  const health: string[] = [];
  client.on("healthChanged", (e) =>
    health.push(`${e.endpoint.instance}:${e.previous.state}->${e.endpoint.state}`),
  );

  const a = endpoint({ instance: "a", address: "10.9.0.1", zone: "z1" });
  const b = endpoint({ instance: "b", address: "10.9.0.2", zone: "z1" });
  const c = endpoint({ instance: "c", address: "10.9.0.3", zone: "z2" });
  let writes = 0;

  /** Writes revision `revision` as the operator would and waits for the client to show it. */
  async function publish(revision: number, endpoints: PublishedEndpoint[], extra: Partial<DocSpec> = {}) {
    const body = configMap({ namespace, service: "web", revision, endpoints, ...extra });
    if (revision === 1) await core.createNamespacedConfigMap({ namespace, body });
    else await core.replaceNamespacedConfigMap({ namespace, name: body.metadata!.name!, body });
    writes++;
    await eventually(() => (updates.at(-1)?.revision === revision ? true : undefined), {
      what: `client at revision ${revision}`,
    });
    // One write, one watch event, one `updated`: no intermediate state, nothing missed.
    assert.equal(updates.length, writes);
    assert.equal(client.service("web").revision, revision);
  }

  await client.ready({ timeoutMs: 15_000 });
  assert.throws(() => client.pick("web"), UnknownServiceError);

  await publish(1, [a, b]);
  assert.deepEqual(registered, ["a", "b"]);
  assert.deepEqual(
    client.endpoints("web").map((e) => e.instance),
    ["a", "b"],
  );

  // add
  await publish(2, [a, b, c]);
  assert.deepEqual(registered, ["a", "b", "c"]);
  assert.deepEqual(
    updates.at(-1)!.added.map((e) => e.instance),
    ["c"],
  );

  // fail
  const cDown = endpoint({
    instance: "c",
    address: c.address,
    zone: "z2",
    state: "Unhealthy",
    healthy: false,
  });
  await publish(3, [a, b, cDown]);
  assert.deepEqual(health, ["c:Ready->Unhealthy"]);
  for (let i = 0; i < 10; i++) assert.notEqual(client.pick("web").endpoint.instance, "c");

  // drain
  const aDrain = endpoint({
    instance: "a",
    address: a.address,
    zone: "z1",
    state: "Draining",
    healthy: true,
  });
  await publish(4, [aDrain, b, cDown]);
  assert.deepEqual(health.at(-1), "a:Ready->Draining");
  for (let i = 0; i < 10; i++) assert.equal(client.pick("web").endpoint.instance, "b");

  // weight change (and recovery of c): WeightedRoundRobin splits 3:1 exactly
  const bHeavy = endpoint({ instance: "b", address: b.address, zone: "z1", weight: 300 });
  await publish(5, [aDrain, bHeavy, c], {
    loadBalancing: { strategy: "WeightedRoundRobin", zoneAware: false },
  });
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const p = client.pick("web");
    counts[p.endpoint.instance] = (counts[p.endpoint.instance] ?? 0) + 1;
    p.release();
  }
  assert.deepEqual(counts, { b: 300, c: 100 });

  // zone preference, as published
  await publish(6, [aDrain, bHeavy, c], { loadBalancing: { strategy: "RoundRobin", zoneAware: true } });
  for (let i = 0; i < 10; i++) assert.equal(client.pick("web", { zone: "z2" }).endpoint.instance, "c");

  // everything fails: no healthy endpoints, then panic publishes the failed ones
  const bDown = endpoint({
    instance: "b",
    address: b.address,
    zone: "z1",
    state: "Unhealthy",
    healthy: false,
  });
  await publish(7, [aDrain, bDown, cDown]);
  assert.throws(() => client.pick("web"), NoHealthyEndpointsError);
  const bPanic = endpoint({ instance: "b", address: b.address, zone: "z1", state: "Panic", healthy: false });
  const cPanic = endpoint({ instance: "c", address: c.address, zone: "z2", state: "Panic", healthy: false });
  await publish(8, [aDrain, bPanic, cPanic], { panic: true });
  assert.equal(updates.at(-1)!.panic, true);
  const picked = new Set(Array.from({ length: 10 }, () => client.pick("web").endpoint.instance));
  assert.deepEqual([...picked].sort(), ["b", "c"]);

  // deletion
  await core.deleteNamespacedConfigMap({ namespace, name: "web-roster" });
  await eventually(() => (updates.at(-1)?.deleted ? true : undefined), { what: "service deleted" });
  assert.throws(() => client.pick("web"), UnknownServiceError);
});

test("the client ignores ConfigMaps that are not Roster's and namespaces it does not watch", async (t) => {
  const { kc } = await testCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const watched = await testNamespace(t, "client-w");
  const other = await testNamespace(t, "client-o");
  // Already there before the client starts: must arrive with the first list.
  await core.createNamespacedConfigMap({
    namespace: watched,
    body: configMap({
      namespace: watched,
      service: "api",
      revision: 3,
      endpoints: [endpoint({ instance: "x" })],
    }),
  });
  const client = new RosterClient(kc, { namespace: watched });
  t.after(() => client.close());
  await client.ready({ timeoutMs: 15_000 });
  assert.equal(client.service("api").revision, 3);

  const unlabelled = configMap({
    namespace: watched,
    service: "plain",
    revision: 1,
    endpoints: [endpoint({ instance: "y" })],
  });
  unlabelled.metadata!.labels = {};
  await core.createNamespacedConfigMap({ namespace: watched, body: unlabelled });
  await core.createNamespacedConfigMap({
    namespace: other,
    body: configMap({
      namespace: other,
      service: "api",
      revision: 1,
      endpoints: [endpoint({ instance: "z" })],
    }),
  });
  // A later labelled write proves the watch has moved past both writes above.
  await core.createNamespacedConfigMap({
    namespace: watched,
    body: configMap({
      namespace: watched,
      service: "later",
      revision: 1,
      endpoints: [endpoint({ instance: "w" })],
    }),
  });
  await eventually(() => (client.services().some((s) => s.service === "later") ? true : undefined));
  assert.throws(() => client.pick("plain"), UnknownServiceError);
  assert.throws(() => client.pick(`${other}/api`), /not watched/);
  assert.deepEqual(
    client
      .services()
      .map((s) => s.service)
      .sort(),
    ["api", "later"],
  );
});
