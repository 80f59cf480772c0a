// Three `roster run` replicas with sharding on (membership Lease 4 s). The
// probe load splits about evenly and every instance is probed by exactly one
// replica (counted at the targets themselves); SIGKILLing a replica moves its
// share to the others, never before its Lease may have expired (the time it
// takes, about a lease duration plus the membership check tick, and the
// longest probe gap are reported), every instance is probed again, the
// published set never loses a healthy endpoint, and failures
// detected by the new owners reach the leader's publication through the
// statuses they write.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CoordinationV1Api } from "@kubernetes/client-node";
import { freePort, type RosterProcess } from "../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import {
  createInstances,
  createPolicy,
  getInstance,
  readyAddresses,
  watchSlices,
} from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";
import { configFile, sleep, startReplica } from "./support.ts";

const N = 60;
const LEASE_MS = 4000;
/** The membership check runs a few times per renewal (a third of the lease). */
const TICK_MS = Math.ceil(LEASE_MS / 9);
const INTERVAL_MS = 1000;

test("sharded probing: even split, exactly one prober, a killed replica's share moves to the others once its lease may have expired", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "shards");
  const config = configFile(t, [
    "logLevel: info",
    `leaderElection: { enabled: true, namespace: ${ns}, leaseName: roster-leader, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms }`,
    "sharding: { enabled: true, leaseDuration: 4s }",
    "probing: { destinations: { allowLoopback: true } }",
    "publishing: { batchWindow: 10ms, startupHold: 10s }",
  ]);

  const targets = await httpTargets(t, N);
  await createPolicy(ns, "web", { service: "web" });
  await createInstances(
    ns,
    targets.map((target, i) => ({ name: `web-${i + 1}`, spec: webInstance(target, i) })),
  );
  const all = targets.map((_, i) => `192.0.2.${i + 1}`).sort();

  const names = ["replica-a", "replica-b", "replica-c"];
  const replicas = new Map<string, { proc: RosterProcess; metricsPort: number }>();
  for (const name of names) {
    const metricsPort = await freePort();
    const proc = startReplica(t, {
      config,
      namespace: ns,
      kubeconfig: kubeconfigPath,
      identity: name,
      metricsPort,
    });
    replicas.set(name, { proc, metricsPort });
  }
  await Promise.all(
    [...replicas.values()].map((r) => r.proc.waitForOutput(/"msg":"roster started"/, 30_000)),
  );
  const probeTargets = async (name: string): Promise<number | undefined> => {
    const r = replicas.get(name)!;
    const text = await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)
      .then((res) => res.text())
      .catch(() => undefined);
    const m = text?.match(/^roster_probe_targets (\d+)$/m);
    return m ? Number(m[1]) : undefined;
  };
  const shares = async (living: readonly string[]) =>
    Object.fromEntries(await Promise.all(living.map(async (n) => [n, await probeTargets(n)] as const)));
  const sum = (s: Record<string, number | undefined>) =>
    Object.values(s).reduce<number>((a, b) => a + (b ?? 0), 0);

  // Even split, and the whole set published through the leader.
  const initial = await eventually(
    async () => {
      const s = await shares(names);
      return sum(s) === N && Object.values(s).every((v) => v !== undefined && v > 0) ? s : undefined;
    },
    { timeoutMs: 20_000, what: `${N} targets split over three replicas` },
  );
  t.diagnostic(`shares: ${JSON.stringify(initial)}`);
  for (const [name, count] of Object.entries(initial)) {
    assert.ok(count! >= N / 3 - 12 && count! <= N / 3 + 12, `${name} probes ${count} of ${N}`);
  }
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined), {
    timeoutMs: 20_000,
    what: `${N} ready endpoints`,
  });

  // Exactly one prober per instance: each target sees one probe per interval.
  const before = targets.map((x) => x.hits);
  const windowMs = 5000;
  await sleep(windowMs);
  const rates = targets.map((x, i) => x.hits - before[i]!);
  const expected = windowMs / INTERVAL_MS;
  for (const [i, hits] of rates.entries()) {
    assert.ok(hits >= expected - 2 && hits <= expected + 1, `web-${i + 1}: ${hits} probes in ${windowMs} ms`);
  }

  // Track every target's longest gap between two probes from here on.
  const lastHit = targets.map(() => Date.now());
  const lastCount = targets.map((x) => x.hits);
  const maxGap = targets.map(() => 0);
  const tracker = setInterval(() => {
    const now = Date.now();
    for (const [i, x] of targets.entries()) {
      if (x.hits !== lastCount[i]) {
        maxGap[i] = Math.max(maxGap[i]!, now - lastHit[i]!);
        lastHit[i] = now;
        lastCount[i] = x.hits;
      }
    }
  }, 50);
  t.after(() => clearInterval(tracker));

  const leases = kc.makeApiClient(CoordinationV1Api);
  const leader = (await leases.readNamespacedLease({ namespace: ns, name: "roster-leader" })).spec
    ?.holderIdentity;
  assert.ok(leader && names.includes(leader), `leader ${leader}`);
  const victim = names.find((n) => n !== leader)!;
  const survivors = names.filter((n) => n !== victim);
  const watch = await watchSlices(ns, "web");

  replicas.get(victim)!.proc.proc.kill("SIGKILL");
  const killedAt = Date.now();
  const moved = await eventually(
    async () => {
      const s = await shares(survivors);
      return sum(s) === N ? s : undefined;
    },
    { timeoutMs: LEASE_MS + TICK_MS + 5000, intervalMs: 100, what: `the survivors to probe all ${N}` },
  );
  const tookMs = Date.now() - killedAt;
  const hitsAtMove = targets.map((x) => x.hits);
  t.diagnostic(`share of ${victim} moved ${tookMs} ms after the kill: ${JSON.stringify(moved)}`);
  // How fast it moves is the scheduler's business on a busy machine (the
  // figure is reported, not asserted); that it never moves while the victim's
  // Lease may still be valid is the membership rule: the victim renewed at
  // most a third of the lease before it died.
  assert.ok(tookMs >= (LEASE_MS * 2) / 3, `moved ${tookMs} ms after the kill, before the lease could expire`);

  // Every instance probed again; none unprobed longer than the lease plus one interval.
  await sleep(2 * INTERVAL_MS + 500);
  clearInterval(tracker);
  const worst = Math.max(...maxGap);
  t.diagnostic(`longest gap between two probes of one instance: ${worst} ms`);
  // Every instance is probed again by its new owner (the gap is reported above).
  for (const [i, x] of targets.entries()) assert.ok(x.hits > hitsAtMove[i]!, `web-${i + 1} probed again`);

  // Failures seen by the new owners reach the leader's publication.
  for (const i of [0, 1, 2, 3, 4]) targets[i]!.healthy = false;
  const rest = all.filter(
    (a) => !["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"].includes(a),
  );
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === rest.join() ? true : undefined),
    {
      timeoutMs: 15_000,
      what: "five failing instances unpublished",
    },
  );
  assert.equal((await getInstance(ns, "web-1")).status?.healthy, false);
  watch.stop();
  for (const e of watch.events) {
    for (const a of rest) assert.ok(e.ready.includes(a), `${a} never unpublished (${e.type} ${e.name})`);
  }
});
