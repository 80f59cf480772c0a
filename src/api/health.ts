/**
 * The health check of a service: a list of probes (a discriminated union on
 * `type`), how their results combine, and the timing, threshold and flap
 * damping settings. Used by DiscoveryPolicy.spec.healthCheck; the per-instance
 * HealthCheckOverride (ServiceInstance.spec.healthCheck, at the end of this
 * file) has the same fields without defaults and is merged over it.
 *
 * Probes follow the Kubernetes union convention: a `type` discriminator plus
 * one member field named after the type, e.g.
 * `{ type: http, http: { path: /healthz, port: http } }`. The member may be
 * omitted (all its fields have defaults); zod fills it in, so in parsed
 * values `probe.http` is always present when `probe.type === "http"`.
 */
import { z } from "zod";
import {
  Address,
  DNS1123_LABEL,
  DURATION,
  deepFreeze,
  duplicates,
  durationBetween,
  HTTP_TOKEN,
  ObjectName,
  PortRef,
  parseDuration,
} from "./common.ts";
import { celRegex, withRules } from "./rules.ts";

// --- shared pieces -------------------------------------------------------------

/** A reference to one key of a Secret in the same namespace. */
export const SecretKeySelector = z
  .strictObject({
    name: ObjectName.describe("Name of the Secret, in the namespace of the object that holds this probe."),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, "must be a Secret key: letters, digits, '-', '_' and '.'")
      .describe("Key within the Secret's data."),
  })
  .describe("Selects a key of a Secret in the namespace of the object that holds this probe.");
export type SecretKeySelector = z.output<typeof SecretKeySelector>;

/** Header values must not smuggle extra header lines or control characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;

/** One request header of an HTTP probe: a literal value or a value from a Secret. */
export const HttpHeader = withRules(
  z.strictObject({
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(HTTP_TOKEN, "must be an HTTP header name (RFC 9110 token)")
      .describe("Header name, e.g. Authorization."),
    value: z
      .string()
      .max(4096)
      .regex(HEADER_VALUE, "must not contain control characters such as line breaks")
      .optional()
      .describe("Literal header value. Exactly one of value and valueFrom is set."),
    valueFrom: z
      .strictObject({
        secretKeyRef: SecretKeySelector.describe("The Secret key whose value is sent as the header value."),
      })
      .optional()
      .describe(
        "Takes the header value from a Secret (e.g. a bearer token). Exactly one of value and valueFrom is set.",
      ),
  }),
  [
    {
      rule: "has(self.value) != has(self.valueFrom)",
      message: "set exactly one of value and valueFrom",
      check: (h) => (h.value !== undefined) !== (h.valueFrom !== undefined),
    },
  ],
).describe("A request header sent with an HTTP probe.");
export type HttpHeader = z.output<typeof HttpHeader>;

/** An inclusive range of HTTP status codes. */
export const StatusRange = withRules(
  z.strictObject({
    min: z.int().min(100).max(599).describe("Lowest accepted status code (inclusive)."),
    max: z
      .int()
      .min(100)
      .max(599)
      .describe("Highest accepted status code (inclusive); use min for a single code."),
  }),
  [
    {
      rule: "self.min <= self.max",
      message: "max must be greater than or equal to min",
      fieldPath: ".max",
      check: (r) => r.min <= r.max,
    },
  ],
).describe("An inclusive range of HTTP status codes, e.g. {min: 200, max: 399}.");
export type StatusRange = z.output<typeof StatusRange>;

/** What the body of an HTTP response must contain. */
export const BodyMatch = withRules(
  z.strictObject({
    substring: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe("The body must contain this text. Exactly one of substring and regex is set."),
    regex: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe(
        "The body must match this regular expression (RE2 syntax, as in JavaScript without lookaround or backreferences). Exactly one of substring and regex is set.",
      ),
    maxBytes: z
      .int()
      .min(1)
      .max(65536)
      .default(4096)
      .describe("Bytes of the body read at most and searched; the rest is ignored."),
  }),
  [
    {
      rule: "has(self.substring) != has(self.regex)",
      message: "set exactly one of substring and regex",
      check: (b) => (b.substring !== undefined) !== (b.regex !== undefined),
    },
    {
      // Either side fails to evaluate when the pattern is not valid RE2, and the
      // API server rejects an object whose rule cannot be evaluated.
      rule: "!has(self.regex) || ''.matches(self.regex) || !''.matches(self.regex)",
      message: "regex must be a valid regular expression",
      fieldPath: ".regex",
      check: (b) => b.regex === undefined || isValidRegex(b.regex),
    },
  ],
).describe("Checks the response body: a substring or a regular expression, within the first maxBytes bytes.");
export type BodyMatch = z.output<typeof BodyMatch>;

