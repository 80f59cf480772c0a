/**
 * The write helpers against the real API server: server-side apply with one
 * field manager, conflicts without force, status through /status skipped
 * when unchanged, conditions, and Events aggregated into a series.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { applier, isApplyConflict } from "../../../src/kube/apply.ts";
import { type KubeClient, type KubeRequest, kubeClient } from "../../../src/kube/client.ts";
import { findCondition, setCondition } from "../../../src/kube/conditions.ts";
import { eventRecorder } from "../../../src/kube/events.ts";
import { type KubeObject, type ResourceType, resources } from "../../../src/kube/object.ts";
import { observed, writeStatus } from "../../../src/kube/status.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";

const serviceInstances: ResourceType = {
  group: "roster.dev",
  version: "v1alpha1",
  plural: "serviceinstances",
  kind: "ServiceInstance",
  namespaced: true,
};

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

interface ServiceInstance extends KubeObject {
  spec: Record<string, unknown>;
  status?: {
    healthy?: boolean;
    observedGeneration?: number;
    conditions?: ReturnType<typeof setCondition>;
  };
}

/** The same client, remembering every request it sends. */
function recording(client: KubeClient): { recorded: KubeClient; requests: KubeRequest[] } {
  const requests: KubeRequest[] = [];
  const recorded: KubeClient = {
    ...client,
    request<T>(r: KubeRequest) {
      requests.push(r);
      return client.request<T>(r);
    },
  };
  return { recorded, requests };
}

