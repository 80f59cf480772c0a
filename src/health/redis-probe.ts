/**
 * Redis probe: connects to the pinned address, AUTHs when a password is set,
 * and expects PONG to PING, pipelined with `ROLE` (master is primary, slave
 * is replica): the role comes with every outcome; `expectRole` also fails the
 * probe on the other role. A new connection per probe, closed at once,
 * without ioredis' reconnects, offline queue or ready check: one probe is
 * one attempt, bounded by the engine's deadline.
 *
 * The address is an IP the engine resolved and the destination policy
 * allowed; ioredis connects to it as given (it resolves names only in
 * cluster mode, not used here).
 */
import { Redis } from "ioredis";
import { type DatabaseProbeContext, databaseTls, roleMismatch } from "./postgres-probe.ts";
import { classifyError, fail, type Outcome, ok, Reason } from "./reasons.ts";
import type { DatabaseRole, RedisProbeSpec } from "./types.ts";

function classifyRedis(err: unknown, ctx: DatabaseProbeContext, socketError: unknown): Outcome {
  if (ctx.signal.aborted) return classifyError(ctx.signal.reason, ctx.signal);
  // A failed connect rejects with "Connection is closed."; the socket's own error says why.
  const e = (socketError ?? err) as { code?: unknown; message?: unknown };
  const message = typeof e?.message === "string" ? e.message : String(e);
  if (/^(WRONGPASS|NOAUTH|NOPERM)\b|invalid (username-)?password/i.test(message))
    return fail(Reason.AuthenticationFailed, message);
  if (/^[A-Z]+ /.test(message) && typeof e?.code !== "string") return fail(Reason.DatabaseError, message); // a server error reply: LOADING, MASTERDOWN, BUSY...
  return classifyError(e, ctx.signal);
}

export function redisProbe(p: RedisProbeSpec, ctx: DatabaseProbeContext): Promise<Outcome> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(classifyError(ctx.signal.reason, ctx.signal));
      return;
    }
    const client = new Redis({
      host: ctx.address,
      port: ctx.port,
      ...(p.username ? { username: p.username } : {}),
      ...(p.password !== undefined ? { password: p.password } : {}),
      ...(p.tls ? { tls: databaseTls(p.tls, ctx.host) } : {}),
      lazyConnect: true,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      reconnectOnError: () => false,
      autoResubscribe: false,
      // The engine's deadline bounds the probe; ioredis' own timeout only as a backstop.
      connectTimeout: 60_000,
      connectionName: "roster-probe",
    });
    let socketError: unknown;
    let settled = false;
    const settle = (o: Outcome) => {
      if (settled) return;
      settled = true;
      ctx.signal.onabort = undefined;
      client.disconnect();
      resolve(o);
    };
    client.on("error", (err: unknown) => {
      socketError ??= err;
    });
    ctx.signal.onabort = () => settle(classifyError(ctx.signal.reason, ctx.signal));
    const run = async (): Promise<Outcome> => {
      await client.connect();
      // PING and ROLE in one write, one round trip: the role comes with every
      // probe. A server that refuses ROLE (an ACL without it) is still healthy
      // with an unknown role, unless the probe expects one.
      const replies = (await client.pipeline().ping().call("ROLE").exec()) ?? [];
      const [pingErr, pong] = replies[0] ?? [new Error("no reply to PING")];
      if (pingErr) throw pingErr;
      if (pong !== "PONG") return fail(Reason.ResponseMismatch, `PING answered ${JSON.stringify(pong)}`);
      const [roleErr, reply] = replies[1] ?? [new Error("no reply to ROLE")];
      const first = roleErr ? undefined : (reply as unknown[] | undefined)?.[0];
      const role: DatabaseRole | undefined =
        first === "master" ? "primary" : first === "slave" ? "replica" : undefined;
      if (!p.expectRole) return role ? { ...ok(`PONG, ${role}`), role } : ok("PONG");
      if (roleErr) throw roleErr;
      if (!role) return fail(Reason.ResponseMismatch, `ROLE answered ${JSON.stringify(first)}`);
      if (role !== p.expectRole) return { ...roleMismatch(p.expectRole, role), role };
      return { ...ok(`PONG, ${role}`), role };
    };
    run().then(settle, (err: unknown) => settle(classifyRedis(err, ctx, socketError)));
  });
}