/** JavaScript syntax that RE2 (the API server's engine) lacks: lookaround and backreferences. */
const NOT_RE2 = /\(\?<?[=!]|\\[1-9]|\\k</;

/** Whether `s` compiles as a JavaScript regex and uses only what RE2 also supports. */
export function isValidRegex(s: string): boolean {
  if (NOT_RE2.test(s)) return false;
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

/** A key of a ConfigMap in the same namespace. */
export const ConfigMapKeySelector = z
  .strictObject({
    name: ObjectName.describe("Name of the ConfigMap, in the namespace of the object that holds this probe."),
    key: SecretKeySelector.shape.key.describe("Key within the ConfigMap's data."),
  })
  .describe("Selects a key of a ConfigMap in the namespace of the object that holds this probe.");

/** Where a CA bundle comes from: exactly one of a Secret key and a ConfigMap key. */
export const CaBundleSource = withRules(
  z.strictObject({
    secretKeyRef: SecretKeySelector.optional().describe("The Secret key holding the PEM CA bundle."),
    configMapKeyRef: ConfigMapKeySelector.optional().describe("The ConfigMap key holding the PEM CA bundle."),
  }),
  [
    {
      rule: "has(self.secretKeyRef) != has(self.configMapKeyRef)",
      message: "set exactly one of secretKeyRef and configMapKeyRef",
      check: (c) => (c.secretKeyRef !== undefined) !== (c.configMapKeyRef !== undefined),
    },
  ],
).describe("A reference to a PEM CA bundle in a Secret or ConfigMap.");
export type CaBundleSource = z.output<typeof CaBundleSource>;

/** TLS settings for HTTPS and gRPC probes. */
export const TlsOptions = withRules(
  z.strictObject({
    serverName: z
      .string()
      .min(1)
      .max(253)
      .regex(
        /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/,
        "must be a DNS name",
      )
      .optional()
      .describe(
        "Server name sent in SNI and verified against the certificate; defaults to the instance address when it is a DNS name.",
      ),
    caBundle: z
      .string()
      .max(32768)
      .optional()
      .describe("PEM-encoded CA certificates to trust instead of the system roots."),
    caBundleFrom: CaBundleSource.optional().describe(
      "Takes the PEM CA bundle from a Secret (under the probe Secret rules) or a ConfigMap in the namespace of the object that holds this probe; re-read every 60 s. Not with caBundle.",
    ),
    insecureSkipVerify: z
      .boolean()
      .default(false)
      .describe("Skip certificate verification. Only for testing; cannot be combined with caBundle."),
    clientCertificate: z
      .strictObject({
        secretName: ObjectName.describe(
          "A kubernetes.io/tls Secret (keys tls.crt and tls.key) in the namespace of the object that holds this probe; read under the probe Secret rules and re-read every 60 s.",
        ),
      })
      .optional()
      .describe("Client certificate presented to servers that require one (mTLS)."),
    expiryWarning: durationBetween("1h", "8760h")
      .optional()
      .describe(
        "Report CertificateExpiresSoon when the server's certificate expires within this duration, e.g. 336h (14 days); 1h to 8760h. An expired certificate fails with CertificateExpired.",
      ),
  }),
  [
    {
      rule: "!has(self.caBundle) || self.caBundle.contains('-----BEGIN CERTIFICATE-----')",
      message: "caBundle must contain PEM-encoded certificates (-----BEGIN CERTIFICATE-----)",
      fieldPath: ".caBundle",
      check: (t) => t.caBundle === undefined || t.caBundle.includes("-----BEGIN CERTIFICATE-----"),
    },
    {
      rule: "!(has(self.caBundle) && has(self.caBundleFrom))",
      message: "set at most one of caBundle and caBundleFrom",
      fieldPath: ".caBundleFrom",
      check: (t) => !(t.caBundle !== undefined && t.caBundleFrom !== undefined),
    },
    {
      rule: "!(has(self.caBundleFrom) && self.insecureSkipVerify)",
      message: "insecureSkipVerify cannot be combined with caBundleFrom",
      fieldPath: ".insecureSkipVerify",
      check: (t) => !(t.caBundleFrom !== undefined && t.insecureSkipVerify),
    },
    {
      rule: "!(has(self.caBundle) && self.insecureSkipVerify)",
      message: "insecureSkipVerify cannot be combined with caBundle",
      fieldPath: ".insecureSkipVerify",
      check: (t) => !(t.caBundle !== undefined && t.insecureSkipVerify),
    },
  ],
).describe("TLS settings of a probe.");
export type TlsOptions = z.output<typeof TlsOptions>;

const probeHostDescription =
  "Host to connect to instead of the instance's address (IP or DNS name), like a kubelet probe's host: for instances whose health endpoint is reached through another address, such as a sidecar or a local tunnel. Subject to the operator's destination policy.";

const probePortDescription =
  "Port to probe: a number, or the name of one of the instance's spec.ports. Defaults to the instance's first port.";

// --- probe members -----------------------------------------------------------

/** Options of an `http` probe. */
export const HttpProbeOptions = withRules(
  z.strictObject({
    path: z
      .string()
      .max(1024)
      .regex(/^\/\S*$/, "must start with '/' and contain no spaces")
      .default("/")
      .describe("Request path, with an optional query string, e.g. /healthz."),
    host: Address.optional().describe(probeHostDescription),
    port: PortRef.optional().describe(probePortDescription),
    scheme: z.enum(["HTTP", "HTTPS"]).default("HTTP").describe("HTTP or HTTPS."),
    method: z.enum(["GET", "HEAD", "POST", "OPTIONS"]).default("GET").describe("Request method."),
    headers: z
      .array(HttpHeader)
      .max(16)
      .optional()
      .describe(
        "Extra request headers; values may come from Secrets. Header names are unique (case-insensitive).",
      ),
    expectedStatuses: z
      .array(StatusRange)
      .min(1)
      .max(8)
      .prefault([{ min: 200, max: 399 }])
      .describe("Status codes that count as success; default 200-399."),
    degradedStatuses: z
      .array(StatusRange)
      .min(1)
      .max(8)
      .optional()
      .describe(
        "Status codes that count as a degraded success (reason DegradedStatus), e.g. [{min: 429, max: 429}]: the instance stays published, at publish.degradedWeightPercent of its weight. Checked before expectedStatuses; the body is not checked.",
      ),
    degradeOnWarning: z
      .boolean()
      .optional()
      .describe(
        "true: a passing response with a Warning header is a degraded success (reason WarningHeader). Off when absent.",
      ),
    bodyMatch: BodyMatch.optional().describe("Optional check of the response body."),
    followRedirects: z
      .boolean()
      .default(false)
      .describe(
        "Follow up to 5 redirects, each checked against the destination policy; after a change of scheme, host or port, Authorization, Proxy-Authorization, Cookie, Host and Secret-backed headers are not sent. Otherwise a 3xx status is judged as is.",
      ),
    tls: TlsOptions.optional().describe("TLS settings; only with scheme HTTPS."),
  }),
  [
    {
      rule: "!has(self.tls) || self.scheme == 'HTTPS'",
      message: "tls requires scheme HTTPS",
      fieldPath: ".tls",
      check: (h) => h.tls === undefined || h.scheme === "HTTPS",
    },
    {
      rule: "!has(self.headers) || self.headers.all(h, self.headers.exists_one(g, g.name.lowerAscii() == h.name.lowerAscii()))",
      message: "header names must be unique (case-insensitive)",
      fieldPath: ".headers",
      check: (h) =>
        duplicates((h.headers ?? []).map((x) => x.name.toLowerCase())).map((i) => ["headers", i, "name"]),
    },
  ],
).describe("Options of an http probe: the request sent and the response expected.");
export type HttpProbeOptions = z.output<typeof HttpProbeOptions>;

/** Options of a `tcp` probe: a TCP connect (and, with tls, a TLS handshake) succeeds. */
export const TcpProbeOptions = z
  .strictObject({
    host: Address.optional().describe(probeHostDescription),
    port: PortRef.optional().describe(probePortDescription),
    tls: TlsOptions.optional().describe(
      "Complete a TLS handshake with these settings (server verification, client certificate, expiry warning); a plain connect when absent.",
    ),
  })
  .describe(
    "Options of a tcp probe, which succeeds when a TCP connection opens (and, with tls, a TLS handshake completes).",
  );
export type TcpProbeOptions = z.output<typeof TcpProbeOptions>;

/** Largest UDP probe payload: one small datagram, far below any path MTU. */
export const UDP_MAX_PAYLOAD = 1024;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A regular expression field checked like bodyMatch.regex: RE2-compatible JavaScript. */
const regexRule = (field: string) => ({
  rule: `!has(self.${field}) || ''.matches(self.${field}) || !''.matches(self.${field})`,
  message: `${field} must be a valid regular expression`,
  fieldPath: `.${field}`,
  check: (o: Record<string, unknown>) => {
    const v = o[field];
    return typeof v !== "string" || isValidRegex(v);
  },
});

/** Options of a `udp` probe: one datagram out, a reply back. */
export const UdpProbeOptions = withRules(
  z.strictObject({
    host: Address.optional().describe(probeHostDescription),
    port: PortRef.optional().describe(probePortDescription),
    payload: z
      .string()
      .max(UDP_MAX_PAYLOAD)
      .optional()
      .describe(
        `Text sent as the datagram (UTF-8, at most ${UDP_MAX_PAYLOAD} characters). At most one of payload and payloadBase64; an empty datagram when neither is set.`,
      ),
    payloadBase64: z
      .string()
      .max(Math.ceil(UDP_MAX_PAYLOAD / 3) * 4)
      .regex(BASE64, "must be base64")
      .optional()
      .describe(
        `Binary datagram, base64-encoded (at most ${UDP_MAX_PAYLOAD} bytes), e.g. a DNS query. At most one of payload and payloadBase64.`,
      ),
    expectRegex: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe(
        "The reply (read as UTF-8) must match this regular expression (RE2 syntax); any reply counts when absent.",
      ),
  }),
  [
    {
      rule: "!(has(self.payload) && has(self.payloadBase64))",
      message: "set at most one of payload and payloadBase64",
      fieldPath: ".payloadBase64",
      check: (u) => u.payload === undefined || u.payloadBase64 === undefined,
    },
    regexRule("expectRegex"),
  ],
).describe(
  "Options of a udp probe: sends one datagram and succeeds on a reply; an ICMP port unreachable fails at once (PortUnreachable), silence fails at the timeout.",
);
export type UdpProbeOptions = z.output<typeof UdpProbeOptions>;

/** A password (or other credential) taken from a Secret in the instance's namespace. */
const CredentialFrom = z
  .strictObject({
    secretKeyRef: SecretKeySelector.describe("The Secret key that holds the value."),
  })
  .describe(
    "Takes the value from a Secret in the instance's namespace (read only when the operator may read Secrets, re-read on change).",
  );

/** The database role a probe can require of an instance. */
export const DatabaseRole = z.enum(["primary", "replica"]);
export type DatabaseRole = z.output<typeof DatabaseRole>;

const expectRoleDescription =
  "Role the instance must have: primary or replica. The probe fails with RoleMismatch when the server reports the other role, so a policy for the primary publishes only the current primary and follows a failover within detection time. Any role when absent (the role is still learnt when cheap and shown in status.role; a policy publishes one role with publish.role).";

/** Options of a `postgres` probe: connect, authenticate, optionally check the role. */
export const PostgresProbeOptions = z
  .strictObject({
    host: Address.optional().describe(probeHostDescription),
    port: PortRef.optional().describe(probePortDescription),
    database: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[-A-Za-z0-9_.@$]+$/, "must be letters, digits and - _ . @ $")
      .default("postgres")
      .describe("Database to connect to."),
    user: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[-A-Za-z0-9_.@$]+$/, "must be letters, digits and - _ . @ $")
      .default("postgres")
      .describe("User to connect as."),
    passwordFrom: CredentialFrom.optional().describe(
      "The user's password, from a Secret; no password when absent (trust or peer authentication).",
    ),
    tls: TlsOptions.optional().describe(
      "Connect with TLS (sslmode verify-full unless insecureSkipVerify); plaintext when absent.",
    ),
    expectRole: DatabaseRole.optional().describe(
      `${expectRoleDescription} The role comes from pg_is_in_recovery(): true is replica.`,
    ),
  })
  .describe(
    "Options of a postgres probe: succeeds when a session opens (startup, authentication, SELECT 1) and, with expectRole, the server has that role.",
  );
