/**
 * Reasons are CamelCase (valid Kubernetes condition reasons); the detail,
 * such as the HTTP status code, goes in the bounded message.
 */
export const Reason = {
  Pending: "Pending",
  ProbeSucceeded: "ProbeSucceeded",
  NoProbe: "NoProbe",
  ConnectionRefused: "ConnectionRefused",
  ConnectionReset: "ConnectionReset",
  HostUnreachable: "HostUnreachable",
  Timeout: "Timeout",
  TLSError: "TLSError",
  CertificateExpired: "CertificateExpired",
  /** Degraded: a TLS server's certificate expires within the probe's expiryWarning. */
  CertificateExpiresSoon: "CertificateExpiresSoon",
  /** Degraded: the probe succeeded but took longer than the check's degradedLatency. */
  SlowResponse: "SlowResponse",
  /** Degraded: the HTTP status is one of the probe's degradedStatuses. */
  DegradedStatus: "DegradedStatus",
  /** Degraded: the HTTP response carried a Warning header (degradeOnWarning). */
  WarningHeader: "WarningHeader",
  HTTPStatus: "HTTPStatus",
  BodyMismatch: "BodyMismatch",
  /** A udp, postgres or redis reply was not the one expected. */
  ResponseMismatch: "ResponseMismatch",
  /** ICMP port unreachable for a udp probe: nothing listens on the port. */
  PortUnreachable: "PortUnreachable",
  /** The database server refused the credentials. */
  AuthenticationFailed: "AuthenticationFailed",
  /** A postgres or redis server has the other role than the probe's expectRole. */
  RoleMismatch: "RoleMismatch",
  /** The database server answered with an error (not accepting connections, loading...). */
  DatabaseError: "DatabaseError",
  ProtocolError: "ProtocolError",
  TooManyRedirects: "TooManyRedirects",
  DNSFailure: "DNSFailure",
  NotServing: "NotServing",
  ServiceUnknown: "ServiceUnknown",
  GRPCError: "GRPCError",
  LeaseExpired: "LeaseExpired",
  LeaseNotFound: "LeaseNotFound",
  LeaseReadError: "LeaseReadError",
  DestinationDenied: "DestinationDenied",
  PortNotFound: "PortNotFound",
  InvalidProbe: "InvalidProbe",
  NetworkError: "NetworkError",
  Flapping: "Flapping",
  AddressRemoved: "AddressRemoved",
} as const;

export type ReasonName = (typeof Reason)[keyof typeof Reason];

export interface Outcome {
  ok: boolean;
  reason: string;
  message: string;
  /** The database role the server reported (postgres and redis probes), when it answered. */
  role?: "primary" | "replica";
  /**
   * A success that works but less well (slow, rate-limited, certificate
   * about to expire): counts as a success for the verdict, and `reason` says
   * why it is degraded. Only with `ok`.
   */
  degraded?: true;
}

export const maxMessageLength = 256;

/** Messages end up in status and Events: keep them short and single-line. */
export function bounded(message: string): string {
  const line = message.replace(/\s+/g, " ").trim();
  return line.length <= maxMessageLength ? line : `${line.slice(0, maxMessageLength - 1)}…`;
}

export function ok(message = "probe succeeded"): Outcome {
  return { ok: true, reason: Reason.ProbeSucceeded, message };
}

/** A degraded success (see Outcome.degraded). */
export function degraded(reason: string, message: string): Outcome {
  return { ok: true, reason, message: bounded(message), degraded: true };
}

/** `outcome`, or SlowResponse when it is a plain success that took longer than `limitMs`. */
export function withLatency(outcome: Outcome, latencyMs: number, limitMs: number | undefined): Outcome {
  if (limitMs === undefined || !outcome.ok || outcome.degraded || latencyMs <= limitMs) return outcome;
  return degraded(
    Reason.SlowResponse,
    // No measured figure in the message: it would change the status on every probe.
    `${outcome.message}; slower than degradedLatency (${limitMs} ms)`,
  );
}

export function fail(reason: string, message: string): Outcome {
  return { ok: false, reason, message: bounded(message) };
}

/** Thrown into an AbortController when a probe's deadline passes. */
export class ProbeTimeout extends Error {
  override name = "ProbeTimeout";
}

const tlsCodes = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_UNTRUSTED",
  "CERT_REVOKED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "HOSTNAME_MISMATCH",
]);

/** Maps a Node network error (or an abort) to a reason. */
export function classifyError(err: unknown, signal?: { aborted: boolean; reason: unknown }): Outcome {
  if (signal?.aborted && signal.reason instanceof ProbeTimeout)
    return fail(Reason.Timeout, signal.reason.message);
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : String(err);
  switch (code) {
    case "ECONNREFUSED":
      return fail(Reason.ConnectionRefused, message);
    case "ECONNRESET":
    case "EPIPE":
      return fail(Reason.ConnectionReset, message);
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EHOSTDOWN":
    case "ENETDOWN":
    case "EADDRNOTAVAIL":
      return fail(Reason.HostUnreachable, message);
    case "ETIMEDOUT":
      return fail(Reason.Timeout, message);
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
    case "ENODATA":
      return fail(Reason.DNSFailure, message);
  }
  if (code === "CERT_HAS_EXPIRED") return fail(Reason.CertificateExpired, `${code}: ${message}`);
  if (
    tlsCodes.has(code) ||
    code.startsWith("ERR_SSL_") ||
    code.startsWith("ERR_TLS_") ||
    /\bSSL\b|TLS/.test(message)
  ) {
    return fail(Reason.TLSError, `${code ? `${code}: ` : ""}${message}`);
  }
  if (code.startsWith("HPE_")) return fail(Reason.ProtocolError, `${code}: ${message}`);
  return fail(Reason.NetworkError, `${code ? `${code}: ` : ""}${message}`);
}
