/**
 * gRPC probe: the standard grpc.health.v1.Health/Check, with @grpc/grpc-js.
 *
 * The two protobuf messages are tiny, so they are encoded by hand here rather
 * than through a protobuf toolchain:
 *   HealthCheckRequest  { string service = 1; }
 *   HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN=0 SERVING=1 NOT_SERVING=2 SERVICE_UNKNOWN=3
 *
 * Channels are cached per destination (address, port, TLS settings) because
 * setting up an HTTP/2 connection per probe is costly; a channel unused for
 * a while is closed by `sweep`. Reconnect backoff is kept short so that a
 * server that comes back is seen within a probe or two.
 */

import { isIP } from "node:net";
import {
  type ChannelCredentials,
  Client,
  type ClientOptions,
  credentials,
  Metadata,
  type ServiceDefinition,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { tlsId } from "./http-probe.ts";
import { classifyError, fail, type Outcome, ok, Reason } from "./reasons.ts";
import type { ProbeSignal } from "./signal.ts";
import type { GrpcProbeSpec, TlsSpec } from "./types.ts";

export const servingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

export interface HealthCheckRequest {
  service: string;
}
export interface HealthCheckResponse {
  status: number;
}

function encodeVarint(n: number, out: number[]): void {
  let v = n >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

/** Reads a varint at `pos`; returns [value, next position]. */
function decodeVarint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (let i = pos; i < buf.length; i++) {
    const b = buf[i]!;
    if (shift < 32) result |= (b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) === 0) return [result >>> 0, i + 1];
  }
  throw new Error("truncated varint");
}

