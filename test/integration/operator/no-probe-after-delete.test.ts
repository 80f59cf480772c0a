// A deleted or deregistered instance is never probed again once the operator
// has seen it go (consul-esm#296), against the real sandbox and real HTTP
// targets that count their health requests. web-1 stays and is the clock of
// the window: it is probed once per interval, so ≥ 3 more of its probes mean
// ≥ 3 intervals passed; web-2 (deleted by the user) and web-3 (deregistered
// by the operator under deregisterAfter) must get no request in that window.
import assert from "node:assert/strict";
import { test } from "node:test";
import { metaTime } from "../../../src/kube/conditions.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  deleteInstance,
  findInstance,
  patchInstanceStatus,
  readyAddresses,
} from "../../support/roster.ts";
import { type HttpTarget, httpTargets } from "../../support/targets.ts";

test("a deleted or deregistered instance gets no probe after the operator saw it go", async (t) => {
  const ns = await testNamespace(t, "noprobe");
  const [keep, deleted, deregistered] = (await httpTargets(t, 3)) as [HttpTarget, HttpTarget, HttpTarget];
  await createPolicy(ns, "old", { service: "old", deregisterAfter: "1m" });
  await createInstance(ns, "web-1", webInstance(keep, 0));
  await createInstance(ns, "web-2", webInstance(deleted, 1));
  // Failing for ten minutes per the recorded status: deregistered on this operator's fresh evidence.
  deregistered.healthy = false;
  await createInstance(ns, "web-3", webInstance(deregistered, 2, { service: "old" }));
  await patchInstanceStatus(ns, "web-3", {
    healthy: false,
    lastTransitionTime: metaTime(Date.now() - 600_000),
  });
  const operator = await startTestOperator(t, { namespaces: [ns] });
  const inEngine = (name: string) => operator.engine.has(`${ns}/${name}`);

  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "web-1 and web-2 published",
  });
  assert.ok(deleted.hits > 0, "web-2 was probed");
  await deleteInstance(ns, "web-2");
  await eventually(
    async () =>
      (await readyAddresses(ns, "web")).join() === "192.0.2.1" && !inEngine("web-2") ? true : undefined,
    { timeoutMs: MARGIN_MS, what: "the operator to see web-2 deleted (slice and probe target gone)" },
  );
  await eventually(
    async () => (!(await findInstance(ns, "web-3")) && !inEngine("web-3") ? true : undefined),
    {
      timeoutMs: 2 * INTERVAL_MS + MARGIN_MS,
      what: "web-3 deregistered and its probe target gone",
    },
  );
  assert.ok(deregistered.hits > 0, "web-3 was probed before it was deregistered");

  // A request already on the wire when the target went may still reach the
  // server: the baseline is taken one probe of web-1 later.
  const settled = keep.hits;
  await eventually(() => (keep.hits > settled ? true : undefined), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "one more probe of web-1",
  });
  const before = { deleted: deleted.hits, deregistered: deregistered.hits, keep: keep.hits };
  await eventually(() => (keep.hits >= before.keep + 3 ? true : undefined), {
    timeoutMs: 3 * INTERVAL_MS + MARGIN_MS,
    what: "three more intervals (web-1 probed three more times)",
  });
  assert.equal(deleted.hits, before.deleted, "no probe of the deleted web-2");
  assert.equal(deregistered.hits, before.deregistered, "no probe of the deregistered web-3");
});
