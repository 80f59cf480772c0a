/**
 * Engine-level types of the probe engine. They mirror the DiscoveryPolicy
 * `healthCheck` sketch but are independent of the API schemas and of
 * Kubernetes objects: the operator maps its objects onto these (resolving
 * defaults, Secret header values, named lease, durations to milliseconds).
 */
import type { Verdict } from "../api/common.ts";

/** A verdict starts `Unknown` and only leaves it when a threshold is met (the type lives in src/api: publish uses it too). */
export type { Verdict };

export interface StatusRange {
  /** Inclusive bounds. */
  from: number;
  to: number;
}

export interface TlsSpec {
  /** SNI and certificate name to verify; default: the target's host when it is a DNS name. */
  serverName?: string;
  /** PEM bundle of CAs to trust instead of the system roots. */
  caBundle?: string;
  /** Skip certificate verification (only when asked). */
  insecureSkipVerify?: boolean;
  /** PEM client certificate chain and key presented for mTLS. */
  clientCert?: { cert: string; key: string };
  /** A success over a certificate expiring within this becomes CertificateExpiresSoon. */
  expiryWarningMs?: number;
}

export interface HttpProbeSpec {
  type: "http";
  /** Port number, or a name looked up in the target's `ports`. */
  port: number | string;
  /** Default "/". */
  path?: string;
  /** Default "HTTP". */
  scheme?: "HTTP" | "HTTPS";
  /** Default "GET". */
  method?: string;
  /** Request headers, values already resolved (including those from Secrets). */
  headers?: Record<string, string>;
  /** Names of the headers whose values came from Secrets: never sent after a redirect to another origin. */
  secretHeaders?: string[];
  /** Default [{ from: 200, to: 399 }]. */
  expectedStatuses?: StatusRange[];
  /** Statuses that make the probe a degraded success (DegradedStatus), checked before expectedStatuses. */
  degradedStatuses?: StatusRange[];
  /** A response with a `Warning` header is a degraded success (WarningHeader). Default false. */
  degradeOnWarning?: boolean;
  /** Substring that must appear within the first `maxBodyBytes` of the body. */
  bodyMatch?: string;
  /** Regular expression the first `maxBodyBytes` of the body (as UTF-8) must match; run in linear time. */
  bodyRegex?: string;
  /** Bytes of body read at most for `bodyMatch` (default 4096, capped at 65536). */
  maxBodyBytes?: number;
  /**
   * Follow up to 5 redirects, each checked against the destination policy; after a change of
   * scheme, host or port, credentials and Secret-backed headers are not sent. Default false.
   */
  followRedirects?: boolean;
  tls?: TlsSpec;
}

export interface TcpProbeSpec {
  type: "tcp";
  port: number | string;
  /** Complete a TLS handshake after the connect. */
  tls?: TlsSpec;
}

export interface GrpcProbeSpec {
  type: "grpc";
  port: number | string;
  /** grpc.health.v1 service name; "" (default) asks about the whole server. */
  service?: string;
  /** Use TLS; default false (plaintext, as most in-cluster health endpoints). */
  tls?: TlsSpec | boolean;
}

export interface UdpProbeSpec {
  type: "udp";
  port: number | string;
  /** Bytes sent in one datagram (already decoded from the API's text or base64). */
  payload: Uint8Array;
  /** Regular expression the reply (as UTF-8) must match; any reply when absent. Run in linear time. */
  expectRegex?: string;
}

export type DatabaseRole = "primary" | "replica";

export interface PostgresProbeSpec {
  type: "postgres";
  port: number | string;
  database: string;
  user: string;
  /** Resolved from its Secret by the operator. */
  password?: string;
  /** TLS when set (verify-full unless insecureSkipVerify). */
  tls?: TlsSpec;
  /** Fail with RoleMismatch unless `pg_is_in_recovery()` says this role. */
  expectRole?: DatabaseRole;
}

export interface RedisProbeSpec {
  type: "redis";
  port: number | string;
  username?: string;
  /** Resolved from its Secret by the operator; AUTH is sent only when set. */
  password?: string;
  tls?: TlsSpec;
  /** Fail with RoleMismatch unless `ROLE` says this role. */
  expectRole?: DatabaseRole;
}

export interface HeartbeatProbeSpec {
  type: "heartbeat";
  /** The `coordination.k8s.io/v1` Lease the instance renews. */
  lease: { namespace: string; name: string };
}

export interface NoneProbeSpec {
  type: "none";
}

export type ProbeSpec =
  | HttpProbeSpec
  | TcpProbeSpec
  | UdpProbeSpec
  | GrpcProbeSpec
  | PostgresProbeSpec
  | RedisProbeSpec
  | HeartbeatProbeSpec
  | NoneProbeSpec;
export type ProbeType = ProbeSpec["type"];

export interface FlapDamping {
  /** More verdict changes than this within `windowMs` hold the target unhealthy. */
  maxTransitions: number;
  windowMs: number;
}