describe("writes against the sandbox", () => {
  test("server-side apply: one field manager, explicit content type, force only on request", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "apply");
    const client = kubeClient(kc);
    const { recorded: spy, requests } = recording(client);
    const roster = applier(spy);
    const cm = await roster.apply<ConfigMap>(resources.configMaps, {
      metadata: { name: "web-roster", namespace: ns, labels: { "app.kubernetes.io/managed-by": "roster" } },
      data: { "endpoints.json": "{}" },
    } as ConfigMap);
    assert.equal(requests[0]!.contentType, "application/apply-patch+yaml");
    assert.equal(requests[0]!.query?.fieldManager, "roster");
    assert.equal(requests[0]!.query?.force, undefined);
    assert.equal(cm.data?.["endpoints.json"], "{}");
    const managers = (cm.metadata.managedFields as { manager: string; operation: string }[]).map(
      (m) => `${m.manager}/${m.operation}`,
    );
    assert.deepEqual(managers, ["roster/Apply"]);

    // Another manager takes a field: a plain apply now conflicts instead of stealing it.
    await applier(client, "someone-else").apply(
      resources.configMaps,
      { metadata: { name: "web-roster", namespace: ns }, data: { "endpoints.json": "[]" } } as ConfigMap,
      { force: true },
    );
    await assert.rejects(
      roster.apply(resources.configMaps, {
        metadata: { name: "web-roster", namespace: ns },
        data: { "endpoints.json": "{}" },
      } as ConfigMap),
      (err) => isApplyConflict(err),
    );
    // On an object Roster owns, force takes the field back.
    const back = await roster.apply<ConfigMap>(
      resources.configMaps,
      { metadata: { name: "web-roster", namespace: ns }, data: { "endpoints.json": "{}" } } as ConfigMap,
      { force: true },
    );
    assert.equal(back.data?.["endpoints.json"], "{}");
    assert.equal(await roster.delete(resources.configMaps, ns, "web-roster"), true);
    assert.equal(await roster.delete(resources.configMaps, ns, "web-roster"), false);
  });

  test("status goes through /status, only when it changed; conditions keep their transition time", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "status");
    const client = kubeClient(kc);
    const { recorded: counting, requests } = recording(client);
    const roster = applier(counting);
    const si = await client.request<ServiceInstance>({
      method: "POST",
      path: `/apis/roster.dev/v1alpha1/namespaces/${ns}/serviceinstances`,
      body: {
        apiVersion: "roster.dev/v1alpha1",
        kind: "ServiceInstance",
        metadata: { name: "web-1" },
        spec: { service: "web", address: "10.0.0.1", ports: [{ name: "http", port: 8080 }] },
      },
    });
    const t0 = Date.now();
    const conditions = setCondition(
      undefined,
      { type: "Healthy", status: "True", reason: "ProbeSucceeded", message: "tcp ok", observedGeneration: 1 },
      t0,
    );
    const first = await writeStatus(
      roster,
      serviceInstances,
      si,
      observed(si, { healthy: true, conditions }),
    );
    assert.equal(first.written, true);
    assert.equal(requests.length, 1);
    assert.match(requests[0]!.path, /\/serviceinstances\/web-1\/status$/);
    assert.equal(first.object.status?.healthy, true);
    assert.equal(first.object.metadata.generation, 1, "the status write did not touch the spec's generation");

    // The same status again: no API call.
    const again = await writeStatus(
      roster,
      serviceInstances,
      first.object,
      observed(si, { healthy: true, conditions: setCondition(conditions, { ...conditions[0]! }, t0 + 5000) }),
    );
    assert.equal(again.written, false);
    assert.equal(requests.length, 1);

    // A new message keeps lastTransitionTime; a flip changes it.
    const sameStatus = setCondition(
      first.object.status?.conditions,
      { type: "Healthy", status: "True", reason: "ProbeSucceeded", message: "tcp ok (2 ms)" },
      t0 + 60_000,
    );
    const second = await writeStatus(
      roster,
      serviceInstances,
      first.object,
      observed(si, { healthy: true, conditions: sameStatus }),
    );
    assert.equal(second.written, true);
    assert.equal(
      findCondition(second.object.status?.conditions, "Healthy")!.lastTransitionTime,
      findCondition(conditions, "Healthy")!.lastTransitionTime,
    );
    const flipped = setCondition(
      second.object.status?.conditions,
      { type: "Healthy", status: "False", reason: "ConnectionRefused", message: "refused" },
      t0 + 120_000,
    );
    const third = await writeStatus(
      roster,
      serviceInstances,
      second.object,
      observed(si, { healthy: false, conditions: flipped }),
    );
    assert.notEqual(
      findCondition(third.object.status?.conditions, "Healthy")!.lastTransitionTime,
      findCondition(conditions, "Healthy")!.lastTransitionTime,
    );
    assert.equal(third.object.status?.observedGeneration, 1);
  });

  test("events are recorded with events.k8s.io/v1 and repeats aggregate into one Event's series", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "events");
    const client = kubeClient(kc);
    const cm = await client.request<ConfigMap>({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/configmaps`,
      body: { metadata: { name: "target" } },
    });
    cm.apiVersion = "v1";
    cm.kind = "ConfigMap";
    const rec = eventRecorder({
      client,
      reportingController: "roster.dev/operator",
      reportingInstance: "test-pod",
    });
    for (let i = 0; i < 20; i++)
      rec.event(cm, "Warning", "BecameUnhealthy", "probe tcp failed: connection refused");
    rec.event(cm, "Normal", "BecameHealthy", "probe tcp succeeded");
    await rec.close();
    const list = await eventually(
      async () => {
        const l = await client.request<{ items: Record<string, unknown>[] }>({
          method: "GET",
          path: `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
        });
        return l.items.length === 2 ? l.items : undefined;
      },
      { what: "two events" },
    );
    const unhealthy = list.find((e) => e.reason === "BecameUnhealthy")!;
    assert.equal((unhealthy.series as { count: number }).count, 20);
    assert.equal((unhealthy.regarding as { name: string }).name, "target");
    assert.equal(unhealthy.reportingController, "roster.dev/operator");
    // The same Event through core/v1, as `kubectl describe` reads it.
    const core = await client.request<{
      items: { reason: string; count?: number; involvedObject: { name: string } }[];
    }>({
      method: "GET",
      path: `/api/v1/namespaces/${ns}/events`,
    });
    assert.equal(core.items.find((e) => e.reason === "BecameUnhealthy")?.involvedObject.name, "target");
  });
});
