// Operator restart in steady state: a separate watch on the EndpointSlices
// sees no moment where the ready set shrinks, and the new operator writes
// nothing at all (start-up hold, then the recorded status as fallback, then
// fresh verdicts equal to what is published).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Operator } from "../../../src/operator/operator.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator, testSettings } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getConfigMap,
  getPolicy,
  listInstances,
  readyAddresses,
  sliceVersions,
  watchSlices,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

async function writesBy(operator: Operator): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await operator.manager.metrics.restRequests.get()).values) {
    const method = String(v.labels.method);
    if (WRITES.has(method)) out[method] = (out[method] ?? 0) + v.value;
  }
  return out;
}

async function publisherSuccesses(operator: Operator): Promise<number> {
  const values = (await operator.manager.metrics.reconcileTotal.get()).values;
  return values
    .filter((v) => v.labels.controller === "service-publisher" && v.labels.result === "success")
    .reduce((n, v) => n + v.value, 0);
}

/** resourceVersions of everything a restart could rewrite. */
async function versions(ns: string) {
  return {
    slices: await sliceVersions(ns, "web"),
    configMap: (await getConfigMap(ns, "web-roster"))?.metadata?.resourceVersion,
    policy: (await getPolicy(ns, "web")).metadata.resourceVersion,
    instances: Object.fromEntries(
      (await listInstances(ns)).map((i) => [i.metadata.name, i.metadata.resourceVersion]),
    ),
  };
}

test("a restart never shrinks the published set and rewrites nothing", async (t) => {
  const ns = await testNamespace(t, "restart");
  const targets = await httpTargets(t, 4);
  const first = await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of targets.entries()) {
    // One failing instance: its recorded verdict must survive the restart too.
    if (i === 3) target.healthy = false;
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  }
  const published = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === published.join() ? true : undefined),
    { timeoutMs: 15_000, what: "three ready endpoints" },
  );
  // Steady state: every status written (web-4 recorded unhealthy), the policy counts settled.
  await eventually(
    async () => {
      const all = await listInstances(ns);
      const policy = await getPolicy(ns, "web");
      return all.every((i) => i.status?.healthy !== undefined) &&
        policy.status?.healthyInstances === 3 &&
        policy.status.totalInstances === 4
        ? true
        : undefined;
    },
    { timeoutMs: 2 * 1000 + MARGIN_MS, what: "statuses written" },
  );
  // A policy status that changed only in counts is written at most every
  // policyStatusIntervalMs (1 s in tests): let the last one land.
  await new Promise((r) => setTimeout(r, testSettings().policyStatusIntervalMs + 500));
  const before = await versions(ns);

  const watch = await watchSlices(ns, "web");
  assert.deepEqual(watch.initial, published);
  await first.stop();
  const second = await startTestOperator(t, { namespaces: [ns] });
  const hits = targets.map((x) => x.hits);
  // The new operator probed every instance twice and its publisher ran.
  await eventually(
    async () =>
      targets.every((x, i) => x.hits >= hits[i]! + 2) && (await publisherSuccesses(second)) > 0
        ? true
        : undefined,
    { timeoutMs: 2 * 1000 + MARGIN_MS, what: "two probe rounds and a publication by the new operator" },
  );
  // Another batch window and watch round trip for anything in flight.
  await new Promise((r) => setTimeout(r, 200));
  watch.stop();

  for (const e of watch.events) {
    assert.ok(
      published.every((a) => e.ready.includes(a)),
      `ready set shrank at ${e.type} ${e.name}: ${e.ready.join(",")}`,
    );
  }
  assert.deepEqual(watch.events, [], "no slice event at all");
  assert.deepEqual(await writesBy(second), {}, "the new operator wrote nothing");
  assert.deepEqual(await versions(ns), before);
});
