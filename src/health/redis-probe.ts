/**
 * Redis probe: connects to the pinned address, AUTHs when a password is set,
 * and expects PONG to PING; with `expectRole` it asks `ROLE` (master is
 * primary, slave is replica). A new connection per probe, closed at once,
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
      const pong = await client.ping();
      if (pong !== "PONG") return fail(Reason.ResponseMismatch, `PING answered ${JSON.stringify(pong)}`);
      if (!p.expectRole) return ok("PONG");
      const reply = (await client.call("ROLE")) as unknown[];
      const role: DatabaseRole | undefined =
        reply?.[0] === "master" ? "primary" : reply?.[0] === "slave" ? "replica" : undefined;
      if (!role) return fail(Reason.ResponseMismatch, `ROLE answered ${JSON.stringify(reply?.[0])}`);
      return role === p.expectRole ? ok(`PONG, ${role}`) : roleMismatch(p.expectRole, role);
    };
    run().then(settle, (err: unknown) => settle(classifyRedis(err, ctx, socketError)));
  });
}
