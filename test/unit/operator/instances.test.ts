/**
 * The ServiceInstance status writer (instanceReconciler in
 * src/operator/instances.ts) against fakes: in-memory caches, an applier that
 * records every write and answers like the API server, and the instance view
 * over a runtime store the test fills in place of the probe-target controller.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Condition, ConditionTypes } from "../../../src/api/index.ts";
import { DefaultPolicy } from "../../../src/config/schema.ts";
import { destinationPolicy } from "../../../src/health/policy.ts";
import type {
  Applier,
  ApplyOptions,
  KubeObject,
  ReconcileContext,
  ResourceType,
} from "../../../src/kube/index.ts";
import { silentLogger } from "../../../src/kube/index.ts";
import {
  byService,
  type ConfigMapObject,
  type InstanceObject,
  type OperatorContext,
  type PolicyObject,
  type ServiceObject,
} from "../../../src/operator/context.ts";
import { serviceKey } from "../../../src/operator/effective.ts";
import { instanceView } from "../../../src/operator/instance-view.ts";
import { instanceReconciler } from "../../../src/operator/instances.ts";
import { publicationPolicy } from "../../../src/operator/publication.ts";
import { runtimeStore } from "../../../src/operator/runtime.ts";
import type { InstanceVerdict } from "../../../src/operator/verdicts.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { fakeInformer } from "../kube/fakes.ts";
import { instance, NS, T0, verdict } from "./fixtures.ts";

interface Write {
  type: ResourceType;
  body: KubeObject & { status?: unknown };
  options: ApplyOptions | undefined;
}

function setup() {
  const instances = fakeInformer<InstanceObject>();
  const policies = fakeInformer<PolicyObject>();
  const svc = (o: { metadata: { namespace?: string }; spec?: { service?: string } }) =>
    o.spec?.service ? [serviceKey(o.metadata.namespace!, o.spec.service)] : [];
  instances.addIndex(byService, svc);
  policies.addIndex(byService, svc);
  const writes: Write[] = [];
  const deletes: string[] = [];
  let rv = 100;
  // Answers an apply like the API server: the stored object with the applied status and a new resourceVersion.
  const applier: Applier = {
    fieldManager: "roster",
    async apply<T extends KubeObject>(type: ResourceType, obj: T, options?: ApplyOptions): Promise<T> {
      writes.push({ type, body: obj, options });
      const current = instances.get(`${obj.metadata.namespace}/${obj.metadata.name}`);
      assert.ok(current, "writes only go to existing instances");
      return {
        ...current,
        status: (obj as { status?: unknown }).status,
        metadata: { ...current.metadata, resourceVersion: String(++rv) },
      } as unknown as T;
    },
    async delete(_type, namespace, name) {
      deletes.push(`${namespace}/${name}`);
      return true;
    },
  };
  const events: { reason: string; type: string }[] = [];
  const taken = new Set<string>();
  const verdicts = new Map<string, InstanceVerdict>();
  const publication = publicationPolicy(destinationPolicy(), { clusterNetworks: [], allow: {} });
  const ctx = {
    applier,
    clock: fakeClock(T0),
    logger: silentLogger(),
    events: { event: (_o: unknown, type: string, reason: string) => events.push({ type, reason }) },
    shards: { owns: () => true },
    instances,
    policies,
    services: fakeInformer<ServiceObject>(),
    configMaps: fakeInformer<ConfigMapObject>(),
    unmanaged: { isUnmanaged: async (key: string) => taken.has(key) },
    verdicts: { get: (k: string) => verdicts.get(k), subscribe: () => () => {} },
    settings: () => ({ defaults: DefaultPolicy.parse({}), probeSecrets: false }),
    publication: () => publication,
  } as unknown as OperatorContext;
  const runtimes = runtimeStore();
  const { reconcile: run } = instanceReconciler(ctx, instanceView(ctx, runtimes));
  const reconcile = (key: string) => {
    const [namespace, name] = key.split("/") as [string, string];
    const rc: ReconcileContext = {
      key,
      namespace,
      name,
      reconcileId: "test",
      log: silentLogger(),
      signal: new AbortController().signal,
    };
    return run(key, rc);
  };
  /** What the watch would deliver after the last write: the written object, into the cache. */
  const deliver = async (i: number) => {
    const w = writes[i];
    assert.ok(w);
    const current = instances.get(`${w.body.metadata.namespace}/${w.body.metadata.name}`)!;
    instances.upsert({
      ...current,
      status: w.body.status as InstanceObject["status"],
      metadata: { ...current.metadata, resourceVersion: String(101 + i) },
    });
  };
  return { instances, runtimes, verdicts, writes, deletes, events, taken, reconcile, deliver };
}

const KEY = `${NS}/web-1`;
const si = (generation = 3) =>
  ({
    ...instance({ address: "198.18.0.1" }, { generation }),
    metadata: { name: "web-1", namespace: NS, generation, uid: "u1", resourceVersion: "7" },
  }) as InstanceObject;
const healthy = () =>
  verdict("Healthy", {
    addresses: [{ address: "198.18.0.1", verdict: "Healthy" }] as InstanceVerdict["addresses"],
  });
