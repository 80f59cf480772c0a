// Changing the policy's load-balancing strategy is a ConfigMap-only change:
// a new revision with the new strategy (and its consistent-hash options),
// while the EndpointSlices and the Service are not rewritten.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getPolicy,
  getService,
  patchPolicySpec,
  publishedDocument,
  readyAddresses,
  sliceVersions,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("a strategy change updates the ConfigMap only", async (t) => {
  const ns = await testNamespace(t, "strategy");
  const targets = await httpTargets(t, 2);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web", loadBalancing: { strategy: "RoundRobin" } });
  for (const i of [0, 1]) await createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: 15_000,
    what: "two ready endpoints",
  });
  const before = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      const p = await getPolicy(ns, "web");
      return d?.endpoints.every((e) => e.ready) && p.status?.publishedRevision === d.revision ? d : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the policy status to show the published revision" },
  );
  assert.equal(before.loadBalancing.strategy, "RoundRobin");
  assert.equal(before.loadBalancing.consistentHash, undefined);
  const slices = await sliceVersions(ns, "web");
  const service = (await getService(ns, "web"))?.metadata?.resourceVersion;

  await patchPolicySpec(ns, "web", {
    loadBalancing: {
      strategy: "ConsistentHash",
      consistentHash: { key: { source: "Header", name: "x-user-id" }, algorithm: "Maglev" },
    },
  });
  const after = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      return d?.loadBalancing.strategy === "ConsistentHash" ? d : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the ConfigMap to publish ConsistentHash" },
  );
  assert.equal(after.revision, before.revision + 1);
  assert.deepEqual(after.loadBalancing.consistentHash, {
    algorithm: "Maglev",
    tableSize: 65537,
    key: { source: "Header", name: "x-user-id" },
  });
  assert.deepEqual(after.endpoints, before.endpoints);
  const policy = await eventually(
    async () => {
      const p = await getPolicy(ns, "web");
      return p.status?.observedGeneration === p.metadata.generation &&
        p.status?.publishedRevision === after.revision
        ? p
        : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the policy status to observe the change" },
  );
  assert.equal(policy.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
  assert.deepEqual(await sliceVersions(ns, "web"), slices, "no slice was rewritten");
  assert.equal((await getService(ns, "web"))?.metadata?.resourceVersion, service, "nor the Service");
});