/** Skips (or reads field 1 of) a protobuf message: enough for both health messages. */
function decodeField1(buf: Buffer): { varint?: number; bytes?: Buffer } {
  let pos = 0;
  const found: { varint?: number; bytes?: Buffer } = {};
  while (pos < buf.length) {
    const [key, p] = decodeVarint(buf, pos);
    pos = p;
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const [v, q] = decodeVarint(buf, pos);
      pos = q;
      if (field === 1) found.varint = v;
    } else if (wire === 2) {
      const [len, q] = decodeVarint(buf, pos);
      if (q + len > buf.length) throw new Error("truncated field");
      if (field === 1) found.bytes = buf.subarray(q, q + len);
      pos = q + len;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return found;
}

export function encodeRequest(req: HealthCheckRequest): Buffer {
  if (!req.service) return Buffer.alloc(0);
  const name = Buffer.from(req.service, "utf8");
  const head: number[] = [0x0a];
  encodeVarint(name.length, head);
  return Buffer.concat([Buffer.from(head), name]);
}

export function decodeRequest(buf: Buffer): HealthCheckRequest {
  return { service: decodeField1(buf).bytes?.toString("utf8") ?? "" };
}

export function encodeResponse(res: HealthCheckResponse): Buffer {
  if (!res.status) return Buffer.alloc(0);
  const out: number[] = [0x08];
  encodeVarint(res.status, out);
  return Buffer.from(out);
}

export function decodeResponse(buf: Buffer): HealthCheckResponse {
  return { status: decodeField1(buf).varint ?? 0 };
}

const checkPath = "/grpc.health.v1.Health/Check";
/** `tls: true`: TLS with the system roots (one object, so that its channels are shared). */
const plainTls: TlsSpec = {};

/** Service definition of grpc.health.v1.Health (Check only), for servers such as the tests'. */
export const healthServiceDefinition: ServiceDefinition = {
  Check: {
    path: checkPath,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeRequest,
    requestDeserialize: decodeRequest,
    responseSerialize: encodeResponse,
    responseDeserialize: decodeResponse,
  },
};

export interface GrpcPool {
  client(address: string, port: number, tls: TlsSpec | undefined, host: string, idleMs: number): Client;
  /** Closes channels unused for longer than their idle time. */
  sweep(now: number): void;
  close(): void;
  readonly size: number;
}

interface PoolEntry {
  client: Client;
  lastUsed: number;
  idleMs: number;
}

/**
 * grpc-js sends the target's host as the TLS server name even when it is an
 * IP address, which RFC 6066 forbids (Node warns: DEP0123, and will ignore
 * it). Without a server name Node verifies the certificate against the IP
 * (`host`), which is what a probe of an IP asks for.
 */
function withoutIpServername(creds: ChannelCredentials): ChannelCredentials {
  const create = creds._createSecureConnector.bind(creds);
  creds._createSecureConnector = (...args) => {
    const connector = create(...args) as ReturnType<typeof create> & {
      connectionOptions?: { servername?: string };
    };
    const options = connector.connectionOptions;
    if (options?.servername !== undefined && isIP(options.servername) !== 0) delete options.servername;
    return connector;
  };
  return creds;
}

export function grpcPool(now: () => number): GrpcPool {
  const entries = new Map<string, PoolEntry>();
  return {
    client(address, port, tls, host, idleMs) {
      const key = `${address}|${port}|${tls ? tlsId(tls) : "plain"}|${host}`;
      let entry = entries.get(key);
      if (!entry) {
        const target = isIP(address) === 6 ? `ipv6:[${address}]:${port}` : `ipv4:${address}:${port}`;
        const serverName = tls?.serverName ?? (isIP(host) === 0 ? host : undefined);
        const options: ClientOptions = {
          "grpc.enable_http_proxy": 0,
          "grpc.use_local_subchannel_pool": 1,
          "grpc.initial_reconnect_backoff_ms": 250,
          "grpc.max_reconnect_backoff_ms": 2000,
          "grpc.default_authority": `${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
        };
        if (serverName) options["grpc.ssl_target_name_override"] = serverName;
        let creds: ChannelCredentials = credentials.createInsecure();
        if (tls) {
          creds = withoutIpServername(
            credentials.createSsl(
              tls.caBundle ? Buffer.from(tls.caBundle) : null,
              tls.clientCert ? Buffer.from(tls.clientCert.key) : null,
              tls.clientCert ? Buffer.from(tls.clientCert.cert) : null,
              { rejectUnauthorized: !tls.insecureSkipVerify },
            ),
          );
        }
        entry = { client: new Client(target, creds, options), lastUsed: now(), idleMs };
        entries.set(key, entry);
      }
      entry.lastUsed = now();
      entry.idleMs = Math.max(entry.idleMs, idleMs);
      return entry.client;
    },
    sweep(t) {
      for (const [key, e] of entries) {
        if (t - e.lastUsed > e.idleMs) {
          e.client.close();
          entries.delete(key);
        }
      }
    },
    close() {
      for (const e of entries.values()) e.client.close();
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}

export interface GrpcProbeContext {
  address: string;
  host: string;
  port: number;
  signal: ProbeSignal;
  timeoutMs: number;
  /** How long an unused channel is kept (a few intervals). */
  idleMs: number;
}

const causes: [RegExp, string][] = [
  [/ECONNREFUSED/, Reason.ConnectionRefused],
  [/ECONNRESET|EPIPE/, Reason.ConnectionReset],
  [/EHOSTUNREACH|ENETUNREACH/, Reason.HostUnreachable],
  [/ETIMEDOUT/, Reason.Timeout],
  [/certificate|SSL|TLS|self.signed|altname/i, Reason.TLSError],
];

function classifyStatus(err: ServiceError, signal: ProbeSignal, service: string): Outcome {
  if (signal.aborted) return classifyError(signal.reason, signal);
  const details = err.details || err.message;
  switch (err.code) {
    case status.DEADLINE_EXCEEDED:
      return fail(Reason.Timeout, `gRPC deadline exceeded: ${details}`);
    case status.NOT_FOUND:
      return fail(Reason.ServiceUnknown, `gRPC health: service ${JSON.stringify(service)} unknown`);
    case status.UNAVAILABLE:
      for (const [re, reason] of causes)
        if (re.test(details)) return fail(reason, `gRPC UNAVAILABLE: ${details}`);
      return fail(Reason.GRPCError, `gRPC UNAVAILABLE: ${details}`);
    default:
      return fail(Reason.GRPCError, `gRPC ${status[err.code] ?? err.code}: ${details}`);
  }
}

export function grpcProbe(spec: GrpcProbeSpec, ctx: GrpcProbeContext, pool: GrpcPool): Promise<Outcome> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(classifyError(ctx.signal.reason, ctx.signal));
      return;
    }
    const tls = spec.tls === true ? plainTls : spec.tls === false ? undefined : spec.tls;
    const service = spec.service ?? "";
    const client = pool.client(ctx.address, ctx.port, tls, ctx.host, ctx.idleMs);
    const call = client.makeUnaryRequest<HealthCheckRequest, HealthCheckResponse>(
      checkPath,
      encodeRequest,
      decodeResponse,
      { service },
      new Metadata(),
      { deadline: Date.now() + ctx.timeoutMs },
      (err, res) => {
        ctx.signal.onabort = undefined;
        if (err) {
          resolve(classifyStatus(err, ctx.signal, service));
        } else if (res?.status === servingStatus.SERVING) {
          resolve(ok("SERVING"));
        } else if (res?.status === servingStatus.SERVICE_UNKNOWN) {
          resolve(fail(Reason.ServiceUnknown, `gRPC health: service ${JSON.stringify(service)} unknown`));
        } else {
          const name =
            res?.status === servingStatus.NOT_SERVING ? "NOT_SERVING" : `status ${res?.status ?? "missing"}`;
          resolve(fail(Reason.NotServing, `gRPC health: ${name}`));
        }
      },
    );
    ctx.signal.onabort = () => call.cancel();
  });
}
