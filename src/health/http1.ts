/**
 * A minimal HTTP/1.1 client for probes: one request, the status line, the
 * few headers a probe needs, and a bounded, de-chunked body prefix.
 *
 * Why not node:http: a probe needs a fraction of what ClientRequest and
 * IncomingMessage do (streams, events, full header objects), and at tens of
 * thousands of probes a second that machinery dominates: measured on
 * loopback, node:http costs ~55 µs of CPU per keep-alive probe and ~150 µs
 * per fresh connection, this client ~15-20 µs and ~65-80 µs.
 *
 * It reads untrusted responses defensively: the response head is limited to
 * 16 KiB, a malformed status line or conflicting Content-Length is a
 * ProtocolError, and the body is only framed (never buffered) beyond the
 * caller's limit.
 */
import { connect as netConnect, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

export const maxHeadBytes = 16 * 1024;

export interface ResponseHead {
  status: number;
  reason: string;
  /** Lower-cased names; only the headers a probe uses. */
  location?: string;
  /** The first `Warning` header's value (RFC 9111 §5.5: a "degraded" hint some servers send). */
  warning?: string;
  /** The connection may be reused after this response. */
  keepAlive: boolean;
  /** From `Keep-Alive: timeout=N`, in ms. */
  keepAliveTimeoutMs?: number;
}

type Framing = "none" | "length" | "chunked" | "close";

const CR = 13;
const LF = 10;

/**
 * Incremental response reader: feed it socket chunks; it reports the head
 * (after skipping 1xx interim responses), the decoded body bytes, and the end
 * of the message.
 */
export class ResponseReader {
  head: ResponseHead | undefined = undefined;
  done = false;
  error: string | undefined = undefined;
  /** Body bytes (after de-chunking) seen so far. */
  bodyBytes = 0;
  private pending: Buffer | undefined = undefined;
  private framing: Framing = "none";
  private remaining = 0;
  private chunkState: "size" | "data" | "dataEnd" | "trailer" = "size";
  private line = "";
  private readonly noBody: boolean;
  private readonly onBody: ((bytes: Buffer) => void) | undefined;

  constructor(method: string, onBody?: (bytes: Buffer) => void) {
    this.noBody = method === "HEAD";
    this.onBody = onBody;
  }

  /** Feeds bytes; returns false once an error was found. */
  push(chunk: Buffer): boolean {
    if (this.error || this.done) return !this.error;
    let data = chunk;
    if (!this.head) {
      data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.pending = undefined;
      for (;;) {
        const end = headEnd(data);
        if (end < 0) {
          if (data.length > maxHeadBytes) return this.fail(`response head exceeds ${maxHeadBytes} bytes`);
          this.pending = data;
          return true;
        }
        if (end > maxHeadBytes) return this.fail(`response head exceeds ${maxHeadBytes} bytes`);
        const parsed = this.parseHead(data.toString("latin1", 0, data[end - 1] === CR ? end - 1 : end));
        if (!parsed) return false;
        data = data.subarray(skipCrlf(data, end));
        // 1xx interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101) continue;
        this.head = parsed;
        break;
      }
    }
    return this.body(data);
  }

  /** The connection closed: ends a read-until-close body, or is an error if the message was incomplete. */
  eof(): void {
    if (this.done || this.error) return;
    if (this.head && this.framing === "close") this.done = true;
    else this.fail("connection closed before the response was complete");
  }

  private fail(message: string): false {
    this.error = message;
    return false;
  }

  private parseHead(text: string): ResponseHead | undefined {
    const lines = text.split(/\r?\n/);
    const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
    if (!m) {
      this.fail(`malformed status line ${JSON.stringify((lines[0] ?? "").slice(0, 40))}`);
      return undefined;
    }
    const http10 = m[1] === "0";
    const status = Number(m[2]);
    let contentLength: number | undefined;
    let chunked = false;
    let transferEncoding = false;
    let connection = "";
    let location: string | undefined;
    let warning: string | undefined;
    let keepAliveTimeoutMs: number | undefined;
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const colon = l.indexOf(":");
      if (colon <= 0) continue;
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      if (name === "content-length") {
        const n = /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
        if (Number.isNaN(n) || (contentLength !== undefined && contentLength !== n)) {
          this.fail("invalid or conflicting Content-Length");
          return undefined;
        }
        contentLength = n;
      } else if (name === "transfer-encoding") {
        transferEncoding = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      } else if (name === "connection") {
        connection += `${value.toLowerCase()},`;
      } else if (name === "location") {
        location = value;
      } else if (name === "warning") {
        warning ??= value;
      } else if (name === "keep-alive") {
        const t = /timeout=(\d+)/i.exec(value);
        if (t) keepAliveTimeoutMs = Number(t[1]) * 1000;
      }
    }
    if (status >= 100 && status < 200) {
      // An interim response is skipped by the caller; 101 (protocol switch) ends HTTP on this connection.
      if (status === 101) this.done = true;
      return { status, reason: m[3] ?? "", keepAlive: false };
    }
    if (this.noBody || status === 204 || status === 304) this.framing = "none";
    else if (transferEncoding) this.framing = chunked ? "chunked" : "close";
    else if (contentLength !== undefined) {
      this.framing = "length";
      this.remaining = contentLength;
    } else this.framing = "close";
    if (this.framing === "length" && this.remaining === 0) this.framing = "none";
    const close = /(?:^|,)\s*close\s*,/.test(connection);
    const keep = /(?:^|,)\s*keep-alive\s*,/.test(connection);
    const head: ResponseHead = {
      status,
      reason: m[3] ?? "",
      keepAlive: this.framing !== "close" && !close && (!http10 || keep),
    };
    if (location !== undefined) head.location = location;
    if (warning !== undefined) head.warning = warning;
    if (keepAliveTimeoutMs !== undefined) head.keepAliveTimeoutMs = keepAliveTimeoutMs;
    if (this.framing === "none") this.done = true;
    return head;
  }

  private emit(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.bodyBytes += bytes.length;
    this.onBody?.(bytes);
  }

  private body(data: Buffer): boolean {
    if (this.done) {
      // Bytes after a complete response: the server is not speaking HTTP/1.1 as we asked.
      if (data.length > 0 && this.head) this.head.keepAlive = false;
      return true;
    }
    if (this.framing === "close") {
      this.emit(data);
      return true;
    }
    if (this.framing === "length") {
      const take = Math.min(this.remaining, data.length);
      this.emit(data.subarray(0, take));
      this.remaining -= take;
      if (this.remaining === 0) {
        this.done = true;
        return this.body(data.subarray(take));
      }
      return true;
    }
    return this.chunks(data);
  }

  /** Transfer-Encoding: chunked, one state at a time; chunk-size lines are bounded. */
  private chunks(data: Buffer): boolean {
    let i = 0;
    while (i < data.length && !this.done) {
      if (this.chunkState === "data") {
        const take = Math.min(this.remaining, data.length - i);
        this.emit(data.subarray(i, i + take));
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.chunkState = "dataEnd";
        continue;
      }
      const b = data[i++]!;
      if (b === CR) continue;
      if (b !== LF) {
        if (this.chunkState === "dataEnd") return this.fail("malformed chunked encoding");
        this.line += String.fromCharCode(b);
        if (this.line.length > 1024) return this.fail("chunk header line too long");
        continue;
      }
      // End of a line.
      if (this.chunkState === "dataEnd") {
        this.chunkState = "size";
      } else if (this.chunkState === "size") {
        const hex = this.line.split(";")[0]!.trim();
        this.line = "";
        if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.fail("malformed chunk size");
        this.remaining = Number.parseInt(hex, 16);
        this.chunkState = this.remaining === 0 ? "trailer" : "data";
      } else {
        // Trailer section: ends with an empty line.
        const empty = this.line.length === 0;
        this.line = "";
        if (empty) this.done = true;
      }
    }
    if (this.done && i < data.length && this.head) this.head.keepAlive = false;
    return true;
  }
}

