// Hand edits of what Roster publishes are put back (level-triggered
// reconciliation of its own objects): an endpoint removed from a managed
// EndpointSlice, a deleted slice, and a ConfigMap whose data was replaced.
// A Service of the same name that Roster does not manage is never modified
// (its resourceVersion does not move) and nothing is published next to it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { eventually, testNamespace } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import {
  clients,
  condition,
  createInstance,
  createPolicy,
  getConfigMap,
  getInstance,
  getPolicy,
  getService,
  publishedDocument,
  readyAddresses,
  slicesOf,
} from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";
import { sleep } from "./support.ts";

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const all = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];

test("hand edits of managed slices and ConfigMaps are reverted", async (t) => {
  const ns = await testNamespace(t, "edits");
  const targets = await httpTargets(t, 3);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of targets.entries())
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  const restored = async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined);
  await eventually(restored, { timeoutMs: 20_000, what: "three ready endpoints" });
  const { discovery, core } = await clients();

  // 1. Remove an endpoint from the managed slice.
  const [slice] = await slicesOf(ns, "web");
  const name = slice!.metadata!.name!;
  await discovery.patchNamespacedEndpointSlice(
    { namespace: ns, name, body: { endpoints: slice!.endpoints!.slice(0, 1) } },
    mergePatch,
  );
  await eventually(restored, { timeoutMs: 5000, what: "the removed endpoints back" });

  // 2. Delete the slice.
  await discovery.deleteNamespacedEndpointSlice({ namespace: ns, name });
  await eventually(restored, { timeoutMs: 5000, what: "the deleted slice recreated" });

  // 3. Replace the ConfigMap's data.
  const before = await publishedDocument(ns, "web-roster");
  assert.equal(before?.endpoints.length, 3);
  await core.patchNamespacedConfigMap(
    { namespace: ns, name: "web-roster", body: { data: { "endpoints.json": '{"hacked":true}' } } },
    mergePatch,
  );
  const after = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster").catch(() => undefined);
      return d?.endpoints.length === 3 ? d : undefined;
    },
    { timeoutMs: 5000, what: "the ConfigMap's data restored" },
  );
  assert.deepEqual(
    after.endpoints.map((e) => [e.instance, e.ready]),
    before!.endpoints.map((e) => [e.instance, e.ready]),
  );
  // 4. Informational: a key added by someone else. Server-side apply only owns
  // Roster's own fields, so a foreign key is left in place (the client reads endpoints.json only).
  await core.patchNamespacedConfigMap(
    { namespace: ns, name: "web-roster", body: { data: { stray: "x" } } },
    mergePatch,
  );
  await sleep(2000);
  const stray = (await getConfigMap(ns, "web-roster"))?.data?.stray;
  t.diagnostic(`a foreign ConfigMap key is ${stray === undefined ? "removed" : "kept"}`);
  assert.equal((await publishedDocument(ns, "web-roster"))?.endpoints.length, 3);
});

test("a Service of the same name that Roster does not manage is never touched", async (t) => {
  const ns = await testNamespace(t, "unmanaged");
  const [target] = await httpTargets(t, 1);
  const { core } = await clients();
  await core.createNamespacedService({
    namespace: ns,
    body: {
      metadata: { name: "web", labels: { team: "them" } },
      spec: { selector: { app: "theirs" }, ports: [{ name: "http", port: 80 }] },
    },
  });
  const rv = (await getService(ns, "web"))!.metadata!.resourceVersion;
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  await createInstance(ns, "web-1", webInstance(target!, 0));
  const policy = await eventually(
    async () => {
      const p = await getPolicy(ns, "web");
      return condition(p, "Conflict")?.status === "True" ? p : undefined;
    },
    { timeoutMs: 15_000, what: "Conflict on the policy" },
  );
  assert.match(condition(policy, "Conflict")?.message ?? "", /not managed by Roster/);
  await eventually(
    async () => ((await getInstance(ns, "web-1")).status?.healthy === true ? true : undefined),
    { timeoutMs: 10_000, what: "web-1 probed healthy" },
  );
  await sleep(3000); // several probe rounds and reconciles
  const svc = await getService(ns, "web");
  assert.equal(svc?.metadata?.resourceVersion, rv, "the unmanaged Service was never written");
  assert.deepEqual(svc?.spec?.selector, { app: "theirs" });
  assert.equal(svc?.metadata?.ownerReferences, undefined);
  const managed = (await slicesOf(ns, "web")).filter(
    (s) => s.metadata?.labels?.["endpointslice.kubernetes.io/managed-by"] === "roster.dev",
  );
  assert.equal(managed.length, 0, "no Roster slices next to an unmanaged Service");
  assert.equal(await getConfigMap(ns, "web-roster"), undefined, "no ConfigMap either");
});