export type PostgresProbeOptions = z.output<typeof PostgresProbeOptions>;

/** Options of a `redis` probe: PING, optionally check the role. */
export const RedisProbeOptions = z
  .strictObject({
    host: Address.optional().describe(probeHostDescription),
    port: PortRef.optional().describe(probePortDescription),
    username: z
      .string()
      .min(1)
      .max(128)
      .regex(/^\S+$/, "must not contain spaces")
      .optional()
      .describe("ACL user for AUTH; the default user when absent."),
    passwordFrom: CredentialFrom.optional().describe(
      "Password for AUTH, from a Secret; no AUTH when absent.",
    ),
    tls: TlsOptions.optional().describe("Connect with TLS; plaintext when absent."),
    expectRole: DatabaseRole.optional().describe(
      `${expectRoleDescription} The role comes from ROLE: master is primary, slave is replica.`,
    ),
  })
  .describe(
    "Options of a redis probe: succeeds when PING answers PONG (after AUTH when a password is set) and, with expectRole, the server has that role.",
  );
export type RedisProbeOptions = z.output<typeof RedisProbeOptions>;

/** Options of a `grpc` probe (grpc.health.v1 Check). */
export const GrpcProbeOptions = z
  .strictObject({
    host: Address.optional().describe(probeHostDescription),
    port: PortRef.optional().describe(probePortDescription),
    service: z
      .string()
      .max(256)
      .regex(/^[A-Za-z0-9_./-]*$/, "must be a gRPC service name such as my.pkg.Service")
      .default("")
      .describe(
        "Service name sent in the grpc.health.v1 HealthCheckRequest; empty asks about the whole server.",
      ),
    tls: TlsOptions.optional().describe("Use TLS with these settings; plaintext when absent."),
  })
  .describe("Options of a grpc probe, which calls grpc.health.v1.Health/Check and expects SERVING.");
