// Two `roster run` replicas with leader election (4 s lease). The leader is
// SIGKILLed: the standby takes the Lease within the lease duration (plus
// retry slack), the published set never loses a healthy endpoint during the
// handover (a test-side watch sees every slice write), the instances that
// stayed healthy never flap, and the new leader follows a failure that
// happens after the handover.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually } from "../support/cluster.ts";
import { eventCounts, getInstance, readyAddresses, watchSlices } from "../support/roster.ts";
import { LEADER_LEASE_MS, LEADER_RETRY_MS, leaderPair, sleep } from "./support.ts";

test("leader SIGKILLed: the standby takes over within the lease, nothing healthy unpublished", async (t) => {
  const { ns, targets, replicas, all, holder, leader } = await leaderPair(t, "leader");
  assert.ok(leader === "replica-a" || leader === "replica-b", `leader ${leader}`);
  const [dead, standby] = leader === "replica-a" ? [replicas.a, "replica-b"] : [replicas.b, "replica-a"];
  const watch = await watchSlices(ns, "web");

  dead.proc.kill("SIGKILL");
  const killedAt = Date.now();
  await dead.exited;
  await eventually(async () => ((await holder()) === standby ? true : undefined), {
    timeoutMs: LEADER_LEASE_MS + 4 * LEADER_RETRY_MS + 2000,
    intervalMs: 100,
    what: `${standby} to take the Lease`,
  });
  const tookOver = Date.now() - killedAt;
  t.diagnostic(`${standby} took over ${tookOver} ms after the kill (lease ${LEADER_LEASE_MS} ms)`);

  // A failure after the handover: the new leader must see and publish it.
  await sleep(1000);
  targets[3]!.healthy = false;
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === all.slice(0, 3).join() ? true : undefined),
    { timeoutMs: 15_000, what: "the new leader to unpublish web-4" },
  );
  assert.equal((await getInstance(ns, "web-4")).status?.healthy, false);
  await sleep(2000);
  watch.stop();

  for (const e of watch.events) {
    for (const a of all.slice(0, 3))
      assert.ok(e.ready.includes(a), `${a} never unpublished (${e.type} ${e.name}: ${e.ready})`);
  }
  for (const name of ["web-1", "web-2", "web-3"]) {
    assert.equal((await getInstance(ns, name)).status?.healthy, true);
    const events = await eventCounts(ns, name);
    assert.equal(events.BecameUnhealthy ?? 0, 0, `${name} never flapped (${JSON.stringify(events)})`);
  }
  t.diagnostic(`slice events during the handover: ${watch.events.length}`);
});
