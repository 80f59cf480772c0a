// deregisterAfter end to end. The API's minimum is 1m, so instead of waiting
// a minute the test writes what an earlier operator would have recorded (an
// old status.lastTransitionTime with healthy=false) before the operator
// starts. An instance is deleted, with a Deregistered Event, only once this
// operator's own probes confirm it is still failing. The decision itself is
// unit-tested in test/unit/operator/deregister.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { metaTime } from "../../../src/kube/conditions.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  findInstance,
  getInstance,
  hasEvent,
  patchInstanceStatus,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("deregisterAfter deletes instances that stayed unhealthy, on fresh evidence only", async (t) => {
  const ns = await testNamespace(t, "dereg");
  const targets = await httpTargets(t, 3);
  await createPolicy(ns, "web", { service: "web", deregisterAfter: "1m" });
  const now = Date.now();
  const recorded = {
    // Failing for ten minutes, and still failing.
    "web-1": { since: now - 10 * 60_000, healthy: false },
    // Recorded failing for ten minutes, but it recovered while no operator ran.
    "web-2": { since: now - 10 * 60_000, healthy: true },
    // Failing, but only for ten seconds.
    "web-3": { since: now - 10_000, healthy: false },
  };
  for (const [i, [name, r]] of Object.entries(recorded).entries()) {
    targets[i]!.healthy = r.healthy;
    await createInstance(ns, name, webInstance(targets[i]!, i));
    await patchInstanceStatus(ns, name, { healthy: false, lastTransitionTime: metaTime(r.since) });
  }
  await startTestOperator(t, { namespaces: [ns] });

  await eventually(async () => ((await findInstance(ns, "web-1")) ? undefined : true), {
    // failureThreshold (2) × interval for fresh evidence, plus the margin.
    timeoutMs: 2 * INTERVAL_MS + MARGIN_MS,
    what: "web-1 to be deregistered",
  });
  await eventually(() => hasEvent(ns, "web-1", "Deregistered"), {
    timeoutMs: MARGIN_MS,
    what: "a Deregistered Event for web-1",
  });

  await eventually(async () => ((await getInstance(ns, "web-2")).status?.healthy ? true : undefined), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "web-2 to be healthy again",
  });
  const web3 = await getInstance(ns, "web-3");
  assert.equal(web3.status?.healthy, false);
  assert.equal(web3.status?.lastTransitionTime, metaTime(recorded["web-3"].since), "the clock kept running");
  // The status and the EndpointSlice have separate writers: web-2's healthy
  // status can land before its slice does.
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.2" ? true : undefined),
    {
      timeoutMs: MARGIN_MS,
      what: "web-2 alone published as ready",
    },
  );
  assert.ok(!(await hasEvent(ns, "web-2", "Deregistered")));
  assert.ok(!(await hasEvent(ns, "web-3", "Deregistered")));
});