export type GrpcProbeOptions = z.output<typeof GrpcProbeOptions>;

/** Options of a `heartbeat` probe: the instance renews a Lease. */
export const HeartbeatProbeOptions = z
  .strictObject({
    leaseName: ObjectName.optional().describe(
      "Name of the coordination.k8s.io/v1 Lease the instance renews, in the instance's namespace; defaults to the ServiceInstance's name.",
    ),
  })
  .describe(
    "Options of a heartbeat probe: healthy while the instance keeps renewing a Lease (renewTime + leaseDurationSeconds in the future), like a TTL check.",
  );
export type HeartbeatProbeOptions = z.output<typeof HeartbeatProbeOptions>;

// --- the probe union -----------------------------------------------------------------

/** The probe types. */
export const PROBE_TYPES = ["http", "tcp", "udp", "grpc", "postgres", "redis", "heartbeat", "none"] as const;
export type ProbeType = (typeof PROBE_TYPES)[number];

const probeTypeField = <T extends ProbeType>(t: T) =>
  z
    .literal(t)
    .describe(
      "Probe type: http (an HTTP request), tcp (a TCP connect), udp (a datagram and its reply), grpc (grpc.health.v1), postgres (a PostgreSQL session), redis (PING), heartbeat (the instance renews a Lease) or none (always healthy). Only the member field named after the type may be set.",
    );

