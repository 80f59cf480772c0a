// Two services' policies name the same ConfigMap (publish.configMap.name):
// the older policy keeps it, the other reports Conflict (on the policy and
// its instances) and Roster writes nothing for it, so the ConfigMap never
// alternates between the two documents. When the older policy goes, the
// other one takes the ConfigMap over.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createPolicy,
  deletePolicy,
  getConfigMap,
  getInstance,
  getPolicy,
  publishedDocument,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("two policies naming one ConfigMap: the older keeps it, the other gets Conflict and writes nothing", async (t) => {
  const ns = await testNamespace(t, "cm-claim");
  const targets = await httpTargets(t, 2);
  await startTestOperator(t, { namespaces: [ns] });
  const shared = { configMap: { name: "shared" } };
  // Same creation second or not, "alpha" ranks first (creationTimestamp, then name).
  await createPolicy(ns, "alpha", { service: "alpha", publish: shared });
  await createPolicy(ns, "beta", { service: "beta", publish: shared });
  await createInstance(ns, "alpha-1", webInstance(targets[0]!, 0, { service: "alpha" }));
  await createInstance(ns, "beta-1", webInstance(targets[1]!, 1, { service: "beta" }));

  const beta = await eventually(
    async () => {
      const p = await getPolicy(ns, "beta");
      return condition(p, "Conflict")?.status === "True" ? p : undefined;
    },
    { timeoutMs: 15_000, what: "Conflict on policy beta" },
  );
  assert.equal(condition(beta, "Conflict")?.reason, "ConfigMapClaimed");
  assert.match(
    condition(beta, "Conflict")?.message ?? "",
    /ConfigMap shared is published by DiscoveryPolicy alpha/,
  );
  assert.equal(condition(beta, "Ready")?.status, "False");
  const betaInstance = await eventually(
    async () => {
      const s = await getInstance(ns, "beta-1");
      return condition(s, "Conflict")?.status === "True" ? s : undefined;
    },
    { timeoutMs: MARGIN_MS * 2, what: "Conflict on instance beta-1" },
  );
  assert.equal(condition(betaInstance, "Ready")?.status, "False");
  assert.equal(condition(betaInstance, "Ready")?.reason, "Conflict");

  const alphaDoc = await eventually(
    async () => {
      const d = await publishedDocument(ns, "shared");
      return d?.endpoints.some((e) => e.state === "Ready") ? d : undefined;
    },
    { timeoutMs: MARGIN_MS * 2, what: "alpha's ready instance in ConfigMap shared" },
  );
  assert.equal(alphaDoc.service, "alpha");
  assert.equal(condition(await getPolicy(ns, "alpha"), "Ready")?.status, "True");
  assert.deepEqual(await readyAddresses(ns, "beta"), [], "nothing published for beta");

  // Three more probe rounds of both targets: the ConfigMap is not written again.
  const before = (await getConfigMap(ns, "shared"))?.metadata?.resourceVersion;
  const hits = targets.map((x) => x.hits);
  await eventually(() => (targets.every((x, i) => x.hits >= hits[i]! + 3) ? true : undefined), {
    timeoutMs: 3 * 1000 + MARGIN_MS,
    what: "three more probe rounds",
  });
  assert.equal((await getConfigMap(ns, "shared"))?.metadata?.resourceVersion, before, "no writes");

  // The older policy goes: beta takes the ConfigMap over and its conflict clears.
  await deletePolicy(ns, "alpha");
  await eventually(
    async () => {
      const d = await publishedDocument(ns, "shared");
      return d?.service === "beta" && d.endpoints.some((e) => e.state === "Ready") ? true : undefined;
    },
    { timeoutMs: MARGIN_MS * 2, what: "beta's document in ConfigMap shared" },
  );
  await eventually(
    async () => {
      const p = await getPolicy(ns, "beta");
      const s = await getInstance(ns, "beta-1");
      return condition(p, "Conflict")?.status === "False" &&
        condition(p, "Ready")?.status === "True" &&
        condition(s, "Conflict")?.status === "False"
        ? true
        : undefined;
    },
    { timeoutMs: MARGIN_MS * 2, what: "the conflict to clear on beta and beta-1" },
  );
});
