// Two `roster run` replicas with leader election (4 s lease). The leader is
// stalled with SIGSTOP for longer than the lease (a frozen VM, a GC pause, a
// throttled container): the standby takes the Lease, and a failure after the
// handover is unpublished by the new leader. Then SIGCONT: the old leader,
// whose memory still says every instance is healthy, must notice it lost the
// Lease and exit without writing: web-4 never reappears as ready, the other
// endpoints are never unpublished, the Lease stays with the new leader.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually } from "../support/cluster.ts";
import { readyAddresses, watchSlices } from "../support/roster.ts";
import { LEADER_LEASE_MS, LEADER_RETRY_MS, leaderPair } from "./support.ts";

test("leader stalled (SIGSTOP) past its lease: it exits on SIGCONT and never writes again", async (t) => {
  const { ns, targets, replicas, all, holder, leader } = await leaderPair(t, "stalled");
  const [stalled, standby] = leader === "replica-a" ? [replicas.a, "replica-b"] : [replicas.b, "replica-a"];
  // Resume it however the test ends, so its kill at teardown is not held up.
  t.after(() => stalled.proc.kill("SIGCONT"));
  let exitedAt: number | undefined;
  void stalled.exited.then(() => {
    exitedAt = Date.now();
  });

  stalled.proc.kill("SIGSTOP");
  await eventually(async () => ((await holder()) === standby ? true : undefined), {
    timeoutMs: LEADER_LEASE_MS + 4 * LEADER_RETRY_MS + 5000,
    intervalMs: 100,
    what: `${standby} to take the Lease from the stalled leader`,
  });
  // A failure the stalled leader cannot know about: the new leader unpublishes it.
  targets[3]!.healthy = false;
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === all.slice(0, 3).join() ? true : undefined),
    { timeoutMs: 15_000, what: "the new leader to unpublish web-4" },
  );
  const watch = await watchSlices(ns, "web");

  const resumedAt = Date.now();
  stalled.proc.kill("SIGCONT");
  const result = await stalled.exited;
  t.diagnostic(
    `old leader exited ${(exitedAt ?? Date.now()) - resumedAt} ms after SIGCONT (code ${result.code})`,
  );
  assert.match(result.stdout + result.stderr, /leadership lost/, "the old leader says why it stops");
  assert.notEqual(result.code, 0, "it exits with an error, so its pod restarts");
  // Two probe rounds of the new leader after the old one is gone: still its set.
  const hits = targets[0]!.hits;
  await eventually(() => (targets[0]!.hits >= hits + 2 ? true : undefined), {
    timeoutMs: 10_000,
    what: "two more probe rounds",
  });
  watch.stop();
  assert.equal(await holder(), standby, "the Lease stays with the new leader");
  assert.equal((await readyAddresses(ns, "web")).join(), all.slice(0, 3).join());
  for (const e of watch.events) {
    assert.ok(!e.ready.includes("192.0.2.4"), `the old leader never republished web-4 (${e.type} ${e.name})`);
    for (const a of all.slice(0, 3)) assert.ok(e.ready.includes(a), `${a} never unpublished (${e.type})`);
  }
});
