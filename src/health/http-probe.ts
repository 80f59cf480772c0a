/**
 * HTTP(S) probe, on the minimal HTTP/1.1 client in http1.ts.
 *
 * Safe against servers the operator does not control:
 * - the whole probe (connect, TLS, head, body) is bounded by the caller's
 *   ProbeSignal, which destroys the socket: a server that accepts and then
 *   trickles header bytes or never answers cannot hold a probe past its
 *   deadline;
 * - the verdict is taken on the status line; the body is read only for
 *   `bodyMatch`, up to `maxBodyBytes`, and never buffered beyond that; the
 *   rest of a small body is read (not kept) so the connection can be reused,
 *   anything larger closes the connection;
 * - redirects are not followed unless asked, and each hop is checked against
 *   the destination policy before any connection; once a redirect leaves the
 *   probe's origin (scheme, host or port), credentials are no longer sent
 *   (Authorization, Proxy-Authorization, Cookie, Secret-backed headers and a
 *   configured Host), as browsers and curl do.
 */
import { isIP, type Socket } from "node:net";
import { type BodyMatcher, bodyMatcher } from "./body-match.ts";
import { withCertExpiry } from "./cert-expiry.ts";
import type { ConnectionPool } from "./http1.ts";
import { type ResponseHead, ResponseReader } from "./http1.ts";
import { classifyError, degraded, fail, type Outcome, ok, Reason } from "./reasons.ts";
import type { ProbeSignal } from "./signal.ts";
import type { HttpProbeSpec, StatusRange, TlsSpec } from "./types.ts";

export const defaultStatuses: readonly StatusRange[] = [{ from: 200, to: 399 }];
const defaultMaxBody = 4096;
const maxBodyCap = 65536;
/** Bodies up to this size are read to the end so that the connection can be reused. */
const drainLimit = 65536;
const maxRedirects = 5;
/** How long an idle connection waits for the next probe unless the server says less. */
const idleTimeoutMs = 30_000;

export interface HttpProbeContext {
  /** IP address to connect to. */
  address: string;
  /** The target's host as written (a DNS name or an IP): Host header and default TLS server name. */
  host: string;
  port: number;
  signal: ProbeSignal;
}

export interface HttpProbeDeps {
  pool: ConnectionPool;
  /** Resolves a redirect's host and applies the destination policy; an Outcome means refused. */
  resolveAllowed(host: string): Promise<{ address: string } | Outcome>;
}

function hostHeader(host: string, port: number, https: boolean): string {
  const name = isIP(host) === 6 ? `[${host}]` : host;
  return port === (https ? 443 : 80) ? name : `${name}:${port}`;
}

function statusOk(status: number, ranges: readonly StatusRange[]): boolean {
  for (const r of ranges) if (status >= r.from && status <= r.to) return true;
  return false;
}

function describeRanges(ranges: readonly StatusRange[]): string {
  return ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(", ");
}

/** A passing response: degraded when it carries a Warning header and the probe asks to look. */
function success(spec: HttpProbeSpec, head: ResponseHead, message: string): Outcome {
  if (spec.degradeOnWarning && head.warning !== undefined)
    return degraded(Reason.WarningHeader, `${message}; Warning: ${head.warning}`);
  return ok(message);
}

interface Hop {
  address: string;
  host: string;
  port: number;
  path: string;
  https: boolean;
  /** A redirect left the first hop's origin: credentials stay behind (for the rest of the chain). */
  foreign: boolean;
}

/** Headers never sent to another origin than the probe's, besides those whose values came from Secrets. */
const credentialHeaders = new Set(["authorization", "proxy-authorization", "cookie", "host"]);

const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const fieldValue = /^[\t\x20-\x7e\x80-\xff]*$/;
const requestTarget = /^\/[\x21-\x7e]*$/;

/** The request bytes, or why the spec cannot be sent (no CR/LF smuggling through user-written fields). */
function buildRequest(spec: HttpProbeSpec, hop: Hop): string | Outcome {
  const method = spec.method ?? "GET";
  if (!token.test(method)) return fail(Reason.InvalidProbe, `invalid HTTP method ${JSON.stringify(method)}`);
  if (!requestTarget.test(hop.path))
    return fail(Reason.InvalidProbe, `invalid path ${JSON.stringify(hop.path)}`);
  let text = `${method} ${hop.path} HTTP/1.1\r\n`;
  let hasHost = false;
  let hasAgent = false;
  let hasAccept = false;
  const secret = hop.foreign ? new Set(spec.secretHeaders?.map((n) => n.toLowerCase())) : undefined;
  for (const [name, value] of Object.entries(spec.headers ?? {})) {
    if (!token.test(name) || !fieldValue.test(value)) {
      return fail(Reason.InvalidProbe, `invalid header ${JSON.stringify(name)}`);
    }
    const lower = name.toLowerCase();
    if (secret && (credentialHeaders.has(lower) || secret.has(lower))) continue;
    if (lower === "host") hasHost = true;
    else if (lower === "user-agent") hasAgent = true;
    else if (lower === "accept") hasAccept = true;
    else if (lower === "connection" || lower === "content-length" || lower === "transfer-encoding") continue;
    text += `${name}: ${value}\r\n`;
  }
  if (!hasHost) text += `Host: ${hostHeader(hop.host, hop.port, hop.https)}\r\n`;
  if (!hasAgent) text += "User-Agent: roster-probe/1\r\n";
  if (!hasAccept) text += "Accept: */*\r\n";
  return `${text}\r\n`;
}

