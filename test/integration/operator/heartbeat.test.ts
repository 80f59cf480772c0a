// Heartbeat probes through the operator's Lease cache, which keeps only a
// Lease's identity, renewTime, acquireTime and leaseDurationSeconds (the
// cache is cluster-wide and cannot be filtered by label, since a probe may
// name any Lease): a renewed Lease makes the instance healthy and published,
// an expired one unhealthy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CoordinationV1Api, V1MicroTime } from "@kubernetes/client-node";
import { heartbeatLeaseView } from "../../../src/operator/operator.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstance, getInstance, readyAddresses } from "../../support/roster.ts";

test("heartbeat instances follow their Lease through the slimmed Lease cache", async (t) => {
  const ns = await testNamespace(t, "heartbeat");
  const { kc } = await testCluster();
  const leases = kc.makeApiClient(CoordinationV1Api);
  await startTestOperator(t, { namespaces: [ns] });
  await leases.createNamespacedLease({
    namespace: ns,
    body: {
      metadata: { name: "worker-1", labels: { app: "worker" }, annotations: { note: "x".repeat(1000) } },
      spec: { holderIdentity: "worker-1", renewTime: new V1MicroTime(Date.now()), leaseDurationSeconds: 60 },
    },
  });
  await createInstance(ns, "worker-1", {
    service: "workers",
    address: "192.0.2.9",
    ports: [{ name: "metrics", port: 9100 }],
    healthCheck: {
      probes: [{ type: "heartbeat" }],
      interval: "1s",
      timeout: "500ms",
      failureThreshold: 1,
      successThreshold: 1,
    },
  });
  await eventually(
    async () => ((await readyAddresses(ns, "workers")).join() === "192.0.2.9" ? true : undefined),
    {
      timeoutMs: 15_000,
      what: "the renewing worker published",
    },
  );
  // The Lease expires (renewed long ago): unhealthy, unpublished.
  await leases.patchNamespacedLease({
    namespace: ns,
    name: "worker-1",
    body: [
      {
        op: "replace",
        path: "/spec/renewTime",
        value: new V1MicroTime(Date.now() - 3_600_000).toISOString(),
      },
    ],
  });
  await eventually(
    async () => ((await getInstance(ns, "worker-1")).status?.healthy === false ? true : undefined),
    {
      timeoutMs: MARGIN_MS * 3,
      what: "the expired worker unhealthy",
    },
  );
  assert.deepEqual(await readyAddresses(ns, "workers"), []);
});

test("the Lease cache keeps only what heartbeat probes read", () => {
  const view = heartbeatLeaseView({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: "w",
      namespace: "n",
      uid: "u",
      resourceVersion: "7",
      labels: { a: "b" },
      annotations: { c: "d" },
    },
    spec: {
      renewTime: "2030-01-01T00:00:00.000000Z",
      leaseDurationSeconds: 10,
      holderIdentity: "big",
    } as never,
  });
  assert.deepEqual(view, {
    metadata: { name: "w", namespace: "n", uid: "u", resourceVersion: "7" },
    spec: { renewTime: "2030-01-01T00:00:00.000000Z", leaseDurationSeconds: 10 },
  });
});
