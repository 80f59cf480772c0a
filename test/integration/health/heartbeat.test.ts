// Heartbeat probes with the lease reader backed by real reads of a
// coordination.k8s.io/v1 Lease in the sandbox.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException, CoordinationV1Api, V1MicroTime } from "@kubernetes/client-node";
import { createProbeEngine } from "../../../src/health/engine.ts";
import type { LeaseReader, Transition } from "../../../src/health/types.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";

test("heartbeat: healthy while the Lease is renewed, LeaseExpired when it is not, LeaseNotFound when deleted", async (t) => {
  const { kc } = await testCluster();
  const namespace = await testNamespace(t, "heartbeat");
  const leases = kc.makeApiClient(CoordinationV1Api);
  const name = "instance-a";
  const renew = () =>
    leases.patchNamespacedLease({
      namespace,
      name,
      body: [{ op: "replace", path: "/spec/renewTime", value: new V1MicroTime(Date.now()).toISOString() }],
    });
  await leases.createNamespacedLease({
    namespace,
    body: {
      metadata: { name },
      spec: { holderIdentity: name, leaseDurationSeconds: 2, renewTime: new V1MicroTime(Date.now()) },
    },
  });

  // What the operator's informer cache provides, done here with direct reads.
  let reads = 0;
  const readLease: LeaseReader = async (ns, n) => {
    reads++;
    try {
      const lease = await leases.readNamespacedLease({ namespace: ns, name: n });
      const renewTime = lease.spec?.renewTime;
      const seconds = lease.spec?.leaseDurationSeconds;
      if (!renewTime || seconds === undefined) return undefined;
      return { renewTimeMs: new Date(renewTime).getTime(), leaseDurationMs: seconds * 1000 };
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };
  const transitions: Transition[] = [];
  const engine = createProbeEngine({ leaseReader: readLease, onTransition: (x) => transitions.push(x) });
  t.after(() => engine.close());
  engine.set({
    id: `${namespace}/${name}`,
    // A heartbeat target still has an address to publish; it is never connected to.
    host: "10.0.0.10",
    check: {
      probes: [{ type: "heartbeat", lease: { namespace, name } }],
      intervalMs: 200,
      timeoutMs: 1000,
      failureThreshold: 1,
      successThreshold: 1,
    },
  });
  const verdict = () => engine.summary(`${namespace}/${name}`)!;
  await eventually(() => (verdict().verdict === "Healthy" ? true : undefined), { what: "healthy" });

  // Keep renewing for a while: stays healthy past the lease duration.
  for (let i = 0; i < 6; i++) {
    await renew();
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(verdict().verdict, "Healthy");

  // Stop renewing: expires after the 2 s lease duration.
  await eventually(() => (verdict().verdict === "Unhealthy" ? true : undefined), {
    what: "expired",
    timeoutMs: 10_000,
  });
  assert.equal(verdict().reason, "LeaseExpired");
  assert.match(verdict().message, new RegExp(`Lease ${namespace}/${name} expired`));

  await renew();
  await eventually(() => (verdict().verdict === "Healthy" ? true : undefined), { what: "healthy again" });

  await leases.deleteNamespacedLease({ namespace, name });
  await eventually(() => (verdict().reason === "LeaseNotFound" ? true : undefined), {
    what: "lease not found",
  });
  assert.equal(verdict().verdict, "Unhealthy");
  assert.ok(reads > 10);
  assert.deepEqual(
    transitions.filter((x) => x.address === undefined).map((x) => `${x.from}->${x.to}:${x.reason}`),
    [
      "Unknown->Healthy:ProbeSucceeded",
      "Healthy->Unhealthy:LeaseExpired",
      "Unhealthy->Healthy:ProbeSucceeded",
      "Healthy->Unhealthy:LeaseNotFound",
    ],
  );
});
