// The postgres and redis probes through the engine against real servers from
// Debian's packages on loopback: authentication with the right and a wrong
// password, the role check (expectRole) on a primary and a streaming replica,
// and a failover (the replica promoted, the old primary stopped) followed by
// the verdicts of a probe that expects the primary.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Redis } from "ioredis";
import { createProbeEngine } from "../../../src/health/engine.ts";
import type { CheckSpec, PostgresProbeSpec, RedisProbeSpec } from "../../../src/health/types.ts";
import { eventually } from "../../support/cluster.ts";
import { postgresCluster, redisServer, skipWithoutDatabases } from "../../support/databases.ts";

const skip = skipWithoutDatabases();

function engineFor(t: { after: (fn: () => void) => void }) {
  const engine = createProbeEngine({ policy: { allowLoopback: true } });
  t.after(() => engine.close());
  return engine;
}

const check = (probe: PostgresProbeSpec | RedisProbeSpec): CheckSpec => ({
  probes: [probe],
  intervalMs: 1000,
  timeoutMs: 900,
  failureThreshold: 1,
  successThreshold: 1,
});

/** Waits until the target's verdict and reason are these; returns its summary. */
function until(engine: ReturnType<typeof createProbeEngine>, id: string, verdict: string, reason: string) {
  return eventually(
    () => {
      const s = engine.summary(id);
      return s?.verdict === verdict && s.reason === reason ? s : undefined;
    },
    { what: `${id} ${verdict} ${reason} (now ${JSON.stringify(engine.summary(id))})`, timeoutMs: 30_000 },
  );
}

test("postgres: a session with the password, AuthenticationFailed without, the role of primary and replica, a failover", {
  skip,
}, async (t) => {
  const pg = await postgresCluster(t, { replica: true });
  const engine = engineFor(t);
  const base = { type: "postgres", database: "postgres", user: pg.user, password: pg.password } as const;
  engine.set({ id: "ok", host: "127.0.0.1", check: check({ ...base, port: pg.primary.port }) });
  engine.set({
    id: "wrong",
    host: "127.0.0.1",
    check: check({ ...base, password: "nope", port: pg.primary.port }),
  });
  const primary = { ...base, expectRole: "primary" } as const;
  engine.set({ id: "a", host: "127.0.0.1", check: check({ ...primary, port: pg.primary.port }) });
  engine.set({ id: "b", host: "127.0.0.1", check: check({ ...primary, port: pg.replica!.port }) });
  engine.set({
    id: "b-replica",
    host: "127.0.0.1",
    check: check({ ...base, expectRole: "replica", port: pg.replica!.port }),
  });
  await until(engine, "ok", "Healthy", "ProbeSucceeded");
  const wrong = await until(engine, "wrong", "Unhealthy", "AuthenticationFailed");
  assert.match(wrong.message, /28P01/);
  await until(engine, "a", "Healthy", "ProbeSucceeded");
  const b = await until(engine, "b", "Unhealthy", "RoleMismatch");
  assert.match(b.message, /replica/);
  await until(engine, "b-replica", "Healthy", "ProbeSucceeded");

  // Failover: the replica becomes the primary, the old primary goes away.
  pg.replica!.promote();
  pg.primary.stop();
  await until(engine, "b", "Healthy", "ProbeSucceeded");
  await until(engine, "a", "Unhealthy", "ConnectionRefused");
  await until(engine, "b-replica", "Unhealthy", "RoleMismatch");
});

test("redis: PONG with AUTH, AuthenticationFailed with a wrong password, the role, REPLICAOF NO ONE", {
  skip,
}, async (t) => {
  const primary = await redisServer(t, { password: "secret" });
  const replica = await redisServer(t, {
    password: "secret",
    replicaOf: { host: "127.0.0.1", port: primary.port },
  });
  const engine = engineFor(t);
  const base = { type: "redis", password: "secret" } as const;
  engine.set({ id: "ok", host: "127.0.0.1", check: check({ ...base, port: primary.port }) });
  engine.set({
    id: "wrong",
    host: "127.0.0.1",
    check: check({ ...base, password: "nope", port: primary.port }),
  });
  engine.set({ id: "none", host: "127.0.0.1", check: check({ type: "redis", port: primary.port }) });
  engine.set({
    id: "a",
    host: "127.0.0.1",
    check: check({ ...base, expectRole: "primary", port: primary.port }),
  });
  engine.set({
    id: "b",
    host: "127.0.0.1",
    check: check({ ...base, expectRole: "primary", port: replica.port }),
  });
  await until(engine, "ok", "Healthy", "ProbeSucceeded");
  await until(engine, "wrong", "Unhealthy", "AuthenticationFailed");
  await until(engine, "none", "Unhealthy", "AuthenticationFailed");
  await until(engine, "a", "Healthy", "ProbeSucceeded");
  await until(engine, "b", "Unhealthy", "RoleMismatch");

  const admin = new Redis({ host: "127.0.0.1", port: replica.port, password: "secret", lazyConnect: true });
  t.after(() => admin.disconnect());
  await admin.connect();
  await admin.call("REPLICAOF", "NO", "ONE");
  await primary.stop();
  await until(engine, "b", "Healthy", "ProbeSucceeded");
  await until(engine, "a", "Unhealthy", "ConnectionRefused");
});