/** The request of a target's first hop is the same every time: built once per spec. */
const requestCache = new WeakMap<HttpProbeSpec, { hop: string; request: string | Outcome }>();

function requestFor(spec: HttpProbeSpec, hop: Hop, first: boolean): string | Outcome {
  if (!first) return buildRequest(spec, hop);
  const hopKey = `${hop.host}|${hop.port}|${hop.https}`;
  const cached = requestCache.get(spec);
  if (cached?.hop === hopKey) return cached.request;
  const request = buildRequest(spec, hop);
  requestCache.set(spec, { hop: hopKey, request });
  return request;
}

/** Short ids for TLS settings (by object), so that connection pool keys stay short strings. */
const tlsIds = new WeakMap<TlsSpec, number>();
let nextTlsId = 1;
export function tlsId(tls: TlsSpec | undefined): number {
  if (!tls) return 0;
  let id = tlsIds.get(tls);
  if (id === undefined) {
    id = nextTlsId++;
    tlsIds.set(tls, id);
  }
  return id;
}

export async function httpProbe(
  spec: HttpProbeSpec,
  ctx: HttpProbeContext,
  deps: HttpProbeDeps,
): Promise<Outcome> {
  let hop: Hop = {
    address: ctx.address,
    host: ctx.host,
    port: ctx.port,
    path: spec.path || "/",
    https: spec.scheme === "HTTPS",
    foreign: false,
  };
  let retried = false;
  for (let redirects = 0; ; redirects++) {
    const result = await oneRequest(spec, hop, redirects === 0, ctx.signal, deps, retried);
    if ("staleSocket" in result) {
      // The server closed an idle keep-alive connection just as we reused it: retry on a new one.
      if (retried) return fail(Reason.ConnectionReset, "connection closed without a response");
      retried = true;
      redirects--;
      continue;
    }
    if (!("location" in result)) return result;
    if (redirects >= maxRedirects)
      return fail(Reason.TooManyRedirects, `more than ${maxRedirects} redirects`);
    let url: URL;
    try {
      const base = `${hop.https ? "https" : "http"}://${hostHeader(hop.host, hop.port, hop.https)}${hop.path}`;
      url = new URL(result.location, base);
    } catch {
      return fail(Reason.ProtocolError, `invalid redirect location ${JSON.stringify(result.location)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return fail(Reason.ProtocolError, `redirect to unsupported scheme ${url.protocol}`);
    }
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    const https = url.protocol === "https:";
    const port = url.port ? Number(url.port) : https ? 443 : 80;
    const sameHost = host.toLowerCase() === hop.host.toLowerCase();
    const foreign = hop.foreign || !sameHost || port !== hop.port || https !== hop.https;
    let address = hop.address;
    if (!sameHost) {
      const allowed = await deps.resolveAllowed(host);
      if (!("address" in allowed)) return allowed;
      address = allowed.address;
    }
    if (ctx.signal.aborted) return classifyError(ctx.signal.reason, ctx.signal);
    hop = { address, host, port, path: `${url.pathname}${url.search}`, https, foreign };
  }
}

type Result = Outcome | { location: string } | { staleSocket: true };

function oneRequest(
  spec: HttpProbeSpec,
  hop: Hop,
  first: boolean,
  signal: ProbeSignal,
  deps: HttpProbeDeps,
  fresh: boolean,
): Promise<Result> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(classifyError(signal.reason, signal));
      return;
    }
    const request = requestFor(spec, hop, first);
    if (typeof request !== "string") {
      resolve(request);
      return;
    }
    const tls = spec.tls;
    const serverName = tls?.serverName ?? (isIP(hop.host) === 0 ? hop.host : undefined);
    const key = `${hop.https ? "s" : "h"}|${hop.address}|${hop.port}|${hop.https ? `${serverName ?? ""}|${tlsId(tls)}` : ""}`;
    const limit = Math.min(Math.max(1, spec.maxBodyBytes ?? defaultMaxBody), maxBodyCap);
    let made: BodyMatcher | undefined;
    try {
      made = bodyMatcher(spec, limit);
    } catch (err) {
      resolve(fail(Reason.InvalidProbe, `bodyMatch regex: ${(err as Error).message}`));
      return;
    }
    let conn: { socket: Socket; reused: boolean };
    try {
      const options = { address: hop.address, port: hop.port };
      const tlsOptions = {
        serverName,
        ca: tls?.caBundle,
        rejectUnauthorized: !tls?.insecureSkipVerify,
        cert: tls?.clientCert?.cert,
        key: tls?.clientCert?.key,
      };
      conn = deps.pool.get(key, hop.https ? { ...options, tls: tlsOptions } : options, fresh);
    } catch (err) {
      resolve(classifyError(err, signal));
      return;
    }
    const { socket, reused } = conn;
    const method = spec.method ?? "GET";
    const needle = made;
    // Incremental and linear in the bytes read (body-match.ts): a server's framing cannot make it quadratic.
    const reader = new ResponseReader(method, needle ? (bytes) => needle.push(bytes) : undefined);
    let decided: Result | undefined;
    let gotBytes = false;
    let finished = false;

    const finish = (o: Result | undefined, keep: boolean) => {
      if (finished) return;
      finished = true;
      // Read the peer certificate before the socket may be destroyed below.
      const settled = decided ?? o ?? fail(Reason.ProtocolError, "no response");
      const warningMs = hop.https ? tls?.expiryWarningMs : undefined;
      const result =
        warningMs !== undefined && "ok" in settled ? withCertExpiry(settled, socket, warningMs) : settled;
      signal.onabort = undefined;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      const head = reader.head;
      if (keep && head) {
        const hint = head.keepAliveTimeoutMs;
        deps.pool.put(key, socket, hint === undefined ? idleTimeoutMs : hint - 1000);
      } else {
        socket.destroy();
      }
      resolve(result);
    };

    /** Takes the verdict as soon as it is known, then waits only as long as reuse needs. */
    const progress = () => {
      const head = reader.head;
      if (!head) return;
      if (!decided) {
        const ranges = spec.expectedStatuses ?? defaultStatuses;
        if (spec.followRedirects && head.status >= 300 && head.status < 400 && head.location) {
          decided = { location: head.location };
        } else if (spec.degradedStatuses && statusOk(head.status, spec.degradedStatuses)) {
          // Working but asking for less (429, 503 with Retry-After...): the body check is for
          // the normal answer, not this one.
          const text = head.reason ? ` ${head.reason}` : "";
          decided = degraded(Reason.DegradedStatus, `HTTP ${head.status}${text} (a degraded status)`);
        } else if (!statusOk(head.status, ranges)) {
          const text = head.reason ? ` ${head.reason}` : "";
          decided = fail(
            Reason.HTTPStatus,
            `HTTP ${head.status}${text} (expected ${describeRanges(ranges)})`,
          );
        } else if (!needle) {
          decided = success(spec, head, `HTTP ${head.status}`);
        } else if (needle.matched || ((needle.bytes >= limit || reader.done) && needle.end())) {
          decided = success(spec, head, `HTTP ${head.status}, body matched`);
        } else if (needle.bytes >= limit) {
          const m = `HTTP ${head.status}: the first ${limit} bytes of the body do not match ${spec.bodyRegex ? "the expected pattern" : "the expected text"}`;
          decided = fail(Reason.BodyMismatch, m);
        } else if (reader.done) {
          const m = `HTTP ${head.status}: the body (${reader.bodyBytes} bytes) does not match ${spec.bodyRegex ? "the expected pattern" : "the expected text"}`;
          decided = fail(Reason.BodyMismatch, m);
        }
      }
      if (!decided) return;
      if (reader.done) finish(undefined, head.keepAlive);
      else if (!head.keepAlive || reader.bodyBytes > drainLimit) finish(undefined, false);
    };

    const onData = (chunk: Buffer) => {
      gotBytes = true;
      if (!reader.push(chunk))
        finish(fail(Reason.ProtocolError, reader.error ?? "malformed response"), false);
      else progress();
    };
    const onError = (err: Error) => {
      const code = (err as { code?: string }).code;
      const stale = reused && !gotBytes && (code === "ECONNRESET" || code === "EPIPE");
      finish(stale ? { staleSocket: true } : classifyError(err, signal), false);
    };
    const onClose = () => {
      if (reused && !gotBytes) {
        finish({ staleSocket: true }, false);
        return;
      }
      if (!gotBytes) {
        finish(fail(Reason.ConnectionReset, "connection closed before any response"), false);
        return;
      }
      reader.eof();
      progress();
      finish(fail(Reason.ProtocolError, reader.error ?? "connection closed during the response"), false);
    };
    signal.onabort = () => finish(classifyError(signal.reason, signal), false);
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.write(request);
  });
}
