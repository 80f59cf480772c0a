// spec.drain end to end: a drained instance stays in the EndpointSlices as
// terminating (not ready), with `serving` telling whether it still passes its
// health check, like a terminating pod; its Ready condition and the
// ConfigMap say Draining.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  getInstance,
  patchInstanceSpec,
  publishedDocument,
  readyAddresses,
  sliceEndpoints,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

async function endpointOf(ns: string, address: string) {
  return (await sliceEndpoints(ns, "web")).find((e) => e.addresses.includes(address));
}

test("drain keeps the endpoint published as serving, not ready, terminating", async (t) => {
  const ns = await testNamespace(t, "drain");
  const targets = await httpTargets(t, 2);
  await startTestOperator(t, { namespaces: [ns] });
  // No policy: the operator's default policy governs (ConfigMap web-roster).
  await createInstance(ns, "web-1", webInstance(targets[0]!, 0));
  await createInstance(ns, "web-2", webInstance(targets[1]!, 1));
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: 15_000,
    what: "two ready endpoints",
  });

  await patchInstanceSpec(ns, "web-2", { drain: true });
  const drained = await eventually(
    async () => {
      const ep = await endpointOf(ns, "192.0.2.2");
      return ep?.conditions?.terminating ? ep : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "web-2 published as terminating" },
  );
  assert.deepEqual({ ...drained.conditions }, { ready: false, serving: true, terminating: true });
  assert.deepEqual(await readyAddresses(ns, "web"), ["192.0.2.1"]);

  const si = await eventually(
    async () => {
      const s = await getInstance(ns, "web-2");
      return condition(s, "Ready")?.reason === "Draining" ? s : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "web-2 Ready condition Draining" },
  );
  assert.equal(condition(si, "Ready")?.status, "False");
  assert.equal(condition(si, "Healthy")?.status, "True", "draining does not make it unhealthy");
  assert.equal(si.status?.healthy, true);
  assert.equal(si.status?.observedGeneration, si.metadata.generation);

  const doc = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      return d?.endpoints.find((e) => e.instance === "web-2")?.state === "Draining" ? d : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "ConfigMap state Draining" },
  );
  const entry = doc.endpoints.find((e) => e.instance === "web-2")!;
  assert.equal(entry.ready, false);
  assert.equal(entry.healthy, true);
  assert.equal(doc.endpoints.find((e) => e.instance === "web-1")?.state, "Ready");

  // A drained instance that starts failing stays as terminating, no longer serving.
  targets[1]!.healthy = false;
  const failing = await eventually(
    async () => {
      const ep = await endpointOf(ns, "192.0.2.2");
      return ep?.conditions?.serving === false ? ep : undefined;
    },
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS, what: "web-2 no longer serving" },
  );
  assert.deepEqual({ ...failing.conditions }, { ready: false, serving: false, terminating: true });
  const failingDoc = await publishedDocument(ns, "web-roster");
  const failingEntry = failingDoc?.endpoints.find((e) => e.instance === "web-2");
  assert.equal(failingEntry?.state, "Draining");
  assert.equal(failingEntry?.healthy, false);

  // Undrained while failing: out of the slices; once healthy again: ready.
  await patchInstanceSpec(ns, "web-2", { drain: false });
  await eventually(async () => ((await endpointOf(ns, "192.0.2.2")) ? undefined : true), {
    timeoutMs: MARGIN_MS,
    what: "failing, undrained web-2 to leave the slices",
  });
  targets[1]!.healthy = true;
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "web-2 ready again",
  });
  const back = await endpointOf(ns, "192.0.2.2");
  assert.deepEqual({ ...back?.conditions }, { ready: true, serving: true, terminating: false });
});
