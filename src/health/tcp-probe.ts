/**
 * TCP probe: healthy when a connection is established before the deadline.
 * The socket is closed at once; nothing is sent.
 */
import { connect } from "node:net";
import { classifyError, type Outcome, ok } from "./reasons.ts";
import type { ProbeSignal } from "./signal.ts";

export interface TcpProbeContext {
  address: string;
  port: number;
  signal: ProbeSignal;
}

const connected = ok("connected");

export function tcpProbe(ctx: TcpProbeContext): Promise<Outcome> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(classifyError(ctx.signal.reason, ctx.signal));
      return;
    }
    const socket = connect({ host: ctx.address, port: ctx.port });
    const settle = (o: Outcome) => {
      ctx.signal.onabort = undefined;
      socket.destroy();
      resolve(o);
    };
    ctx.signal.onabort = () => settle(classifyError(ctx.signal.reason, ctx.signal));
    socket.once("connect", () => settle(connected));
    socket.on("error", (err) => settle(classifyError(err, ctx.signal)));
  });
}
