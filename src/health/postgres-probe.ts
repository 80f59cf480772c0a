/**
 * PostgreSQL probe: opens a session to the pinned address (startup,
 * authentication, `SELECT pg_is_in_recovery()`): a primary answers false, a
 * streaming replica true. The role is reported with every outcome (status.role,
 * publish.role); `expectRole` also fails the probe on the other role.
 * A new session per probe, closed at once: what a client sees, including
 * `max_connections` exhaustion and a server still starting (57P03).
 *
 * The address is an IP the engine resolved and the destination policy
 * allowed; `pg` connects to it as given (it resolves names only for the
 * native driver, not used here). The password never falls back to the
 * operator's PGPASSWORD or ~/.pgpass: a function returning it (or "") is
 * what pg uses as is.
 */
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import pg from "pg";
import { classifyError, fail, type Outcome, ok, Reason } from "./reasons.ts";
import type { ProbeSignal } from "./signal.ts";
import type { DatabaseRole, PostgresProbeSpec, TlsSpec } from "./types.ts";

export interface DatabaseProbeContext {
  address: string;
  /** The target's host (a name or the address): the default TLS server name when it is a name. */
  host: string;
  port: number;
  signal: ProbeSignal;
}

/** TLS options of a database client: verify against the CA bundle (or the system roots) unless told not to. */
export function databaseTls(tls: TlsSpec, host: string): ConnectionOptions {
  const servername = tls.serverName ?? (isIP(host) === 0 ? host : undefined);
  return {
    rejectUnauthorized: !tls.insecureSkipVerify,
    ...(tls.caBundle ? { ca: tls.caBundle } : {}),
    ...(tls.clientCert ? { cert: tls.clientCert.cert, key: tls.clientCert.key } : {}),
    ...(servername ? { servername } : {}),
  };
}

/** SQLSTATE classes and codes that say the credentials were refused. */
const AUTH_CODES = new Set(["28000", "28P01"]);

function classifyPg(err: unknown, signal: ProbeSignal): Outcome {
  if (signal.aborted) return classifyError(signal.reason, signal);
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : String(err);
  if (AUTH_CODES.has(code)) return fail(Reason.AuthenticationFailed, `${code}: ${message}`);
  if (/^[0-9A-Z]{5}$/.test(code)) return fail(Reason.DatabaseError, `${code}: ${message}`);
  if (/does not support SSL/i.test(message)) return fail(Reason.TLSError, message);
  return classifyError(err, signal);
}

export function roleMismatch(expected: DatabaseRole, actual: DatabaseRole): Outcome {
  return fail(Reason.RoleMismatch, `the server is a ${actual}, the probe expects a ${expected}`);
}

export function postgresProbe(p: PostgresProbeSpec, ctx: DatabaseProbeContext): Promise<Outcome> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(classifyError(ctx.signal.reason, ctx.signal));
      return;
    }
    const password = p.password ?? "";
    const client = new pg.Client({
      host: ctx.address,
      port: ctx.port,
      user: p.user,
      database: p.database,
      password: () => password,
      ssl: p.tls ? databaseTls(p.tls, ctx.host) : false,
      application_name: "roster-probe",
    });
    let settled = false;
    const settle = (o: Outcome) => {
      if (settled) return;
      settled = true;
      ctx.signal.onabort = undefined;
      client.end().catch(() => {});
      resolve(o);
    };
    // After a failed connect pg may still emit errors on the client: they are this probe's, already settled.
    client.on("error", (err) => settle(classifyPg(err, ctx.signal)));
    ctx.signal.onabort = () => settle(classifyError(ctx.signal.reason, ctx.signal));
    const run = async (): Promise<Outcome> => {
      await client.connect();
      // The role in the same round trip as the health query, on every probe:
      // pg_is_in_recovery() costs what SELECT 1 does and any user may call it.
      const r = await client.query<{ recovery: boolean }>("SELECT pg_is_in_recovery() AS recovery");
      const role: DatabaseRole = r.rows[0]?.recovery ? "replica" : "primary";
      if (p.expectRole && role !== p.expectRole) return { ...roleMismatch(p.expectRole, role), role };
      return { ...ok(`session opened, ${role}`), role };
    };
    run().then(settle, (err: unknown) => settle(classifyPg(err, ctx.signal)));
  });
}