const probeName = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS1123_LABEL, "must be a DNS-1123 label")
  .optional()
  .describe("Optional name of the probe, used in status messages and metrics; unique within the list.");

/** Probe variants reject the members of other types with a message that says so. */
const variant = <T extends ProbeType, M extends z.ZodRawShape>(type: T, member: M) =>
  z.strictObject(
    { type: probeTypeField(type), name: probeName, ...member },
    {
      error: (iss) =>
        iss.code === "unrecognized_keys"
          ? `only the "${type}" member is allowed for a probe of type ${type}`
          : undefined,
    },
  );

/** An `http` probe. */
export const HttpProbe = variant("http", {
  http: HttpProbeOptions.prefault({}).describe("Options of an http probe; only with type http."),
});
/** A `tcp` probe. */
export const TcpProbe = variant("tcp", {
  tcp: TcpProbeOptions.prefault({}).describe("Options of a tcp probe; only with type tcp."),
});
/** A `udp` probe. */
export const UdpProbe = variant("udp", {
  udp: UdpProbeOptions.prefault({}).describe("Options of a udp probe; only with type udp."),
});
/** A `grpc` probe. */
export const GrpcProbe = variant("grpc", {
  grpc: GrpcProbeOptions.prefault({}).describe("Options of a grpc probe; only with type grpc."),
});
/** A `postgres` probe. */
export const PostgresProbe = variant("postgres", {
  postgres: PostgresProbeOptions.prefault({}).describe(
    "Options of a postgres probe; only with type postgres.",
  ),
});
/** A `redis` probe. */
export const RedisProbe = variant("redis", {
  redis: RedisProbeOptions.prefault({}).describe("Options of a redis probe; only with type redis."),
});
/** A `heartbeat` probe. */
export const HeartbeatProbe = variant("heartbeat", {
  heartbeat: HeartbeatProbeOptions.prefault({}).describe(
    "Options of a heartbeat probe; only with type heartbeat.",
  ),
});
/** A `none` probe: the instance is healthy as soon as it is registered. */
export const NoneProbe = variant("none", {});

export type HttpProbe = z.output<typeof HttpProbe>;
export type TcpProbe = z.output<typeof TcpProbe>;
export type UdpProbe = z.output<typeof UdpProbe>;
export type GrpcProbe = z.output<typeof GrpcProbe>;
export type PostgresProbe = z.output<typeof PostgresProbe>;
export type RedisProbe = z.output<typeof RedisProbe>;
export type HeartbeatProbe = z.output<typeof HeartbeatProbe>;
export type NoneProbe = z.output<typeof NoneProbe>;

const MEMBERS = ["http", "tcp", "udp", "grpc", "postgres", "redis", "heartbeat"] as const;

/** One probe: a discriminated union on `type`. */
export const Probe = withRules(
  z.discriminatedUnion("type", [
    HttpProbe,
    TcpProbe,
    UdpProbe,
    GrpcProbe,
    PostgresProbe,
    RedisProbe,
    HeartbeatProbe,
    NoneProbe,
  ]),
  MEMBERS.map((m) => ({
    rule: `!has(self.${m}) || self.type == '${m}'`,
    message: `${m} is only allowed when type is ${m}`,
    fieldPath: `.${m}`,
    check: (p: { type: string }) => !(m in p) || p.type === m,
  })),
).describe("A probe. Set type and, optionally, the member field of the same name with its options.");
export type Probe = z.output<typeof Probe>;

/** The probe types that connect to a port (and may name one of the instance's ports). */
export const PORTED_PROBES = ["http", "tcp", "udp", "grpc", "postgres", "redis"] as const;
export function isPorted(type: string): type is (typeof PORTED_PROBES)[number] {
  return (PORTED_PROBES as readonly string[]).includes(type);
}

/** The Secret keys a probe reads (header values, passwords): all in the instance's namespace. */
export function probeSecretRefs(probe: Probe): SecretKeySelector[] {
  return [...ownSecretRefs(probe), ...tlsSecretRefs(probeTls(probe))];
}

