// Nothing published outlives its reason: deleted instances leave the slices
// and the ConfigMap and are no longer probed; with the last instance and the
// policy gone, the Service, slices and ConfigMap go; deleting the namespace
// removes everything and stops the probes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  clients,
  createInstance,
  createPolicy,
  deleteInstance,
  deletePolicy,
  getConfigMap,
  getPolicy,
  getService,
  isNotFound,
  publishedDocument,
  readyAddresses,
  slicesOf,
} from "../../support/roster.ts";
import { type HttpTarget, httpTargets } from "../../support/targets.ts";

/** Resolves once `target` got no probe for two intervals and a margin (its probes stopped). */
async function probesStop(target: HttpTarget): Promise<void> {
  let last = target.hits;
  let since = Date.now();
  await eventually(
    () => {
      if (target.hits !== last) {
        last = target.hits;
        since = Date.now();
      }
      return Date.now() - since > 2 * INTERVAL_MS + 500 ? true : undefined;
    },
    { timeoutMs: 4 * INTERVAL_MS + MARGIN_MS, intervalMs: 100, what: `probes of ${target.host} to stop` },
  );
}

async function publishThree(t: Parameters<typeof testNamespace>[0], ns: string, targets: HttpTarget[]) {
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of targets.entries())
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 3 ? true : undefined), {
    timeoutMs: 15_000,
    what: "three ready endpoints",
  });
}

test("deleting instances and then the policy removes what was published", async (t) => {
  const ns = await testNamespace(t, "cleanup");
  const targets = await httpTargets(t, 3);
  await publishThree(t, ns, targets);

  await deleteInstance(ns, "web-3");
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.1,192.0.2.2" ? true : undefined),
    { timeoutMs: MARGIN_MS, what: "web-3 to leave the slices" },
  );
  await eventually(
    async () => {
      const doc = await publishedDocument(ns, "web-roster");
      return doc?.endpoints.map((e) => e.instance).join() === "web-1,web-2" ? true : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "web-3 to leave the ConfigMap" },
  );
  await eventually(
    async () => ((await getPolicy(ns, "web")).status?.totalInstances === 2 ? true : undefined),
    {
      timeoutMs: MARGIN_MS,
      what: "policy totalInstances 2",
    },
  );
  await probesStop(targets[2]!);

  // No instance left, the policy stays: nothing to route to, the Service stays.
  await deleteInstance(ns, "web-1");
  await deleteInstance(ns, "web-2");
  await eventually(async () => ((await slicesOf(ns, "web")).length === 0 ? true : undefined), {
    timeoutMs: MARGIN_MS,
    what: "the slices to go with the last instance",
  });
  assert.ok(await getService(ns, "web"), "the policy keeps the Service");
  assert.deepEqual((await publishedDocument(ns, "web-roster"))?.endpoints, []);

  await deletePolicy(ns, "web");
  await eventually(
    async () =>
      !(await getService(ns, "web")) &&
      !(await getConfigMap(ns, "web-roster")) &&
      (await slicesOf(ns, "web")).length === 0
        ? true
        : undefined,
    { timeoutMs: MARGIN_MS, what: "the Service, slices and ConfigMap to go" },
  );
  await probesStop(targets[0]!);
});

test("deleting the namespace removes everything and stops the probes", async (t) => {
  const ns = await testNamespace(t, "cleanup-ns");
  const targets = await httpTargets(t, 3);
  await publishThree(t, ns, targets);
  const { core } = await clients();
  const service = await getService(ns, "web");
  // Owner references: the slices and the ConfigMap belong to the Service.
  for (const owned of [...(await slicesOf(ns, "web")), await getConfigMap(ns, "web-roster")]) {
    assert.deepEqual(
      owned?.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
      [["Service", "web", service?.metadata?.uid, true]],
    );
  }

  const deleted = Date.now();
  await core.deleteNamespace({ name: ns });
  await eventually(
    async () => {
      try {
        await core.readNamespace({ name: ns });
        return undefined;
      } catch (err) {
        if (isNotFound(err)) return true;
        throw err;
      }
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "the namespace to be gone" },
  );
  t.diagnostic(`namespace gone ${Date.now() - deleted} ms after its deletion`);
  await Promise.all(targets.map(probesStop));
});
