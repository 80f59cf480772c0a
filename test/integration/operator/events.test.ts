// Events an instance's reader meets in `kubectl describe si`: its first
// verdict (also when it never becomes healthy, which once left "Events:
// <none>"), and flap damping, which holds an instance without changing
// `healthy`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { httpCheck, INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { condition, createInstance, eventCounts, getInstance, hasEvent } from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("an instance that is never healthy gets a BecameUnhealthy Event for its first verdict", async (t) => {
  const ns = await testNamespace(t, "ev-first");
  const [failing, fine] = await httpTargets(t, 2);
  failing!.healthy = false;
  await startTestOperator(t, { namespaces: [ns] });
  await createInstance(ns, "web-1", webInstance(failing!, 0));
  await createInstance(ns, "web-2", webInstance(fine!, 1));
  await eventually(() => hasEvent(ns, "web-1", "BecameUnhealthy"), {
    timeoutMs: 2 * INTERVAL_MS + MARGIN_MS,
    what: "web-1's first-verdict Event",
  });
  await eventually(() => hasEvent(ns, "web-2", "BecameHealthy"), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "web-2's first-verdict Event",
  });
  assert.equal((await getInstance(ns, "web-1")).status?.healthy, false);
  assert.deepEqual(await eventCounts(ns, "web-1"), { BecameUnhealthy: 1 });
  assert.deepEqual(await eventCounts(ns, "web-2"), { BecameHealthy: 1 });
});

test("flap damping that holds an unhealthy instance records a FlapDamping Event", async (t) => {
  const ns = await testNamespace(t, "ev-flap");
  const [target] = await httpTargets(t, 1);
  await startTestOperator(t, { namespaces: [ns] });
  // One verdict change allowed per 30 s: fail, recover, and the recovery is held.
  await createInstance(
    ns,
    "web-1",
    webInstance(target!, 0, {
      healthCheck: httpCheck(target!, {
        failureThreshold: 1,
        flapDamping: { maxTransitions: 1, window: "30s" },
      }),
    }),
  );
  await eventually(() => hasEvent(ns, "web-1", "BecameHealthy"), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "healthy first",
  });
  target!.healthy = false;
  await eventually(() => hasEvent(ns, "web-1", "BecameUnhealthy"), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "unhealthy",
  });
  target!.healthy = true;
  await eventually(
    async () =>
      condition(await getInstance(ns, "web-1"), "Healthy")?.reason === "Flapping" ? true : undefined,
    { timeoutMs: INTERVAL_MS + MARGIN_MS, what: "held by flap damping" },
  );
  await eventually(() => hasEvent(ns, "web-1", "FlapDamping"), {
    timeoutMs: MARGIN_MS,
    what: "a FlapDamping Event",
  });
  assert.equal((await getInstance(ns, "web-1")).status?.healthy, false, "held unhealthy");
  assert.deepEqual(await eventCounts(ns, "web-1"), { BecameHealthy: 1, BecameUnhealthy: 1, FlapDamping: 1 });
});
