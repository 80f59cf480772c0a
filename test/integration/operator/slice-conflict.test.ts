// An EndpointSlice Roster does not manage holds the name Roster's first
// slice would get: the create meets AlreadyExists, Roster reads the object,
// never takes it over, and reports Conflict (UnmanagedObject) on the policy
// (docs/publish.md, "Names"); the rest of the publication (the Service, the
// ConfigMap) goes on. Once the slice is gone, Roster publishes it.
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
  getPolicy,
  policyWithCondition,
  publishedDocument,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("a create that collides with an unmanaged EndpointSlice is a Conflict, the slice untouched", async (t) => {
  const ns = await testNamespace(t, "slice-conflict");
  const targets = await httpTargets(t, 2);
  const { discovery } = await clients();
  const theirs = await discovery.createNamespacedEndpointSlice({
    namespace: ns,
    body: {
      metadata: { name: "web-ipv4-1", labels: { "kubernetes.io/service-name": "elsewhere" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["198.18.7.7"] }],
    },
  });
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  for (const i of [0, 1]) await createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));

  const policy = await policyWithCondition(ns, "web", "Conflict");
  assert.equal(condition(policy, "Conflict")?.reason, "UnmanagedObject");
  assert.match(condition(policy, "Conflict")?.message ?? "", /EndpointSlice web-ipv4-1 already exists/);
  assert.equal(condition(policy, "Ready")?.reason, "Conflict");
  // The ConfigMap is published all the same.
  await eventually(
    async () => ((await publishedDocument(ns, "web-roster"))?.endpoints.length === 2 ? true : undefined),
    {
      timeoutMs: MARGIN_MS,
      what: "the ConfigMap with both instances",
    },
  );
  const after = await discovery.readNamespacedEndpointSlice({ namespace: ns, name: "web-ipv4-1" });
  assert.equal(after.metadata?.resourceVersion, theirs.metadata?.resourceVersion, "never modified");

  await discovery.deleteNamespacedEndpointSlice({ namespace: ns, name: "web-ipv4-1" });
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: MARGIN_MS,
    what: "two ready endpoints once the name is free",
  });
  await eventually(
    async () => {
      const p = await getPolicy(ns, "web");
      return condition(p, "Conflict")?.status === "False" && condition(p, "Ready")?.status === "True"
        ? true
        : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the conflict to clear" },
  );
});
