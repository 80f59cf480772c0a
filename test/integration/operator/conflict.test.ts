// A Service Roster does not manage is in the way: Roster never touches it,
// publishes nothing for the service, and reports Conflict on the policy and
// on the instances. Once the Service is gone, Roster publishes. Roster's
// Service cache holds its own Services only; the one in the way is found by
// a GET of its name (src/operator/unmanaged.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  clients,
  condition,
  createInstance,
  createPolicy,
  getConfigMap,
  getInstance,
  getPolicy,
  getService,
  policyWithCondition,
  readyAddresses,
  slicesOf,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("a conflicting unmanaged Service is left alone and reported", async (t) => {
  const ns = await testNamespace(t, "conflict");
  const targets = await httpTargets(t, 2);
  const { core } = await clients();
  const theirs = await core.createNamespacedService({
    namespace: ns,
    body: {
      metadata: { name: "web", labels: { app: "web" } },
      spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
    },
  });
  const op = await startTestOperator(t, { namespaces: [ns] });
  /** Services in the operator's cache (it caches Roster's own only: issue 13, memory per namespace). */
  const cachedServices = async () =>
    (await op.manager.metrics.informerObjects.get()).values.find((v) => v.labels.resource === "services")
      ?.value;
  await createPolicy(ns, "web", { service: "web" });
  for (const i of [0, 1]) await createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));

  const policy = await policyWithCondition(ns, "web", "Conflict");
  assert.equal(condition(policy, "Conflict")?.reason, "UnmanagedObject");
  assert.match(condition(policy, "Conflict")?.message ?? "", /Service web .*not managed by Roster/);
  assert.equal(condition(policy, "Ready")?.status, "False");
  assert.equal(condition(policy, "Ready")?.reason, "Conflict");
  assert.equal(await cachedServices(), 0, "their Service is found by a GET, never cached");
  for (const name of ["web-1", "web-2"]) {
    const si = await eventually(
      async () => {
        const s = await getInstance(ns, name);
        // Probed all the same: the verdict is there, only publication is blocked.
        return condition(s, "Conflict")?.status === "True" && s.status?.healthy === true ? s : undefined;
      },
      { timeoutMs: 5000, what: `a Conflict condition on ${name}` },
    );
    assert.equal(condition(si, "Ready")?.status, "False");
    assert.equal(condition(si, "Ready")?.reason, "Conflict");
  }
  // Two more probe rounds later: still nothing published, their Service untouched.
  const hits = targets[0]!.hits;
  await eventually(() => (targets[0]!.hits >= hits + 2 ? true : undefined), {
    timeoutMs: 2 * 1000 + MARGIN_MS,
    what: "two more probe rounds",
  });
  const after = await getService(ns, "web");
  assert.equal(after?.metadata?.resourceVersion, theirs.metadata?.resourceVersion, "never modified");
  assert.deepEqual(after?.metadata?.labels, { app: "web" });
  assert.deepEqual(await slicesOf(ns, "web"), []);
  assert.equal(await getConfigMap(ns, "web-roster"), undefined);

  // Their Service goes: Roster publishes and the conflict clears.
  await core.deleteNamespacedService({ namespace: ns, name: "web" });
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: MARGIN_MS,
    what: "two ready endpoints after the conflict",
  });
  const ours = await getService(ns, "web");
  await eventually(async () => ((await cachedServices()) === 1 ? true : undefined), {
    what: "Roster's own Service in its cache",
  });
  assert.equal(ours?.metadata?.labels?.["app.kubernetes.io/managed-by"], "roster.dev");
  assert.equal(ours?.spec?.selector, undefined, "selector-less");
  await eventually(
    async () => {
      const p = await getPolicy(ns, "web");
      const s = await getInstance(ns, "web-1");
      return condition(p, "Conflict")?.status === "False" &&
        condition(p, "Ready")?.status === "True" &&
        condition(s, "Conflict")?.status === "False" &&
        condition(s, "Ready")?.status === "True"
        ? true
        : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the conflict to clear on the policy and the instances" },
  );
});
