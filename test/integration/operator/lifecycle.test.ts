// End to end against the sandbox with real HTTP targets on loopback: the
// operator probes, writes status, publishes EndpointSlices and a ConfigMap,
// follows a failure and a recovery, and records Events.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  eventReasons,
  getInstance,
  getPolicy,
  publishedDocument,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("three instances: one fails and recovers; status, slices, ConfigMap and Events follow", async (t) => {
  const ns = await testNamespace(t, "life");
  const targets = await httpTargets(t, 3);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web", loadBalancing: { strategy: "WeightedRoundRobin" } });
  for (const [i, target] of targets.entries())
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));

  await eventually(async () => ((await readyAddresses(ns, "web")).length === 3 ? true : undefined), {
    timeoutMs: 15_000,
    what: "three ready endpoints",
  });
  const before = await publishedDocument(ns, "web-roster");
  assert.ok(before, "ConfigMap web-roster is published");
  assert.equal(before.loadBalancing.strategy, "WeightedRoundRobin");
  assert.equal(before.endpoints.filter((e) => e.ready).length, 3);
  const healthy = await getInstance(ns, "web-2");
  assert.equal(healthy.status?.healthy, true);
  assert.equal(healthy.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
  assert.equal(healthy.status?.observedGeneration, healthy.metadata.generation);

  targets[1]!.healthy = false;
  const failedAt = Date.now();
  await eventually(
    async () => ((await getInstance(ns, "web-2")).status?.healthy === false ? true : undefined),
    // failureThreshold (2) x interval (1 s), plus a margin for the watch round trips.
    { timeoutMs: 2 * 1000 + 2500, what: "web-2 to become unhealthy" },
  );
  t.diagnostic(`web-2 unhealthy after ${Date.now() - failedAt} ms`);
  const failed = await getInstance(ns, "web-2");
  const cond = failed.status?.conditions?.find((c) => c.type === "Healthy");
  assert.equal(cond?.status, "False");
  assert.match(cond?.reason ?? "", /HttpStatus|HTTPStatus/i);
  await eventually(
    async () => {
      const ready = await readyAddresses(ns, "web");
      return ready.length === 2 ? ready : undefined;
    },
    { timeoutMs: 2000, what: "two ready endpoints" },
  ).then((ready) => assert.deepEqual(ready, ["192.0.2.1", "192.0.2.3"]));
  const after = await publishedDocument(ns, "web-roster");
  assert.ok(after && after.revision > before.revision, "the ConfigMap revision went up");
  assert.equal(after.endpoints.find((e) => e.instance === "web-2")?.ready, false);
  await eventually(
    async () => ((await eventReasons(ns, "web-2")).includes("BecameUnhealthy") ? true : undefined),
    { timeoutMs: 5000, what: "a BecameUnhealthy Event" },
  );

  targets[1]!.healthy = true;
  await eventually(
    async () => ((await readyAddresses(ns, "web")).length === 3 ? true : undefined),
    // successThreshold (1) x interval, plus margin.
    { timeoutMs: 1000 + 2500, what: "web-2 to be published again" },
  );
  await eventually(async () => ((await getInstance(ns, "web-2")).status?.healthy ? true : undefined), {
    timeoutMs: 2500,
    what: "web-2 recorded healthy",
  });
  const policy = await getPolicy(ns, "web");
  assert.equal(policy.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
  assert.equal(policy.status?.totalInstances, 3);
});
