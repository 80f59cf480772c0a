/**
 * The election algorithm on a fake clock against an in-memory Lease with
 * resourceVersion compare-and-swap. The real thing (two processes, SIGKILL,
 * SIGTERM) is in test/integration/kube/leader.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ApiError, type KubeRequest } from "../../../src/kube/client.ts";
import { type Lease, leaderElector, microTime } from "../../../src/kube/leader.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { scriptedClient } from "./fakes.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));
async function run(clock: ReturnType<typeof fakeClock>, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    for (let i = 0; i < 4; i++) await tick();
  }
}

function leaseServer() {
  let lease: Lease | undefined;
  let rv = 1;
  let down = false;
  const handle = (req: KubeRequest): unknown => {
    if (down) throw new ApiError(503, "unavailable", req.path);
    if (req.method === "GET") {
      if (!lease) throw new ApiError(404, { reason: "NotFound" }, req.path);
      return structuredClone(lease);
    }
    const body = structuredClone(req.body as Lease);
    if (req.method === "POST") {
      if (lease) throw new ApiError(409, { reason: "AlreadyExists" }, req.path);
      lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(rv++) } };
      return structuredClone(lease);
    }
    if (req.method === "PUT") {
      if (!lease || body.metadata.resourceVersion !== lease.metadata.resourceVersion) {
        throw new ApiError(409, { reason: "Conflict" }, req.path);
      }
      lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(rv++) } };
      return structuredClone(lease);
    }
    throw new Error(`unexpected ${req.method}`);
  };
  return {
    client: () => scriptedClient({ onRequest: handle }),
    lease: () => lease,
    setDown: (v: boolean) => {
      down = v;
    },
  };
}

const timings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

function candidate(
  server: ReturnType<typeof leaseServer>,
  clock: ReturnType<typeof fakeClock>,
  identity: string,
) {
  const log: string[] = [];
  const abort = new AbortController();
  const el = leaderElector({
    ...timings,
    client: server.client(),
    namespace: "ns",
    name: "roster",
    identity,
    clock,
    random: () => 0,
    onStartedLeading: () => log.push(`lead@${clock.now()}`),
    onStoppedLeading: () => log.push(`stop@${clock.now()}`),
  });
  const done = el.run(abort.signal);
  return { el, log, abort, done };
}

describe("leader election", () => {
  test("exactly one of two candidates leads; the lease names it", async () => {
    const clock = fakeClock(0);
    const server = leaseServer();
    const a = candidate(server, clock, "a");
    const b = candidate(server, clock, "b");
    await run(clock, 10_000);
    assert.equal([a.el.isLeader(), b.el.isLeader()].filter(Boolean).length, 1);
    const leader = a.el.isLeader() ? "a" : "b";
    assert.equal(server.lease()!.spec!.holderIdentity, leader);
    assert.equal(server.lease()!.spec!.leaseDurationSeconds, 15);
    assert.match(server.lease()!.spec!.renewTime!, /\.\d{6}Z$/);
    a.abort.abort();
    b.abort.abort();
    await Promise.all([a.done, b.done]);
  });

  test("a dead leader (no release) is replaced once the lease expires, not before", async () => {
    const clock = fakeClock(0);
    const server = leaseServer();
    const a = leaderElector({
      ...timings,
      client: server.client(),
      namespace: "ns",
      name: "roster",
      identity: "a",
      clock,
      releaseOnCancel: false,
    });
    const ac = new AbortController();
    const aDone = a.run(ac.signal);
    await run(clock, 1000);
    assert.ok(a.isLeader());
    const b = candidate(server, clock, "b");
    await run(clock, 4000);
    assert.equal(b.el.isLeader(), false);
    // "Kill" a: it stops renewing and does not release.
    ac.abort();
    await aDone;
    const killedAt = clock.now();
    await run(clock, 30_000);
    assert.ok(b.el.isLeader());
    const tookOver = Number(b.log[0]!.split("@")[1]) - killedAt;
    assert.ok(tookOver <= 15_000 + 2 * 2_000, `took over ${tookOver} ms after the kill`);
    assert.equal(server.lease()!.spec!.leaseTransitions, 1);
    b.abort.abort();
    await b.done;
  });

  test("a graceful stop releases the lease and the other takes over within a retry period", async () => {
    const clock = fakeClock(0);
    const server = leaseServer();
    const a = candidate(server, clock, "a");
    await run(clock, 1000);
    const b = candidate(server, clock, "b");
    await run(clock, 5000);
    assert.ok(a.el.isLeader() && !b.el.isLeader());
    a.abort.abort();
    assert.equal(await a.done, "stopped");
    assert.equal(server.lease()!.spec!.holderIdentity, undefined);
    const releasedAt = clock.now();
    await run(clock, 3000);
    assert.ok(b.el.isLeader());
    assert.ok(Number(b.log[0]!.split("@")[1]) - releasedAt <= 2_000 * 1.2 + 100);
    b.abort.abort();
    await b.done;
  });

  test("a leader that cannot renew for the renew deadline steps down (before the lease expires)", async () => {
    const clock = fakeClock(0);
    const server = leaseServer();
    const a = candidate(server, clock, "a");
    await run(clock, 1000);
    assert.ok(a.el.isLeader());
    server.setDown(true);
    const downAt = clock.now();
    assert.equal(await Promise.race([a.done, run(clock, 20_000).then(() => "running")]), "lost");
    const stoppedAt = Number(a.log.find((l) => l.startsWith("stop"))!.split("@")[1]);
    assert.ok(stoppedAt - downAt <= 10_000 + 2_000, `stepped down after ${stoppedAt - downAt} ms`);
    assert.ok(stoppedAt - downAt < 15_000, "before anyone else could take the lease");
    assert.equal(a.el.isLeader(), false);
  });

  test("rejects timings that make split brain possible", () => {
    assert.throws(() =>
      leaderElector({
        client: scriptedClient({}),
        namespace: "ns",
        name: "x",
        identity: "a",
        leaseDurationMs: 5000,
        renewDeadlineMs: 6000,
      }),
    );
  });

  test("microTime has six fractional digits", () => {
    assert.equal(microTime(Date.parse("2026-01-01T00:00:00.123Z")), "2026-01-01T00:00:00.123000Z");
  });
});
