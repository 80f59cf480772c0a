/** The publisher's pure parts: the publication plan and the policies' status. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PUBLISH, type DiscoveryPolicyStatus, Publish } from "../../../src/api/index.ts";
import type { WriteStep } from "../../../src/kube/index.ts";
import type { ConfigMapObject, ServiceObject, SliceObject } from "../../../src/operator/context.ts";
import {
  type PublicationInput,
  planConfigMapPublication,
  planServicePublication,
  planSlicePublication,
  planUnpublish,
} from "../../../src/operator/publish-plan.ts";
import { type PublicationOutcome, policyStatus } from "../../../src/operator/status.ts";
import { type InstanceInput, LABEL_MANAGED_BY, ROSTER_MANAGER } from "../../../src/publish/index.ts";
import { NS, policy, T0 } from "./fixtures.ts";

const MANAGED = { [LABEL_MANAGED_BY]: ROSTER_MANAGER };

function inst(name: string, address: string, verdict: InstanceInput["verdict"] = "Healthy"): InstanceInput {
  return { name, uid: `u-${name}`, addresses: [address], ports: [{ name: "http", port: 8080 }], verdict };
}

function input(over: Partial<PublicationInput> = {}): PublicationInput {
  const instances = over.instances ?? [inst("a", "198.18.0.1"), inst("b", "198.18.0.2")];
  return {
    namespace: NS,
    service: "web",
    instances,
    servicePorts: instances.map((i) => ({ name: i.name, ports: i.ports })),
    publish: DEFAULT_PUBLISH,
    loadBalancing: { strategy: "RoundRobin" },
    existing: undefined,
    slices: [],
    configMaps: [],
    configMap: undefined,
    ...over,
  };
}

const owner = { metadata: { name: "web", namespace: NS, uid: "svc-uid" } } as ServiceObject;
const ops = (steps: readonly WriteStep[]) =>
  steps.map((s) => `${s.op} ${s.type.kind} ${s.op === "delete" ? s.name : s.body.metadata.name}`);

describe("publication plan", () => {
  it("upserts the Service first, then creates slices and the ConfigMap owned by it", () => {
    const i = input();
    const plan = planServicePublication(i);
    assert.deepEqual(ops(plan.steps), ["upsert Service web"]);
    assert.equal(plan.desired.counts.ready, 2);
    const slices = planSlicePublication(i, plan.desired, owner);
    assert.deepEqual(ops(slices.steps), ["create EndpointSlice web-ipv4-1"]);
    const body = (slices.steps[0] as { body: unknown } as { body: SliceObject }).body;
    assert.equal(body.metadata.ownerReferences?.[0]?.uid, "svc-uid");
    const cm = planConfigMapPublication(i, plan.desired, owner);
    assert.deepEqual(ops(cm.steps), ["create ConfigMap web-roster"]);
    assert.equal(cm.revision, 1);
  });

  it("without an owner Service (or with slices off) the managed slices are deleted", () => {
    const slice = {
      metadata: { name: "web-ipv4-1", namespace: NS, uid: "s1", labels: MANAGED },
    } as unknown as SliceObject;
    const i = input({ slices: [slice] });
    const { desired } = planServicePublication(i);
    assert.deepEqual(ops(planSlicePublication(i, desired, undefined).steps), [
      "delete EndpointSlice web-ipv4-1",
    ]);
    const off = input({ slices: [slice], publish: Publish.parse({ endpointSlices: false }) });
    assert.deepEqual(ops(planSlicePublication(off, desired, owner).steps), [
      "delete EndpointSlice web-ipv4-1",
    ]);
  });

  it("an unchanged ConfigMap is not written; a renamed one's predecessor is deleted; disabled deletes it", () => {
    const i = input();
    const { desired } = planServicePublication(i);
    const first = planConfigMapPublication(i, desired, owner);
    const written = (first.steps[0] as { body: ConfigMapObject }).body;
    const current = { ...written, metadata: { ...written.metadata, uid: "cm1", resourceVersion: "7" } };
    assert.deepEqual(planConfigMapPublication(input({ configMap: current }), desired, owner).steps, []);
    const renamed = input({
      configMaps: [current],
      publish: Publish.parse({ configMap: { name: "other" } }),
    });
    assert.deepEqual(ops(planConfigMapPublication(renamed, desired, owner).steps), [
      "create ConfigMap other",
      "delete ConfigMap web-roster",
    ]);
    const disabled = input({ configMap: current, publish: Publish.parse({ configMap: { enabled: false } }) });
    assert.deepEqual(ops(planConfigMapPublication(disabled, desired, owner).steps), [
      "delete ConfigMap web-roster",
    ]);
  });

  it("unpublishing deletes the managed Service and everything listed, never an unmanaged Service", () => {
    const slice = { metadata: { name: "web-ipv4-1", uid: "s1" } } as unknown as SliceObject;
    const cm = { metadata: { name: "web-roster", uid: "c1" } } as ConfigMapObject;
    const managed = { metadata: { name: "web", uid: "v1", labels: MANAGED } } as ServiceObject;
    assert.deepEqual(ops(planUnpublish(NS, managed, [slice], [cm])), [
      "delete Service web",
      "delete EndpointSlice web-ipv4-1",
      "delete ConfigMap web-roster",
    ]);
    assert.deepEqual(ops(planUnpublish(NS, owner, [], [])), []);
  });
});

describe("policyStatus", () => {
  const counts = { total: 4, ready: 3, healthy: 3, draining: 1 };
  const status = (outcome: PublicationOutcome, previous?: DiscoveryPolicyStatus, winner?: string) =>
    policyStatus({ policy: { ...policy("p"), status: previous }, winner, outcome, now: T0 });
  const cond = (s: DiscoveryPolicyStatus, type: string) => {
    const c = s.conditions?.find((x) => x.type === type);
    return c && [c.status, c.reason];
  };

  it("published: Ready with the counts, no event while panic does not change", () => {
    const { status: s, event } = status({ desired: { panic: false, counts }, revision: 3 });
    assert.deepEqual(cond(s, "Ready"), ["True", "Published"]);
    assert.equal(
      s.conditions?.find((c) => c.type === "Ready")?.message,
      "3 of 4 instances published as ready",
    );
    assert.deepEqual(
      [s.totalInstances, s.healthyInstances, s.drainingInstances, s.publishedRevision, s.panic],
      [4, 3, 1, 3, false],
    );
    assert.equal(cond(s, "Panic"), undefined);
    assert.equal(event, undefined);
    assert.equal(s.observedGeneration, 1);
  });

  it("panic entered and left: the condition and one event each way", () => {
    const entered = status({ desired: { panic: true, counts: { ...counts, healthy: 1 } } });
    assert.deepEqual(cond(entered.status, "Panic"), ["True", "BelowPanicThreshold"]);
    assert.deepEqual([entered.event?.type, entered.event?.reason], ["Warning", "PanicEntered"]);
    const left = status({ desired: { panic: false, counts } }, entered.status);
    assert.deepEqual(cond(left.status, "Panic"), ["False", "AboveThreshold"]);
    assert.deepEqual([left.event?.type, left.event?.reason], ["Normal", "PanicLeft"]);
  });

  it("a duplicate policy is not Ready and says which policy governs", () => {
    const { status: s } = status({ desired: { panic: false, counts } }, undefined, "first");
    assert.deepEqual(cond(s, "Conflict"), ["True", "DuplicatePolicy"]);
    assert.deepEqual(cond(s, "Ready"), ["False", "DuplicatePolicy"]);
    assert.equal(s.totalInstances, undefined);
  });

  it("a conflict, then its resolution clears the Conflict condition", () => {
    const c = status({ conflict: "Service web exists", conflictReason: "ConfigMapClaimed" });
    assert.deepEqual(cond(c.status, "Conflict"), ["True", "ConfigMapClaimed"]);
    assert.deepEqual(cond(c.status, "Ready"), ["False", "Conflict"]);
    const resolved = status({ desired: { panic: false, counts } }, c.status);
    assert.deepEqual(cond(resolved.status, "Conflict"), ["False", "NoConflict"]);
  });

  it("a failure keeps the counts last published", () => {
    const published = status({ desired: { panic: false, counts }, revision: 9 }).status;
    const { status: s } = status({ failed: "boom" }, published);
    assert.deepEqual(cond(s, "Ready"), ["False", "PublishFailed"]);
    assert.deepEqual([s.totalInstances, s.publishedRevision], [4, 9]);
  });

  it("an invalid spec says which fields", () => {
    const { status: s } = policyStatus({
      policy: policy("p"),
      invalid: [{ path: "spec.x", message: "bad" }],
      outcome: {},
      now: T0,
    });
    assert.deepEqual(cond(s, "Ready"), ["False", "InvalidSpec"]);
    assert.equal(s.conditions?.find((c) => c.type === "Ready")?.message, "spec.x: bad");
  });
});
