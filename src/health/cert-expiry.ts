/**
 * The certificate-expiry check of TLS probes: a leaf certificate that expires
 * within the probe's warning threshold turns a success into
 * `CertificateExpiresSoon`, a degraded success (the server works today, at a
 * reduced weight until the certificate is renewed). An
 * expired one never gets here: verification fails first and classifyError
 * reports it as `CertificateExpired`.
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { degraded, type Outcome, Reason } from "./reasons.ts";

const DAY_MS = 86_400_000;

/**
 * `outcome` unchanged, or CertificateExpiresSoon when `socket` is a TLS socket
 * whose peer certificate's notAfter is less than `warningMs` after `now`
 * (wall-clock: certificates are dated in wall-clock time).
 */
export function withCertExpiry(
  outcome: Outcome,
  socket: Socket,
  warningMs: number,
  now = Date.now(),
): Outcome {
  if (!outcome.ok || !("getPeerCertificate" in socket)) return outcome;
  const cert = (socket as TLSSocket).getPeerCertificate();
  const notAfter = cert?.valid_to ? Date.parse(cert.valid_to) : Number.NaN;
  if (Number.isNaN(notAfter) || notAfter - now >= warningMs) return outcome;
  const days = Math.max(0, Math.floor((notAfter - now) / DAY_MS));
  return degraded(
    Reason.CertificateExpiresSoon,
    `${outcome.message}; certificate expires ${new Date(notAfter).toISOString()} (in ${days} days)`,
  );
}
