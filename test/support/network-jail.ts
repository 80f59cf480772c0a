/**
 * A safety net for tests that run the real operator on generated or hostile
 * input: every TCP/TLS connection this process opens (net, tls, http, http2
 * all go through `net.Socket.prototype.connect`) must go to loopback or to
 * the project's test range 198.18.0.0/15. Any other destination is refused
 * locally (the socket fails with EACCES; nothing is sent) and recorded, so a
 * test asserts `blocked` is empty: if the destination policy ever regressed,
 * the test fails instead of sending traffic off the machine. Not a fake of
 * anything under test: allowed connections are untouched.
 */
import { isIP, Socket } from "node:net";

export interface NetworkJail {
  /** Destinations refused, as `host:port`. */
  readonly blocked: readonly string[];
  release(): void;
}

const allowed = new Set(["localhost"]);

/** Loopback (127.0.0.0/8, ::1, localhost) or 198.18.0.0/15: where tests may connect. */
export function local(host: string): boolean {
  const ip = host.replace(/^::ffff:/i, "");
  if (allowed.has(ip)) return true;
  if (isIP(ip) === 4) {
    const [a, b] = ip.split(".").map(Number) as [number, number];
    return a === 127 || (a === 198 && (b === 18 || b === 19));
  }
  return ip === "::1";
}

type ConnectArgs = Parameters<Socket["connect"]>;

/** Where a `connect` call goes (its arguments may be normalized by net.connect into an array). */
function destination(args: unknown[]): { host: string; port: string } | undefined {
  const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
  if (first && typeof first === "object") {
    const o = first as { host?: string; port?: number | string; path?: string };
    if (o.path !== undefined) return undefined; // a Unix socket: local
    return { host: o.host ?? "localhost", port: String(o.port) };
  }
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    const second = Array.isArray(args[0]) ? (args[0] as unknown[])[1] : args[1];
    return { host: typeof second === "string" ? second : "localhost", port: String(first) };
  }
  return undefined; // a path
}

let installed: NetworkJail | undefined;

/** Installs the jail for this process (once; later calls return the same one). */
export function networkJail(): NetworkJail {
  if (installed) return installed;
  const blocked: string[] = [];
  const original = Socket.prototype.connect;
  Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
    const to = destination(args);
    if (to && !local(to.host)) {
      blocked.push(`${to.host}:${to.port}`);
      const err = Object.assign(new Error(`test network jail: ${to.host} is not a loopback address`), {
        code: "EACCES",
      });
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return original.apply(this, args as ConnectArgs);
  } as Socket["connect"];
  installed = {
    blocked,
    release() {
      Socket.prototype.connect = original;
      installed = undefined;
    },
  };
  return installed;
}
