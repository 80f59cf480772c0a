import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Applier, ApplyOptions } from "../../../src/kube/apply.ts";
import { applyBody } from "../../../src/kube/apply.ts";
import type { KubeObject, ResourceType } from "../../../src/kube/object.ts";
import { observed, writeStatus } from "../../../src/kube/status.ts";

const siType: ResourceType = {
  group: "roster.dev",
  version: "v1alpha1",
  plural: "serviceinstances",
  kind: "ServiceInstance",
  namespaced: true,
};

function countingApplier() {
  const calls: { obj: KubeObject; options?: ApplyOptions }[] = [];
  const applier: Applier = {
    fieldManager: "roster",
    async apply<T extends KubeObject>(_t: ResourceType, obj: T, options?: ApplyOptions) {
      calls.push({ obj, options });
      return obj;
    },
    async delete() {
      return true;
    },
  };
  return { applier, calls };
}

interface Si extends KubeObject {
  spec?: unknown;
  status?: {
    healthy?: boolean;
    observedGeneration?: number;
    conditions?: { type: string; status: string }[];
  };
}

const current: Si = {
  apiVersion: "roster.dev/v1alpha1",
  kind: "ServiceInstance",
  metadata: { name: "a", namespace: "ns", generation: 3, resourceVersion: "9" },
  spec: { service: "web" },
  status: { healthy: true, observedGeneration: 3, conditions: [{ type: "Ready", status: "True" }] },
};

describe("status writes", () => {
  test("an unchanged status makes no API call (key order and undefined fields do not count)", async () => {
    const { applier, calls } = countingApplier();
    const r = await writeStatus(applier, siType, current, {
      conditions: [{ status: "True", type: "Ready" }],
      observedGeneration: 3,
      healthy: true,
      lastProbe: undefined,
    } as NonNullable<Si["status"]>);
    assert.equal(r.written, false);
    assert.equal(calls.length, 0);
  });

  test("a changed status is applied to /status with force, carrying only the status", async () => {
    const { applier, calls } = countingApplier();
    const r = await writeStatus(applier, siType, current, {
      ...current.status,
      healthy: false,
    } as NonNullable<Si["status"]>);
    assert.equal(r.written, true);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.options, { subresource: "status", force: true, signal: undefined });
    assert.deepEqual(Object.keys(calls[0]!.obj).sort(), ["apiVersion", "kind", "metadata", "status"]);
    assert.deepEqual(calls[0]!.obj.metadata, { name: "a", namespace: "ns" });
  });

  test("the object returned by a write carries no managedFields (callers keep it a while)", async () => {
    const applier: Applier = {
      fieldManager: "roster",
      async apply<T extends KubeObject>(_t: ResourceType, obj: T) {
        return { ...obj, metadata: { ...obj.metadata, resourceVersion: "10", managedFields: [{}] } };
      },
      async delete() {
        return true;
      },
    };
    const r = await writeStatus(applier, siType, current, { healthy: false } as NonNullable<Si["status"]>);
    assert.deepEqual(r.object.metadata, { name: "a", namespace: "ns", resourceVersion: "10" });
    assert.deepEqual(r.object.status, { healthy: false });
  });

  test("observed() stamps observedGeneration from the object", () => {
    assert.deepEqual(observed(current, { healthy: true }), { healthy: true, observedGeneration: 3 });
  });

  test("apply bodies carry no server-owned fields and no status", () => {
    const body = applyBody(siType, {
      ...current,
      metadata: {
        ...current.metadata,
        uid: "u",
        managedFields: [{}],
        creationTimestamp: "t",
        labels: { a: "b" },
      },
    });
    assert.deepEqual(body.metadata, { name: "a", namespace: "ns", labels: { a: "b" } });
    assert.equal((body as Si).status, undefined);
    assert.equal(
      applyBody(siType, current, { precondition: true }).metadata.resourceVersion,
      "9",
      "resourceVersion kept as a precondition when asked",
    );
  });
});