/** The TLS settings of a probe, when it has any. */
export function probeTls(probe: Probe): TlsOptions | undefined {
  switch (probe.type) {
    case "http":
      return probe.http.tls;
    case "tcp":
      return probe.tcp.tls;
    case "grpc":
      return probe.grpc.tls;
    case "postgres":
      return probe.postgres.tls;
    case "redis":
      return probe.redis.tls;
    default:
      return undefined;
  }
}

/** The Secret keys TLS settings read: a CA bundle and a client certificate (tls.crt, tls.key). */
function tlsSecretRefs(tls: TlsOptions | undefined): SecretKeySelector[] {
  const ca = tls?.caBundleFrom?.secretKeyRef;
  const client = tls?.clientCertificate?.secretName;
  return [
    ...(ca ? [ca] : []),
    ...(client
      ? [
          { name: client, key: "tls.crt" },
          { name: client, key: "tls.key" },
        ]
      : []),
  ];
}

function ownSecretRefs(probe: Probe): SecretKeySelector[] {
  switch (probe.type) {
    case "http":
      return (probe.http.headers ?? []).flatMap((h) => h.valueFrom?.secretKeyRef ?? []);
    case "postgres":
      return probe.postgres.passwordFrom ? [probe.postgres.passwordFrom.secretKeyRef] : [];
    case "redis":
      return probe.redis.passwordFrom ? [probe.redis.passwordFrom.secretKeyRef] : [];
    default:
      return [];
  }
}

/** The port a probe targets (undefined: the instance's first port; always undefined for heartbeat/none). */
export function probePort(probe: Probe): PortRef | undefined {
  switch (probe.type) {
    case "http":
      return probe.http.port;
    case "tcp":
      return probe.tcp.port;
    case "udp":
      return probe.udp.port;
    case "postgres":
      return probe.postgres.port;
    case "redis":
      return probe.redis.port;
    case "grpc":
      return probe.grpc.port;
    default:
      return undefined;
  }
}

/**
 * Resolves a probe's port against an instance's ports: a number is used as
 * is, a name is looked up, and no port means the first port. Returns
 * undefined when a name is not among the ports.
 */
export function resolveProbePort(
  ref: PortRef | undefined,
  ports: readonly { name: string; port: number }[],
): number | undefined {
  if (typeof ref === "number") return ref;
  if (ref === undefined) return ports[0]?.port;
  return ports.find((p) => p.name === ref)?.port;
}

// --- the health check --------------------------------------------------------------

/** A CEL guard so that `duration()` is only called on strings the pattern accepts. */
const validDuration = (expr: string) => `${expr}.matches(${celRegex(DURATION)})`;

/** Flap damping: too many verdict changes within a window hold the instance unhealthy. */
export const FlapDamping = z
  .strictObject({
    maxTransitions: z
      .int()
      .min(1)
      .max(100)
      .default(4)
      .describe(
        "Verdict changes allowed within window; one more holds the instance unhealthy until it is stable.",
      ),
    window: durationBetween("1s", "24h")
      .default("5m")
      .describe("Sliding window over which transitions are counted, e.g. 5m (1s to 24h)."),
  })
  .describe("Rate-based flap damping. Off when absent.");
export type FlapDamping = z.output<typeof FlapDamping>;

/** How probe results combine into one verdict. */
export const CombineMode = z.enum(["all", "any"]);
export type CombineMode = z.output<typeof CombineMode>;

