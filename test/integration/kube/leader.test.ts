/**
 * Leader election with real processes against the sandbox: exactly one of
 * two operators reconciles; SIGKILL of the leader hands over within the
 * lease duration; SIGTERM releases the lease so the takeover is immediate.
 * Every replica serves /healthz, /readyz and /metrics.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { kubeClient } from "../../../src/kube/client.ts";
import type { Lease } from "../../../src/kube/leader.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";

const fixture = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "operator.ts");
const timings = { lease: 3000, renew: 2000, retry: 500 };

interface Line {
  event: string;
  at: number;
  key?: string;
  ports?: { health?: number; metrics?: number };
}

interface Operator {
  id: string;
  proc: ChildProcess;
  lines: Line[];
  exited: Promise<number | null>;
  has(event: string): Line | undefined;
  reconciled(): Set<string>;
}

function startOperator(id: string, kubeconfig: string, namespace: string): Operator {
  const proc = spawn(process.execPath, [fixture], {
    env: {
      ...process.env,
      FIXTURE_KUBECONFIG: kubeconfig,
      FIXTURE_NAMESPACE: namespace,
      FIXTURE_IDENTITY: id,
      FIXTURE_LEASE_MS: String(timings.lease),
      FIXTURE_RENEW_MS: String(timings.renew),
      FIXTURE_RETRY_MS: String(timings.retry),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: Line[] = [];
  createInterface({ input: proc.stdout! }).on("line", (l) => {
    try {
      lines.push(JSON.parse(l) as Line);
    } catch {
      // not ours
    }
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return {
    id,
    proc,
    lines,
    exited,
    has: (event) => lines.find((l) => l.event === event),
    reconciled: () => new Set(lines.filter((l) => l.event === "reconcile").map((l) => l.key!)),
  };
}

async function metric(op: Operator, name: string): Promise<string> {
  const port = op.has("started")!.ports!.metrics;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split("\n").find((l) => l.startsWith(name)) ?? "";
}

test("two operator processes: one leads and reconciles; SIGKILL and SIGTERM hand over", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "leader");
  const client = kubeClient(kc);
  const ops: Operator[] = [];
  t.after(async () => {
    for (const op of ops) op.proc.kill("SIGKILL");
    await Promise.all(ops.map((o) => o.exited));
  });
  const a = startOperator("op-a", kubeconfigPath, ns);
  const b = startOperator("op-b", kubeconfigPath, ns);
  ops.push(a, b);
  await eventually(() => (a.has("started") && b.has("started") ? true : undefined), {
    timeoutMs: 30_000,
    what: "both operators to start",
  });
  const leader = await eventually(() => [a, b].find((o) => o.has("leading")), {
    timeoutMs: 15_000,
    what: "a leader",
  });
  const follower = leader === a ? b : a;

  for (let i = 0; i < 5; i++) {
    await client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/configmaps`,
      body: { metadata: { name: `cm-${i}` } },
    });
  }
  const keys = Array.from({ length: 5 }, (_, i) => `${ns}/cm-${i}`);
  await eventually(() => (keys.every((k) => leader.reconciled().has(k)) ? true : undefined), {
    what: "the leader to reconcile every ConfigMap",
  });
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(follower.has("leading"), undefined, "only one leader");
  assert.equal(follower.reconciled().size, 0, "the follower reconciled nothing");

  // Every replica serves probes and metrics; only the leader says it is master.
  for (const op of [leader, follower]) {
    const { health } = op.has("started")!.ports!;
    assert.equal((await fetch(`http://127.0.0.1:${health}/healthz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${health}/readyz`)).status, 200);
  }
  assert.match(await metric(leader, "leader_election_master_status"), / 1$/);
  assert.match(await metric(follower, "leader_election_master_status"), / 0$/);
  const lease = await client.request<Lease>({
    method: "GET",
    path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/roster-test`,
  });
  assert.equal(lease.spec?.holderIdentity, leader.id);

  // SIGKILL: no release; the follower waits for the lease to expire.
  const killedAt = Date.now();
  leader.proc.kill("SIGKILL");
  const took = await eventually(() => follower.has("leading"), { timeoutMs: 20_000, what: "the takeover" });
  const killTakeover = took.at - killedAt;
  t.diagnostic(`takeover after SIGKILL: ${killTakeover} ms (lease ${timings.lease} ms)`);
  assert.ok(killTakeover <= timings.lease + 2 * timings.retry + 1000, `took ${killTakeover} ms`);
  await eventually(() => (keys.every((k) => follower.reconciled().has(k)) ? true : undefined), {
    what: "the new leader to reconcile everything from its warm cache",
  });

  // SIGTERM: the leader stops its controllers and releases the lease; a standby takes over at once.
  const c = startOperator("op-c", kubeconfigPath, ns);
  ops.push(c);
  await eventually(() => c.has("started"), { timeoutMs: 30_000, what: "the third operator to start" });
  await new Promise((r) => setTimeout(r, timings.retry * 2));
  const termAt = Date.now();
  follower.proc.kill("SIGTERM");
  assert.equal(await follower.exited, 0, "graceful exit");
  assert.ok(follower.has("stopped"));
  const took2 = await eventually(() => c.has("leading"), {
    timeoutMs: 20_000,
    what: "the takeover after SIGTERM",
  });
  const termTakeover = took2.at - termAt;
  t.diagnostic(`takeover after SIGTERM: ${termTakeover} ms (retry period ${timings.retry} ms)`);
  assert.ok(
    termTakeover < timings.lease,
    `released lease taken over in ${termTakeover} ms, before it could expire`,
  );
  assert.ok(termTakeover <= timings.retry * 1.2 + 1000, `took ${termTakeover} ms`);
  const stoppedReconciling = Math.max(
    ...follower.lines.filter((l) => l.event === "reconcile").map((l) => l.at),
  );
  assert.ok(
    stoppedReconciling <= (follower.has("stopped")?.at ?? 0),
    "no reconcile after the old leader stopped",
  );
});
