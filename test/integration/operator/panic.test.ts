// Panic mode: with panicThreshold 50, when fewer than half of the
// non-drained instances are healthy, every non-drained instance is published
// as ready (fail open), the ConfigMap says panic, the policy has a Panic
// condition and status.panic, and Events mark entering and leaving panic.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createPolicy,
  eventCounts,
  getInstance,
  getPolicy,
  hasEvent,
  publishedDocument,
  readyAddresses,
  sliceEndpoints,
} from "../../support/roster.ts";
import { httpTargets, setHealthy } from "../../support/targets.ts";

test("panic publishes every non-drained instance and recovers", async (t) => {
  const ns = await testNamespace(t, "panic");
  const targets = await httpTargets(t, 5);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web-policy", { service: "web", publish: { panicThreshold: 50 } });
  for (const i of [0, 1, 2, 3]) await createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));
  // A drained instance never counts towards panic and is never forced ready.
  await createInstance(ns, "web-5", webInstance(targets[4]!, 4, { drain: true }));
  const healthySet = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === healthySet.join() ? true : undefined),
    { timeoutMs: 15_000, what: "four ready endpoints" },
  );
  const calm = await publishedDocument(ns, "web-roster");
  assert.equal(calm?.panic, false);

  // Three of four fail: 25 % healthy is below 50 %.
  setHealthy(targets.slice(0, 3), false);
  const doc = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      return d?.panic ? d : undefined;
    },
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS, what: "panic in the ConfigMap" },
  );
  await eventually(
    async () => ((await getInstance(ns, "web-3")).status?.healthy === false ? true : undefined),
    { timeoutMs: MARGIN_MS, what: "web-3 recorded unhealthy" },
  );
  assert.deepEqual(await readyAddresses(ns, "web"), healthySet, "all non-drained instances are ready");
  const states = Object.fromEntries(doc.endpoints.map((e) => [e.instance, [e.state, e.ready, e.healthy]]));
  assert.deepEqual(states, {
    "web-1": ["Panic", true, false],
    "web-2": ["Panic", true, false],
    "web-3": ["Panic", true, false],
    "web-4": ["Ready", true, true],
    "web-5": ["Draining", false, true],
  });
  const drained = (await sliceEndpoints(ns, "web")).find((e) => e.addresses[0] === "192.0.2.5");
  assert.deepEqual({ ...drained?.conditions }, { ready: false, serving: true, terminating: true });

  const policy = await eventually(
    async () => {
      const p = await getPolicy(ns, "web-policy");
      return p.status?.panic ? p : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "policy status.panic" },
  );
  assert.equal(condition(policy, "Panic")?.status, "True");
  assert.equal(condition(policy, "Panic")?.reason, "BelowPanicThreshold");
  assert.equal(policy.status?.healthyInstances, 2, "web-4 and the drained web-5 are healthy");
  assert.equal(policy.status?.drainingInstances, 1);
  assert.equal(policy.status?.totalInstances, 5);
  await eventually(() => hasEvent(ns, "web-policy", "PanicEntered"), {
    timeoutMs: MARGIN_MS,
    what: "a PanicEntered Event",
  });
  // The unhealthy instances say they are unhealthy, whatever panic publishes,
  // with one Event each for their first verdict and one for their one transition.
  for (const name of ["web-1", "web-2", "web-3"]) {
    await eventually(
      async () => (condition(await getInstance(ns, name), "Healthy")?.status === "False" ? true : undefined),
      { timeoutMs: MARGIN_MS, what: `${name} Healthy False` },
    );
    await eventually(() => hasEvent(ns, name, "BecameUnhealthy"), {
      timeoutMs: MARGIN_MS,
      what: `${name}'s Event`,
    });
    assert.deepEqual(
      await eventCounts(ns, name),
      { BecameHealthy: 1, BecameUnhealthy: 1 },
      `${name}: the first verdict and the transition`,
    );
  }

  // Recovery: two of four healthy is 50 %, not below the threshold.
  setHealthy(targets.slice(0, 2), true);
  const recovered = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      return d && !d.panic ? d : undefined;
    },
    { timeoutMs: INTERVAL_MS + MARGIN_MS, what: "panic to end" },
  );
  assert.ok(recovered.revision > doc.revision);
  // Panic ends with the first recovery (2 of 4); the second follows within its own probe slot.
  const expected = ["192.0.2.1", "192.0.2.2", "192.0.2.4"];
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === expected.join() ? true : undefined),
    { timeoutMs: INTERVAL_MS + MARGIN_MS, what: "web-1, web-2 and web-4 ready, web-3 not" },
  );
  const calmPolicy = await eventually(
    async () => {
      const p = await getPolicy(ns, "web-policy");
      return p.status?.panic === false ? p : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "policy status.panic false" },
  );
  assert.equal(condition(calmPolicy, "Panic")?.status, "False");
  await eventually(() => hasEvent(ns, "web-policy", "PanicLeft"), {
    timeoutMs: MARGIN_MS,
    what: "a PanicLeft Event",
  });
});