/** The health check of a service (or, as an override, of one instance). */
export const HealthCheck = withRules(
  z.strictObject({
    probes: z
      .array(Probe)
      .min(1)
      .max(8)
      .prefault([{ type: "tcp" }])
      .describe("Probes run against each instance address; default: one tcp probe on the first port."),
    combine: CombineMode.default("all").describe(
      "all: healthy when every probe succeeds; any: healthy when at least one succeeds.",
    ),
    interval: durationBetween("1s", "1h").default("10s").describe("Time between probe runs (1s to 1h)."),
    // At most 60 s: a probe holds a concurrency slot until its timeout, so a long one is a long-held slot.
    timeout: durationBetween("10ms", "60s")
      .default("1s")
      .describe("Time a probe may take; must be less than interval (10ms to 60s)."),
    initialDelay: durationBetween("0s", "1h")
      .default("0s")
      .describe("Delay before the first probe of a new instance (0s to 1h)."),
    failureThreshold: z
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe("Consecutive failures before a healthy instance becomes unhealthy (1-100)."),
    successThreshold: z
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe("Consecutive successes before an unhealthy instance becomes healthy (1-100)."),
    jitter: z
      .int()
      .min(0)
      .max(50)
      .default(10)
      .describe(
        "Random spread of probe start times, in percent of interval (0-50), so probes do not fire in bursts.",
      ),
    flapDamping: FlapDamping.optional().describe(
      "Holds instances that change verdict too often unhealthy; off when absent.",
    ),
    degradedLatency: durationBetween("1ms", "60s")
      .optional()
      .describe(
        "A probe that succeeds but takes longer than this is a degraded success (reason SlowResponse); less than timeout. Off when absent.",
      ),
    // No default stored: absent means the engine's (interval/4, at most timeout), which follows interval.
    recheckInterval: durationBetween("10ms", "1h")
      .optional()
      .describe(
        "After a result that differs from the verdict, the instance is retried at once and then probed this often until the threshold is met or a result agrees (10ms to interval; default interval/4, at most timeout; interval turns it off).",
      ),
  }),
  [
    {
      rule: `!has(self.recheckInterval) || !${validDuration("self.recheckInterval")} || !${validDuration("self.interval")} || duration(self.recheckInterval) <= duration(self.interval)`,
      message: "recheckInterval must not be longer than interval",
      fieldPath: ".recheckInterval",
      check: (h) => h.recheckInterval === undefined || !lessThan(h.interval, h.recheckInterval),
    },
    {
      rule: `!${validDuration("self.timeout")} || !${validDuration("self.interval")} || duration(self.timeout) < duration(self.interval)`,
      message: "timeout must be less than interval (timeout defaults to 1s, interval to 10s)",
      fieldPath: ".timeout",
      check: (h) => lessThan(h.timeout, h.interval),
    },
    {
      rule: `!has(self.degradedLatency) || !${validDuration("self.degradedLatency")} || !${validDuration("self.timeout")} || duration(self.degradedLatency) < duration(self.timeout)`,
      message: "degradedLatency must be less than timeout (timeout defaults to 1s)",
      fieldPath: ".degradedLatency",
      check: (h) => h.degradedLatency === undefined || lessThan(h.degradedLatency, h.timeout),
    },
    {
      rule: `!has(self.flapDamping) || !${validDuration("self.flapDamping.window")} || !${validDuration("self.interval")} || duration(self.flapDamping.window) > duration(self.interval)`,
      message: "flapDamping.window must be longer than interval",
      fieldPath: ".flapDamping.window",
      check: (h) => h.flapDamping === undefined || lessThan(h.interval, h.flapDamping.window),
    },
    {
      rule: "!self.probes.exists(p, p.type == 'none') || size(self.probes) == 1",
      message: "a probe of type none must be the only probe",
      fieldPath: ".probes",
      check: (h) => !h.probes.some((p) => p.type === "none") || h.probes.length === 1,
    },
    {
      rule: "self.probes.filter(p, p.type == 'heartbeat').size() <= 1",
      message: "at most one probe of type heartbeat is allowed",
      fieldPath: ".probes",
      check: (h) => h.probes.filter((p) => p.type === "heartbeat").length <= 1,
    },
    {
      rule: "self.probes.all(p, !has(p.name) || self.probes.exists_one(q, has(q.name) && q.name == p.name))",
      message: "probe names must be unique",
      fieldPath: ".probes",
      check: (h) =>
        duplicates(h.probes.flatMap((p, i) => (p.name ? [p.name] : [`#${i}`]))).map((i) => [
          "probes",
          i,
          "name",
        ]),
    },
  ],
).describe(
  "How instances are probed: the probes, how their results combine, timing, thresholds and flap damping. A ServiceInstance's spec.healthCheck overrides it field by field.",
);
export type HealthCheck = z.output<typeof HealthCheck>;
/** A health check as written by a user (defaults not yet applied). */
export type HealthCheckInput = z.input<typeof HealthCheck>;

/** True when both are valid durations and a < b; true as well when either is invalid (reported elsewhere). */
function lessThan(a: string, b: string): boolean {
  try {
    return parseDuration(a) < parseDuration(b);
  } catch {
    return true;
  }
}

/** The health check with every default applied (one tcp probe every 10s). */
export const DEFAULT_HEALTH_CHECK: HealthCheck = deepFreeze(HealthCheck.parse({}));

// --- the per-instance override -----------------------------------------------------

/**
 * `schema` without its default and optionality (zod default, prefault,
 * optional), keeping its own rules: an override field is either set by the
 * user or absent, never filled in (by zod or, through the CRD, by the API
 * server), so that absent means "the policy's".
 */
function bare(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional)
    s = s.unwrap() as z.ZodType;
  return s;
}

/** The fields of `object`, each optional without a default, with its description. */
function overrideShape(object: z.ZodObject, replace: Record<string, z.ZodType> = {}): z.ZodRawShape {
  return Object.fromEntries(
    Object.entries(object.shape).map(([k, v]) => {
      const field = (replace[k] ?? bare(v as z.ZodType)).optional();
      const description = (v as z.ZodType).description;
      return [k, description ? field.describe(description) : field];
    }),
  );
}

const overrideVariant = <T extends ProbeType>(type: T, member?: z.ZodObject) =>
  z.strictObject(
    {
      type: probeTypeField(type),
      name: probeName,
      ...(member
        ? {
            [type]: z
              .strictObject(overrideShape(member))
              .optional()
              .describe(`Fields of the ${type} probe to override; the others are the policy's.`),
          }
        : {}),
    },
    {
      error: (iss) =>
        iss.code === "unrecognized_keys"
          ? `only the "${type}" member is allowed for a probe of type ${type}`
          : undefined,
    },
  );

