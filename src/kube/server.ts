/**
 * The HTTP endpoints every replica serves, leader or not: `/healthz`
 * (liveness), `/readyz` (readiness) and `/metrics` (Prometheus).
 *
 * Checks are named functions returning `undefined` when fine or a reason
 * when not; the answer is 200 `ok` or 503 listing the failing checks, in the
 * Kubernetes `[+]name ok` / `[-]name failed: reason` style with `?verbose`.
 *
 * Guarantees: `close()` stops accepting connections and resolves once the
 * server is closed (idle keep-alive connections are dropped); a check that
 * throws counts as failed, never crashes the server; the bound port is
 * reported (port 0 picks a free one, for tests). With `authorize`, /metrics
 * answers only requests it lets through (401/403 otherwise); health paths
 * never ask for credentials (the kubelet has none). With `tls`, HTTPS; the
 * files are polled (tls-files.ts): a renewed certificate is used for new
 * connections (`setSecureContext`), a bad one refused, the last good served.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { type Clock, systemClock } from "../util/clock.ts";
import { type Logger, silentLogger } from "./log.ts";
import type { MetricsAuthorizer } from "./metrics-auth.ts";
import { type TlsWatch, watchTlsFiles } from "./tls-files.ts";

export type Check = () => string | undefined | Promise<string | undefined>;

export interface Checks {
  healthz: Map<string, Check>;
  readyz: Map<string, Check>;
}

export interface EndpointServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  port: number;
  host?: string;
  /** Serve /healthz and /readyz from these checks. */
  checks?: Checks;
  /** Serve /metrics from this registry. */
  registry?: Registry;
  /** Who may read /metrics; undefined: anyone who can connect. */
  authorize?: MetricsAuthorizer;
  /** Serve HTTPS with this PEM certificate and key (files, read at listen time and polled). */
  tls?: { certFile: string; keyFile: string };
  /** How often the TLS files are polled for a renewal (default 10 s). */
  tlsPollMs?: number;
  clock?: Clock;
  logger?: Logger;
}

async function runChecks(checks: Map<string, Check>): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  let ok = true;
  for (const [name, check] of checks) {
    let reason: string | undefined;
    try {
      reason = await check();
    } catch (err) {
      reason = String(err);
    }
    if (reason === undefined) lines.push(`[+]${name} ok`);
    else {
      ok = false;
      lines.push(`[-]${name} failed: ${reason}`);
    }
  }
  return { ok, lines };
}

async function handle(req: IncomingMessage, res: ServerResponse, o: ServeOptions): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  if (o.registry && path === "/metrics") {
    const denied = await o.authorize?.(req.headers.authorization);
    if (denied) {
      res.writeHead(denied.status, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(`${denied.message}\n`);
      return;
    }
    const body = await o.registry.metrics();
    res.writeHead(200, { "Content-Type": o.registry.contentType });
    res.end(body);
    return;
  }
  if (o.checks && (path === "/healthz" || path === "/readyz" || path === "/livez")) {
    const { ok, lines } = await runChecks(path === "/readyz" ? o.checks.readyz : o.checks.healthz);
    const verbose = url.searchParams.has("verbose");
    res.writeHead(ok ? 200 : 503, { "Content-Type": "text/plain; charset=utf-8" });
    if (ok) res.end(verbose ? `${lines.join("\n")}\n${path.slice(1)} check passed\n` : "ok");
    else res.end(`${lines.join("\n")}\n${path.slice(1)} check failed\n`);
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
}

export async function serveEndpoints(o: ServeOptions): Promise<EndpointServer> {
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, o).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  };
  let tls: TlsWatch | undefined;
  if (o.tls) {
    try {
      tls = watchTlsFiles({
        files: o.tls,
        server: "metrics",
        clock: o.clock ?? systemClock,
        logger: o.logger ?? silentLogger(),
        registry: o.registry,
        intervalMs: o.tlsPollMs,
      });
    } catch (err) {
      throw new Error(`cannot serve /metrics over HTTPS: ${(err as Error).message}`);
    }
  }
  let server: Server;
  if (tls) {
    const https = createTlsServer({ cert: tls.current().cert, key: tls.current().key }, listener);
    tls.onChange((set) => https.setSecureContext({ cert: set.cert, key: set.key }));
    server = https;
  } else server = createServer(listener);
  const host = o.host ?? "0.0.0.0";
  try {
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => reject(listenError(err, host, o));
      server.once("error", failed);
      server.listen(o.port, host, () => {
        server.off("error", failed);
        resolve();
      });
    });
  } catch (err) {
    tls?.stop();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        tls?.stop();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** "cannot serve /metrics on 0.0.0.0:8080: the port is in use (...)": what, where, and what to change. */
function listenError(err: NodeJS.ErrnoException, host: string, o: ServeOptions): Error {
  const what = [o.checks && "/healthz and /readyz", o.registry && "/metrics"].filter(Boolean).join(" and ");
  const why =
    err.code === "EADDRINUSE"
      ? "the port is in use (another roster? choose another port in the config or with --metrics-port/--health-port)"
      : err.message;
  return Object.assign(new Error(`cannot serve ${what} on ${host}:${o.port}: ${why}`), { code: err.code });
}