const cond = (w: Write | undefined, type: string) =>
  ((w?.body.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find(
    (c) => c.type === type,
  );

describe("instanceReconciler", () => {
  it("writes the status through the status subresource, with observedGeneration on Ready and Healthy", async () => {
    const t = setup();
    t.instances.upsert(si(3));
    t.runtimes.set(KEY, { generation: 3 });
    t.verdicts.set(KEY, healthy());
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 1);
    const [w] = t.writes;
    assert.equal(w?.type.kind, "ServiceInstance");
    assert.equal(w?.options?.subresource, "status", "status only via /status");
    assert.equal(w?.options?.force, true, "server-side apply owns the fields");
    assert.deepEqual(Object.keys(w?.body ?? {}).sort(), ["apiVersion", "kind", "metadata", "status"]);
    for (const type of [ConditionTypes.Ready, ConditionTypes.Healthy]) {
      const c = cond(w, type);
      assert.equal(c?.status, "True", type);
      assert.equal(c?.observedGeneration, 3, `${type} carries observedGeneration`);
    }
    const status = w?.body.status as { observedGeneration?: number; healthy?: boolean; addresses?: string[] };
    assert.equal(status.observedGeneration, 3);
    assert.equal(status.healthy, true);
    assert.deepEqual(status.addresses, ["198.18.0.1"]);
    assert.deepEqual(t.events, [{ type: "Normal", reason: "BecameHealthy" }]);
  });

  it("writes nothing when nothing changed: a second reconcile makes zero writes and no Event", async () => {
    const t = setup();
    t.instances.upsert(si());
    t.runtimes.set(KEY, { generation: 3 });
    t.verdicts.set(KEY, healthy());
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 1);
    // Before the watch shows the write (read-your-writes) and after it does.
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 1, "no write while the cache lags behind our own write");
    await t.deliver(0);
    await t.reconcile(KEY);
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 1, "no write once the cache shows it");
    assert.equal(t.events.length, 1);
    // A real change is written again.
    t.verdicts.set(KEY, verdict("Unhealthy"));
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 2);
    assert.equal(cond(t.writes[1], ConditionTypes.Healthy)?.status, "False");
    assert.deepEqual(t.events.at(-1), { type: "Warning", reason: "BecameUnhealthy" });
  });

  it("a blocker's reason becomes the Ready (and Healthy) reason, never Healthy=True", async () => {
    const t = setup();
    t.instances.upsert(si());
    t.runtimes.set(KEY, {
      generation: 3,
      blocker: { reason: "SecretNotFound", message: "Secret token not found" },
    });
    t.verdicts.set(KEY, healthy()); // a stale verdict does not count while blocked
    await t.reconcile(KEY);
    const ready = cond(t.writes[0], ConditionTypes.Ready);
    assert.deepEqual(
      [ready?.status, ready?.reason, ready?.message],
      ["False", "SecretNotFound", "Secret token not found"],
    );
    assert.equal(ready?.observedGeneration, 3);
    assert.deepEqual(
      [cond(t.writes[0], ConditionTypes.Healthy)?.status, cond(t.writes[0], ConditionTypes.Healthy)?.reason],
      ["False", "SecretNotFound"],
    );
    assert.deepEqual(
      (t.writes[0]?.body.status as { addresses?: string[] } | undefined)?.addresses,
      [],
      "a blocked instance publishes nothing",
    );
  });

  it("a Service name taken by a Service Roster does not manage gives Conflict", async () => {
    const t = setup();
    t.taken.add(serviceKey(NS, "web"));
    t.instances.upsert(si());
    t.runtimes.set(KEY, { generation: 3 });
    t.verdicts.set(KEY, healthy());
    await t.reconcile(KEY);
    const w = t.writes[0];
    assert.deepEqual(
      [cond(w, ConditionTypes.Conflict)?.status, cond(w, ConditionTypes.Conflict)?.reason],
      ["True", "Conflict"],
    );
    assert.deepEqual(
      [cond(w, ConditionTypes.Ready)?.status, cond(w, ConditionTypes.Ready)?.reason],
      ["False", "Conflict"],
    );
    assert.match(
      cond(w, ConditionTypes.Ready)?.message ?? "",
      /Service web exists and is not managed by Roster/,
    );
    // The Service goes away: the conflict is cleared (Conflict=False) and the instance is Ready.
    await t.deliver(0);
    t.taken.clear();
    await t.reconcile(KEY);
    const after = t.writes[1];
    assert.deepEqual(
      [cond(after, ConditionTypes.Conflict)?.status, cond(after, ConditionTypes.Conflict)?.reason],
      ["False", "NoConflict"],
    );
    assert.equal(cond(after, ConditionTypes.Ready)?.status, "True");
  });

  it("writes nothing until the probe-target controller caught up with the generation, nor for an instance it does not have", async () => {
    const t = setup();
    t.instances.upsert(si(4));
    await t.reconcile(KEY);
    t.runtimes.set(KEY, { generation: 3 });
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 0);
    t.runtimes.set(KEY, { generation: 4 });
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 1);
    assert.equal(cond(t.writes[0], ConditionTypes.Ready)?.observedGeneration, 4);
    t.instances.remove(KEY);
    await t.reconcile(KEY);
    assert.equal(t.writes.length, 1);
    assert.deepEqual(t.deletes, []);
  });
});