/** Index of the blank line ending the head (CRLFCRLF, tolerating bare LFs), or -1. */
function headEnd(buf: Buffer): number {
  let from = 0;
  for (;;) {
    const lf = buf.indexOf(LF, from);
    if (lf < 0) return -1;
    if (buf[lf + 1] === LF) return lf;
    if (buf[lf + 1] === CR && buf[lf + 2] === LF) return lf;
    from = lf + 1;
  }
}

/** Position after the blank line that follows `end` (the last LF of the last header line). */
function skipCrlf(buf: Buffer, end: number): number {
  return buf[end + 1] === CR ? end + 3 : end + 2;
}

// --- connections ---------------------------------------------------------------

export interface ConnectOptions {
  address: string;
  port: number;
  tls?: {
    serverName?: string | undefined;
    ca?: string | undefined;
    rejectUnauthorized: boolean;
    /** Client certificate chain and key (mTLS). */
    cert?: string | undefined;
    key?: string | undefined;
  };
}

/** A pooled connection waiting for its next probe. */
interface Idle {
  socket: Socket;
  born: number;
  /** Closed when still idle at this time (the pool's idle timeout or the server's hint). */
  until: number;
}

export interface ConnectionPool {
  /** A pooled connection for `key` (reused: true) or, when there is none or `fresh`, a new one. */
  get(key: string, options: ConnectOptions, fresh?: boolean): { socket: Socket; reused: boolean };
  /** Gives a healthy connection back for reuse; `idleMs` bounds how long it waits. */
  put(key: string, socket: Socket, idleMs: number): void;
  /** Idle connections held; one the server closed counts until the next sweep (at most 5 s). */
  readonly idle: number;
  destroy(): void;
}

