/**
 * A small REST client for the Kubernetes API, built on a KubeConfig.
 *
 * Everything in src/kube talks to the cluster through the `KubeClient`
 * interface, so a caller (or a test) injects the cluster by injecting a
 * KubeConfig. Requests go through client-node's own fetch stack
 * (`IsomorphicFetchHttpLibrary` + `kc.applySecurityAuthentication`), so every
 * auth method a kubeconfig can express works, and bodies stay raw JSON (no
 * model classes, no Date conversion).
 *
 * Guarantees:
 * - Credentials are applied on every request (rotating tokens keep working);
 *   the connection pool (undici dispatcher) is created once per client and
 *   reused, where client-node 2.0.1 creates a new one per request.
 * - A non-2xx answer rejects with an `ApiError` carrying the HTTP status and
 *   the `Status` reason the API server sent; no other error type is invented.
 * - undici (client-node's HTTP stack) speaks HTTP/2 to the API server, so all
 *   requests and watches of a client share one TCP connection. A connection
 *   that dies silently (no FIN/RST) would stall every one of them; `recover()`
 *   is the health check for that case (client-go pings HTTP/2 connections for
 *   the same reason): an informer whose watch went silent calls it, and a
 *   connection that cannot answer a trivial GET is dropped and redialled.
 * - Every `request()` (everything but watches) is bounded by
 *   `requestTimeoutMs` (default 30 s), response body included, on top of the
 *   caller's signal: no reconcile can hang on a request forever. A timeout
 *   rejects with a `RequestTimeoutError` (retryable: a plain Error, not a
 *   TerminalError); the caller's own abort rejects with its abort reason.
 * - `stream()` yields one string per newline-terminated line and stops when
 *   the server closes the response or `close()` is called; `close()` is
 *   idempotent and makes the iterator finish without throwing.
 */
import type { KubeConfig } from "@kubernetes/client-node";
// Deep imports: the package root loads every generated API and model (lean-client-node.ts).
import {
  HttpMethod,
  RequestContext,
  type ResponseContext,
} from "@kubernetes/client-node/dist/gen/http/http.js";
import { IsomorphicFetchHttpLibrary } from "@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface KubeRequest {
  method: Method;
  /** Path below the server URL, e.g. `/api/v1/namespaces/x/configmaps`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Serialized as JSON unless it is already a string. */
  body?: unknown;
  /** Default `application/json`; patches must say which patch they are. */
  contentType?: string;
  signal?: AbortSignal;
}

export interface KubeStream {
  lines: AsyncIterable<string>;
  close(): void;
}

export interface RequestInfo {
  method: Method;
  path: string;
  /** HTTP status, or 0 when no response came back. */
  status: number;
  durationMs: number;
}

export interface KubeClient {
  /** Parsed JSON body of a 2xx response. */
  request<T = unknown>(req: KubeRequest): Promise<T>;
  /** A streaming GET (watches). Rejects with ApiError on a non-200 status. */
  stream(req: KubeRequest): Promise<KubeStream>;
  /**
   * Checks that the connection still answers (GET /version within
   * `timeoutMs`); if it does not, drops the connection pool so the next
   * request dials a new connection. Resolves true if the pool was dropped.
   */
  recover?(timeoutMs?: number): Promise<boolean>;
}

export interface KubeClientOptions {
  /** Called after every request (metrics). */
  onRequest?: (info: RequestInfo) => void;
  /** Bound on each non-watch request, response body included (default 30 s). */
  requestTimeoutMs?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** The API server's `Status` object, as far as we read it. */
export interface StatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { field?: string; message?: string; reason?: string }[];
  };
}

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly body: StatusBody | string;
  constructor(status: number, body: StatusBody | string, what: string) {
    const reason = typeof body === "object" ? (body.reason ?? "") : "";
    const message = typeof body === "object" ? (body.message ?? "") : body.slice(0, 500);
    super(`${what}: ${status}${reason ? ` ${reason}` : ""}${message ? `: ${message}` : ""}`);
    this.name = "ApiError";
    this.status = status;
    this.reason = reason;
    this.body = body;
  }
}

/**
 * No complete response within the request timeout (the API server or the
 * connection to it stalled). Retryable: the next attempt may well succeed.
 */
