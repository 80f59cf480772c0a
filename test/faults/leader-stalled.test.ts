// Two `roster run` replicas with leader election (4 s lease). The leader is
// stalled with SIGSTOP for longer than the lease (a frozen VM, a GC pause, a
// throttled container): the standby takes the Lease, and a failure after the
// handover is unpublished by the new leader. Then SIGCONT: the old leader,
// whose memory still says every instance is healthy, must notice it lost the
// Lease and exit without writing: web-4 never reappears as ready, the other
// endpoints are never unpublished, the Lease stays with the new leader.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CoordinationV1Api } from "@kubernetes/client-node";
import type { RosterProcess } from "../integration/cli/support.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import { createInstance, createPolicy, readyAddresses, watchSlices } from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";
import { configFile, startReplica } from "./support.ts";

const LEASE_MS = 4000;
const RETRY_MS = 500;

test("leader stalled (SIGSTOP) past its lease: it exits on SIGCONT and never writes again", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "stalled");
  const config = configFile(t, [
    "logLevel: info",
    `leaderElection: { enabled: true, namespace: ${ns}, leaseName: roster-leader, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms }`,
    "probing: { destinations: { allowLoopback: true } }",
    "publishing: { batchWindow: 10ms, startupHold: 10s }",
  ]);
  const start = (identity: string): RosterProcess =>
    startReplica(t, { config, namespace: ns, kubeconfig: kubeconfigPath, identity });
  const leases = kc.makeApiClient(CoordinationV1Api);
  const holder = async () =>
    (await leases.readNamespacedLease({ namespace: ns, name: "roster-leader" }).catch(() => undefined))?.spec
      ?.holderIdentity;

  const targets = await httpTargets(t, 4);
  await createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of targets.entries())
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  const replicas = { a: start("replica-a"), b: start("replica-b") };
  await Promise.all(Object.values(replicas).map((r) => r.waitForOutput(/"msg":"roster started"/, 30_000)));
  const all = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined), {
    timeoutMs: 20_000,
    what: "four ready endpoints",
  });
  const leader = await eventually(holder, { what: "a leader" });
  const [stalled, standby] = leader === "replica-a" ? [replicas.a, "replica-b"] : [replicas.b, "replica-a"];
  // Resume it however the test ends, so its kill at teardown is not held up.
  t.after(() => stalled.proc.kill("SIGCONT"));
  let exitedAt: number | undefined;
  void stalled.exited.then(() => {
    exitedAt = Date.now();
  });

  stalled.proc.kill("SIGSTOP");
  await eventually(async () => ((await holder()) === standby ? true : undefined), {
    timeoutMs: LEASE_MS + 4 * RETRY_MS + 5000,
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