export interface PoolOptions {
  keepAlive: boolean;
  /** A connection is reused for at most this long after it was opened. */
  maxAgeMs: number;
  /** Idle connections kept per destination. */
  maxIdlePerKey: number;
  /** Idle connections are closed after this (or the server's Keep-Alive hint, minus a second). */
  idleTimeoutMs: number;
}

/** When a socket was opened, kept on the socket itself (no side table entry per connection). */
const kBorn = Symbol("roster.born");
type PooledSocket = Socket & { [kBorn]?: number };

/**
 * The listener of idle sockets, shared by all of them (no closure per
 * connection): data from the server while nothing was asked, or an error,
 * ends the connection. Closed sockets are dropped by the pool's sweep or
 * when taken.
 */
function destroyIdle(this: Socket): void {
  this.destroy();
}

/** How often idle connections past their idle time or max age are closed. */
const sweepMs = 5_000;

export function connectionPool(o: PoolOptions): ConnectionPool {
  const idle = new Map<string, Idle[]>();
  /** TLS sessions per destination, so that new connections resume instead of a full handshake. */
  const sessions = new Map<string, Buffer>();
  let idleCount = 0;
  // One timer for the whole pool rather than a socket timeout per idle
  // connection: with a connection per target, tens of thousands are idle
  // between probes, and each Node socket timeout is a timer object.
  let sweeper: ReturnType<typeof setInterval> | undefined;

  const stale = (e: Idle, now: number) =>
    e.socket.destroyed || !e.socket.writable || now >= e.until || now - e.born >= o.maxAgeMs;

  const release = (e: Idle) => {
    e.socket.off("data", destroyIdle);
    e.socket.off("error", destroyIdle);
  };

  function sweep(): void {
    const now = Date.now();
    for (const [key, list] of idle) {
      let kept = 0;
      for (const e of list) {
        if (stale(e, now)) {
          release(e);
          e.socket.destroy();
          idleCount--;
        } else list[kept++] = e;
      }
      if (kept === 0) idle.delete(key);
      else list.length = kept;
    }
    if (idleCount === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  return {
    get(key, options, fresh = false) {
      const list = fresh ? undefined : idle.get(key);
      const now = Date.now();
      while (list && list.length > 0) {
        const e = list.pop()!;
        idleCount--;
        if (list.length === 0) idle.delete(key);
        release(e);
        const s = e.socket;
        if (stale(e, now)) {
          s.destroy();
          continue;
        }
        s.ref();
        return { socket: s, reused: true };
      }
      let socket: PooledSocket;
      if (options.tls) {
        const session = sessions.get(key);
        const t: TLSSocket = tlsConnect({
          host: options.address,
          port: options.port,
          servername: options.tls.serverName,
          ca: options.tls.ca,
          rejectUnauthorized: options.tls.rejectUnauthorized,
          cert: options.tls.cert,
          key: options.tls.key,
          session,
          ALPNProtocols: ["http/1.1"],
        });
        t.on("session", (s: Buffer) => {
          if (sessions.size > 10_000) sessions.clear();
          sessions.set(key, s);
        });
        socket = t;
      } else {
        socket = netConnect({ host: options.address, port: options.port });
      }
      socket.setNoDelay(true);
      socket[kBorn] = now;
      return { socket, reused: false };
    },
    put(key, socket: PooledSocket, idleMs) {
      const born = socket[kBorn] ?? 0;
      const now = Date.now();
      if (!o.keepAlive || socket.destroyed || now - born >= o.maxAgeMs) {
        socket.destroy();
        return;
      }
      let list = idle.get(key);
      if (!list) {
        list = [];
        idle.set(key, list);
      }
      if (list.length >= o.maxIdlePerKey) {
        socket.destroy();
        return;
      }
      list.push({ socket, born, until: now + Math.max(1, Math.min(o.idleTimeoutMs, idleMs)) });
      idleCount++;
      socket.on("data", destroyIdle);
      socket.on("error", destroyIdle);
      socket.unref();
      if (!sweeper) {
        sweeper = setInterval(sweep, Math.max(100, Math.min(sweepMs, o.idleTimeoutMs)));
        sweeper.unref();
      }
    },
    get idle() {
      return idleCount;
    },
    destroy() {
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
      for (const list of idle.values()) {
        for (const e of list) {
          release(e);
          e.socket.destroy();
        }
      }
      idle.clear();
      idleCount = 0;
      sessions.clear();
    },
  };
}