/**
 * One probe of an override: merged into the policy's probe of the same type
 * (and name, if it names one), field by field; lists (headers,
 * expectedStatuses) and objects (tls, bodyMatch) replace the policy's whole.
 */
export const ProbeOverride = withRules(
  z.discriminatedUnion("type", [
    overrideVariant("http", HttpProbeOptions),
    overrideVariant("tcp", TcpProbeOptions),
    overrideVariant("udp", UdpProbeOptions),
    overrideVariant("grpc", GrpcProbeOptions),
    overrideVariant("postgres", PostgresProbeOptions),
    overrideVariant("redis", RedisProbeOptions),
    overrideVariant("heartbeat", HeartbeatProbeOptions),
    overrideVariant("none"),
  ]),
  MEMBERS.map((m) => ({
    rule: `!has(self.${m}) || self.type == '${m}'`,
    message: `${m} is only allowed when type is ${m}`,
    fieldPath: `.${m}`,
    check: (p: { type: string }) => !(m in p) || p.type === m,
  })),
).describe(
  "A probe override: merged field by field into the policy's probe of the same type (and name, when it names one); added when there is none.",
);
/** A probe override as parsed (the schema is built from the probe schemas, so its type is spelled out). */
export interface ProbeOverride {
  type: ProbeType;
  name?: string;
  http?: Partial<HttpProbeOptions>;
  tcp?: Partial<TcpProbeOptions>;
  udp?: Partial<UdpProbeOptions>;
  grpc?: Partial<GrpcProbeOptions>;
  postgres?: Partial<PostgresProbeOptions>;
  redis?: Partial<RedisProbeOptions>;
  heartbeat?: Partial<HeartbeatProbeOptions>;
}

/** A durations pair in an override: both set and valid, else nothing to check here (the merged check is). */
const bothValid = (a: string, b: string) =>
  `!has(self.${a}) || !has(self.${b}) || !${validDuration(`self.${a}`)} || !${validDuration(`self.${b}`)}`;

/**
 * ServiceInstance.spec.healthCheck: overrides of the governing policy's (or
 * the operator default's) health check, merged like a Kubernetes strategic
 * merge patch. Set fields win; absent fields are the policy's; probes merge
 * by type. An override that sets every scalar field and the probes (as every
 * object written before overrides merged does, because the API server stored
 * the defaults) replaces the policy's check as a whole. See
 * mergeHealthCheck() in src/operator/effective.ts and docs/api.md.
 */
export const HealthCheckOverride = withRules(
  z.strictObject(
    overrideShape(HealthCheck as unknown as z.ZodObject, {
      probes: z.array(ProbeOverride).min(1).max(8),
      flapDamping: z.strictObject(overrideShape(FlapDamping)),
    }),
  ) as unknown as z.ZodType<HealthCheckOverride>,
  [
    {
      rule: `${bothValid("timeout", "interval")} || duration(self.timeout) < duration(self.interval)`,
      message: "timeout must be less than interval",
      fieldPath: ".timeout",
      check: (h) => h.timeout === undefined || h.interval === undefined || lessThan(h.timeout, h.interval),
    },
    {
      rule: `${bothValid("degradedLatency", "timeout")} || duration(self.degradedLatency) < duration(self.timeout)`,
      message: "degradedLatency must be less than timeout",
      fieldPath: ".degradedLatency",
      check: (h) =>
        h.degradedLatency === undefined || h.timeout === undefined || lessThan(h.degradedLatency, h.timeout),
    },
    {
      rule: `${bothValid("recheckInterval", "interval")} || duration(self.recheckInterval) <= duration(self.interval)`,
      message: "recheckInterval must not be longer than interval",
      fieldPath: ".recheckInterval",
      check: (h) =>
        h.recheckInterval === undefined ||
        h.interval === undefined ||
        !lessThan(h.interval, h.recheckInterval),
    },
    {
      rule: "!has(self.probes) || self.probes.all(p, !has(p.name) || self.probes.exists_one(q, has(q.name) && q.name == p.name))",
      message: "probe names must be unique",
      fieldPath: ".probes",
      check: (h) =>
        duplicates((h.probes ?? []).flatMap((p, i) => (p.name ? [p.name] : [`#${i}`]))).map((i) => [
          "probes",
          i,
          "name",
        ]),
    },
  ],
).describe(
  "Overrides of the policy's health check for this instance, merged field by field (like a strategic merge patch): set fields win, absent ones are the policy's, probes merge by type. Setting every field (probes, combine, interval, timeout, initialDelay, failureThreshold, successThreshold, jitter) replaces the policy's check as a whole.",
);
/** A health check override as parsed: every field optional. */
export interface HealthCheckOverride extends Partial<Omit<HealthCheck, "probes" | "flapDamping">> {
  probes?: ProbeOverride[];
  flapDamping?: Partial<FlapDamping>;
}