export class RequestTimeoutError extends Error {
  readonly timeoutMs: number;
  readonly retryable = true;
  constructor(what: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(
      `${what}: no complete response from the API server within ${timeoutMs} ms (request timeout)`,
      options,
    );
    this.name = "RequestTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

export const isRequestTimeout = (err: unknown): boolean => err instanceof RequestTimeoutError;

export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.status === 409;
export const isForbidden = (err: unknown): boolean => err instanceof ApiError && err.status === 403;
export const isAlreadyExists = (err: unknown): boolean =>
  err instanceof ApiError && err.status === 409 && err.reason === "AlreadyExists";
/** 410 Gone / reason Expired: a resourceVersion or continue token is too old. */
export const isGone = (err: unknown): boolean =>
  err instanceof ApiError && (err.status === 410 || err.reason === "Expired" || err.reason === "Gone");

export function kubeClient(kc: KubeConfig, options: KubeClientOptions = {}): KubeClient {
  const http = new IsomorphicFetchHttpLibrary();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const server = cluster.server.replace(/\/+$/, "");
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  let dispatcher: ReturnType<RequestContext["getDispatcher"]>;
  let dispatcherReady = false;

  async function send(req: KubeRequest): Promise<ResponseContext> {
    const url = new URL(server + req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const ctx = new RequestContext(url.toString(), HttpMethod[req.method]);
    await kc.applySecurityAuthentication(ctx);
    if (dispatcherReady) {
      if (dispatcher) ctx.setDispatcher(dispatcher);
    } else {
      dispatcher = ctx.getDispatcher();
      dispatcherReady = true;
    }
    ctx.setHeaderParam("Accept", "application/json");
    if (req.body !== undefined) {
      ctx.setHeaderParam("Content-Type", req.contentType ?? "application/json");
      ctx.setBody(typeof req.body === "string" ? req.body : JSON.stringify(req.body));
    }
    if (req.signal) ctx.setSignal(req.signal);
    const started = performance.now();
    let status = 0;
    try {
      const res = await http.send(ctx).toPromise();
      status = res.httpStatusCode;
      return res;
    } finally {
      options.onRequest?.({
        method: req.method,
        path: req.path,
        status,
        durationMs: performance.now() - started,
      });
    }
  }

  async function fail(res: ResponseContext, req: KubeRequest): Promise<never> {
    const text = await res.body.text().catch(() => "");
    let body: StatusBody | string = text;
    try {
      body = JSON.parse(text) as StatusBody;
    } catch {
      // not JSON: keep the text
    }
    throw new ApiError(res.httpStatusCode, body, `${req.method} ${req.path}`);
  }

  let checking: Promise<boolean> | undefined;

  const client: KubeClient = {
    recover(timeoutMs = 5000) {
      checking ??= (async () => {
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(new Error("connection check timed out")), timeoutMs);
        try {
          await client.request({ method: "GET", path: "/version", signal: ac.signal });
          return false;
        } catch (err) {
          // Any HTTP answer proves the connection works; only silence or a transport error condemns it.
          if (err instanceof ApiError) return false;
          const stale = dispatcher;
          dispatcher = undefined;
          dispatcherReady = false;
          if (stale) void stale.destroy().catch(() => undefined);
          return true;
        } finally {
          clearTimeout(timer);
          checking = undefined;
        }
      })();
      return checking;
    },

    async request<T>(req: KubeRequest): Promise<T> {
      // A timer cancelled when the request ends (AbortSignal.timeout's is not: every request
      // would wake the process once more, timeoutMs later).
      const ac = new AbortController();
      const timeout = ac.signal;
      const timer = setTimeout(
        () => ac.abort(new DOMException("request timed out", "TimeoutError")),
        timeoutMs,
      );
      timer.unref();
      const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
      try {
        // The signal also aborts reading the body: a server that sends headers and then stalls is covered.
        const res = await send({ ...req, signal });
        if (res.httpStatusCode < 200 || res.httpStatusCode >= 300) return await fail(res, req);
        const text = await res.body.text();
        return (text ? JSON.parse(text) : undefined) as T;
      } catch (err) {
        // The caller's abort wins: it is theirs to interpret (shutdown, their own deadline).
        if (timeout.aborted && !req.signal?.aborted && !(err instanceof ApiError)) {
          throw new RequestTimeoutError(`${req.method} ${req.path}`, timeoutMs, { cause: err });
        }
        throw err;
      } finally {
        clearTimeout(timer);
      }
    },

    async stream(req: KubeRequest): Promise<KubeStream> {
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort();
      if (req.signal?.aborted) abort.abort();
      req.signal?.addEventListener("abort", onOuterAbort, { once: true });
      let res: ResponseContext;
      try {
        res = await send({ ...req, signal: abort.signal });
      } catch (err) {
        req.signal?.removeEventListener("abort", onOuterAbort);
        throw err;
      }
      if (res.httpStatusCode !== 200) {
        req.signal?.removeEventListener("abort", onOuterAbort);
        return fail(res, req);
      }
      const body = res.body.stream();
      const close = () => {
        req.signal?.removeEventListener("abort", onOuterAbort);
        abort.abort();
      };
      return { lines: body ? splitLines(body, abort.signal) : emptyLines(), close };
    },
  };
  return client;
}

async function* emptyLines(): AsyncIterable<string> {}

async function* splitLines(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncIterable<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      if (chunk.done) break;
      buffered += decoder.decode(chunk.value, { stream: true });
      let start = 0;
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(start, nl);
        if (line.trim()) yield line;
        start = nl + 1;
        nl = buffered.indexOf("\n", start);
      }
      buffered = buffered.slice(start);
    }
    buffered += decoder.decode();
    if (buffered.trim()) yield buffered;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
