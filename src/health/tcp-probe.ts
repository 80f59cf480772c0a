/**
 * TCP probe: healthy when a connection is established before the deadline
 * and, with `tls`, a TLS handshake completes (server verified, the client
 * certificate presented). Nothing is sent; the socket is closed at once.
 *
 * Under TLS 1.3 the client's handshake ends before the server has checked
 * the client's certificate: a server that refuses it answers with an alert
 * one round trip later. So after a TLS 1.3 handshake the probe waits for the
 * server's verdict: its first session ticket, any data or a clean close is an
 * acceptance, an alert (a socket error) is a failure. A server that sends
 * nothing is taken as accepting when the deadline comes.
 */
import { connect, isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { withCertExpiry } from "./cert-expiry.ts";
import { classifyError, type Outcome, ok } from "./reasons.ts";
import type { ProbeSignal } from "./signal.ts";
import type { TlsSpec } from "./types.ts";

export interface TcpProbeContext {
  address: string;
  /** The target's host: the default TLS server name when it is a DNS name. */
  host?: string;
  port: number;
  signal: ProbeSignal;
  tls?: TlsSpec;
}

const connected = ok("connected");

export function tcpProbe(ctx: TcpProbeContext): Promise<Outcome> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(classifyError(ctx.signal.reason, ctx.signal));
      return;
    }
    const tls = ctx.tls;
    const host = ctx.host ?? ctx.address;
    const servername = tls?.serverName ?? (isIP(host) === 0 ? host : undefined);
    const socket = tls
      ? tlsConnect({
          host: ctx.address,
          port: ctx.port,
          ...(servername ? { servername } : {}),
          ...(tls.caBundle ? { ca: tls.caBundle } : {}),
          ...(tls.clientCert ? { cert: tls.clientCert.cert, key: tls.clientCert.key } : {}),
          rejectUnauthorized: !tls.insecureSkipVerify,
        })
      : connect({ host: ctx.address, port: ctx.port });
    let handshaken: Outcome | undefined;
    const settle = (o: Outcome) => {
      ctx.signal.onabort = undefined;
      socket.destroy();
      resolve(o);
    };
    const accepted = () => {
      const o = handshaken!;
      settle(tls?.expiryWarningMs !== undefined ? withCertExpiry(o, socket, tls.expiryWarningMs) : o);
    };
    ctx.signal.onabort = () =>
      handshaken ? accepted() : settle(classifyError(ctx.signal.reason, ctx.signal));
    if (!tls) {
      socket.once("connect", () => settle(connected));
    } else {
      socket.once("secureConnect", () => {
        const protocol = "getProtocol" in socket ? socket.getProtocol() : null;
        handshaken = ok(`TLS handshake completed (${protocol ?? "TLS"})`);
        if (protocol !== "TLSv1.3") return accepted();
        // TLS 1.3: the server's ticket or data says it accepted the client's Finished (and certificate).
        socket.once("session", accepted);
        socket.once("data", accepted);
        socket.once("end", accepted);
      });
    }
    socket.on("error", (err) => settle(classifyError(err, ctx.signal)));
  });
}
