/**
 * UDP probe: sends one datagram and is healthy when a reply comes back
 * (matching `expectRegex` when set) before the deadline. The socket is
 * connected to the pinned address, so the kernel only delivers datagrams from
 * that address and port, and an ICMP port-unreachable for it surfaces as
 * ECONNREFUSED: a closed port fails at once (`PortUnreachable`) instead of
 * waiting for the timeout. No reply at all is `Timeout` (UDP cannot tell a
 * silent server from a dropped datagram).
 */
import { createSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { classifyError, fail, type Outcome, ok, Reason } from "./reasons.ts";
import { linearRegex } from "./regex.ts";
import type { ProbeSignal } from "./signal.ts";

export interface UdpProbeContext {
  /** The IP address the engine resolved and the destination policy allowed; never a name. */
  address: string;
  port: number;
  signal: ProbeSignal;
}

export interface UdpProbeParams {
  /** Bytes sent (already encoded). */
  payload: Uint8Array;
  /** Regular expression the reply (as UTF-8) must match; any reply when absent. */
  expectRegex?: string;
}

export function udpProbe(p: UdpProbeParams, ctx: UdpProbeContext): Promise<Outcome> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(classifyError(ctx.signal.reason, ctx.signal));
      return;
    }
    const socket = createSocket(isIPv6(ctx.address) ? "udp6" : "udp4");
    let settled = false;
    const settle = (o: Outcome) => {
      if (settled) return;
      settled = true;
      ctx.signal.onabort = undefined;
      socket.close();
      resolve(o);
    };
    ctx.signal.onabort = () => settle(classifyError(ctx.signal.reason, ctx.signal));
    socket.on("error", (err: NodeJS.ErrnoException) => {
      // On a connected UDP socket the kernel reports the ICMP port-unreachable as ECONNREFUSED.
      if (err.code === "ECONNREFUSED")
        settle(fail(Reason.PortUnreachable, `${ctx.address}:${ctx.port}: port unreachable (ICMP)`));
      else settle(classifyError(err, ctx.signal));
    });
    socket.on("message", (msg) => {
      if (p.expectRegex === undefined) {
        settle(ok(`reply of ${msg.length} bytes`));
        return;
      }
      const text = msg.toString("utf8");
      if (linearRegex(p.expectRegex).test(text)) settle(ok(`reply of ${msg.length} bytes matched`));
      else
        settle(
          fail(
            Reason.ResponseMismatch,
            `reply ${JSON.stringify(text.slice(0, 64))} does not match /${p.expectRegex}/`,
          ),
        );
    });
    socket.connect(ctx.port, ctx.address, () => {
      if (settled) return;
      socket.send(p.payload, (err) => {
        if (err) socket.emit("error", err);
      });
    });
  });
}