export interface CheckSpec {
  /** Empty means `none`: healthy as soon as registered. */
  probes: ProbeSpec[];
  /** Default "all". */
  combine?: "all" | "any";
  intervalMs: number;
  timeoutMs: number;
  /** Default 0. */
  initialDelayMs?: number;
  /** Consecutive failures before Unhealthy; default 3. */
  failureThreshold?: number;
  /** Consecutive successes before Healthy; default 1. */
  successThreshold?: number;
  /** Each run is delayed by a random 0..jitterMs on top of its stable phase; default 0. */
  jitterMs?: number;
  /**
   * After a result that differs from the verdict, the next runs come this
   * soon (until the verdict flips or a result agrees); default a quarter of
   * the interval, at most the timeout.
   */
  recheckIntervalMs?: number;
  flapDamping?: FlapDamping;
  /** A success slower than this (less than the timeout) is a degraded success (SlowResponse). */
  degradedLatencyMs?: number;
}

export interface Target {
  /** Stable identity, e.g. "namespace/name"; also seeds the target's phase. */
  id: string;
  /**
   * Whose fair share of the probe slots the target uses; default: the id up
   * to its first "/" (the namespace of "namespace/name").
   */
  tenant?: string;
  /** IPv4, IPv6 or DNS name. Names are resolved (and re-resolved); each address gets its own verdict. */
  host: string;
  /** Named ports for probes that give a port name. */
  ports?: Record<string, number>;
  check: CheckSpec;
}

/**
 * Why a Healthy verdict is degraded: its probes succeed, but slowly,
 * rate-limited, with a Warning or over a certificate about to expire.
 */
export interface Degradation {
  /** CamelCase reason: SlowResponse, DegradedStatus, WarningHeader, CertificateExpiresSoon. */
  reason: string;
  message: string;
}

/**
 * What the engine reports: a change of verdict, the start of flap damping,
 * or a Healthy verdict becoming or ceasing to be degraded (`from` and `to`
 * both Healthy).
 */
export interface Transition {
  id: string;
  /** Set for a resolved address's verdict; absent for the target's overall verdict. */
  address?: string;
  from: Verdict;
  to: Verdict;
  /** CamelCase reason, see reasons.ts. */
  reason: string;
  /** Short human-readable detail (at most 256 characters). */
  message: string;
  /** Set while the new verdict is Healthy but degraded. */
  degraded?: Degradation;
  at: number;
}

/**
 * One finished probe, for metrics (latency histograms, counters). Every
 * finished run of a target reports at least one, including runs that decide
 * without any network exchange (see `local`), so "the target has been probed
 * since it was added" can be told from the first observation.
 */
export interface ProbeObservation {
  id: string;
  address?: string;
  type: ProbeType;
  ok: boolean;
  reason: string;
  /** When the probe started (after it got a concurrency slot). */
  at: number;
  /** Time from the probe's start to its outcome. */
  latencyMs: number;
  /** How late the run started relative to its plan (queueing for slots included). */
  lateMs: number;
  /** Set when the probe had to wait for a concurrency slot. */
  queued?: true;
  /**
   * Set when the probe gave no result and did not count towards the verdict:
   * `queue`, it got no slot within its timeout of its scheduled time (never
   * connected); `stall`, it timed out while the operator's event loop was
   * blocked for a quarter of the timeout or more.
   */
  voided?: "queue" | "stall";
  /**
   * Set when the outcome was decided without probing: a `none` probe
   * (registration only), an address the destination policy refuses, a port
   * name the target does not have, a host name that does not resolve (no
   * address). `latencyMs` is 0: latency metrics should skip these.
   */
  local?: true;
}

export interface AddressSummary {
  address: string;
  verdict: Verdict;
  reason: string;
  message: string;
  /** Set while the verdict is Healthy but degraded. */
  degraded?: Degradation;
  /** When the verdict last changed (or the address appeared). */
  since: number;
  lastProbeAt?: number;
  /** The database role the last run learnt (postgres, redis probes); absent when unknown. */
  role?: DatabaseRole;
}

export interface TargetSummary {
  id: string;
  verdict: Verdict;
  reason: string;
  message: string;
  /** Set while the verdict is Healthy but degraded (every healthy address is). */
  degraded?: Degradation;
  since: number;
  addresses: AddressSummary[];
  lastProbeAt?: number;
}

export interface LeaseInfo {
  renewTimeMs: number;
  leaseDurationMs: number;
}

/** Reads a Lease (the operator backs it with an informer cache); undefined when it does not exist. */
export type LeaseReader = (
  namespace: string,
  name: string,
) => LeaseInfo | undefined | Promise<LeaseInfo | undefined>;

/** Resolves a DNS name to IP addresses; rejects with a Node-style `code` (ENOTFOUND, EAI_AGAIN...). */
export type Resolver = (host: string) => Promise<string[]>;
