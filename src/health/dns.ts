/**
 * DNS names of targets, resolved with caching: one lookup per name per
 * refresh period however many targets share it, concurrent lookups of a name
 * coalesced, failures cached briefly, lookups bounded by a timeout
 * (getaddrinfo itself cannot be cancelled, but nobody waits on it).
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Clock } from "../util/clock.ts";
import type { Resolver } from "./types.ts";

export type Resolution =
  | { ok: true; addresses: string[] }
  /** `authoritative`: the name does not exist (drop its addresses); otherwise a transient failure. */
  | { ok: false; authoritative: boolean; message: string };

/** getaddrinfo through Node, so /etc/hosts and the cluster's search domains apply. */
export const systemResolver: Resolver = async (host) => {
  const found = await lookup(host, { all: true, order: "verbatim" });
  return found.map((a) => a.address);
};

export interface DnsCacheOptions {
  resolver: Resolver;
  clock: Clock;
  /** How long a successful answer is used before the name is resolved again. */
  refreshMs: number;
  /** How long a failure is remembered. */
  negativeTtlMs: number;
  timeoutMs: number;
}

export interface DnsCache {
  resolve(host: string): Promise<Resolution>;
  /** Drops a name no target uses any more. */
  forget(host: string): void;
  readonly size: number;
}

interface Entry {
  at: number;
  result?: Resolution;
  pending?: Promise<Resolution>;
}

const authoritativeCodes = new Set(["ENOTFOUND", "ENODATA", "ENONAME"]);

export function dnsCache(options: DnsCacheOptions): DnsCache {
  const entries = new Map<string, Entry>();

  function lookupOnce(host: string, entry: Entry): Promise<Resolution> {
    const pending = new Promise<Resolution>((done) => {
      const timer = options.clock.setTimer(
        () => done({ ok: false, authoritative: false, message: `resolving ${host} timed out` }),
        options.timeoutMs,
      );
      options.resolver(host).then(
        (addresses) => {
          timer.cancel();
          const unique = [
            ...new Set(addresses.map((a) => a.toLowerCase()).filter((a) => isIP(a) !== 0)),
          ].sort();
          done(
            unique.length > 0
              ? { ok: true, addresses: unique }
              : { ok: false, authoritative: true, message: `${host} has no addresses` },
          );
        },
        (err: unknown) => {
          timer.cancel();
          const code = (err as { code?: unknown } | undefined)?.code;
          const text = err instanceof Error ? err.message : String(err);
          done({
            ok: false,
            authoritative: typeof code === "string" && authoritativeCodes.has(code),
            message: `resolving ${host}: ${text}`,
          });
        },
      );
    });
    entry.pending = pending;
    return pending.then((result) => {
      if (entries.get(host) === entry) {
        entry.result = result;
        entry.at = options.clock.now();
        entry.pending = undefined;
      }
      return result;
    });
  }

  return {
    resolve(host) {
      if (isIP(host) !== 0) return Promise.resolve({ ok: true, addresses: [host.toLowerCase()] });
      let entry = entries.get(host);
      if (!entry) {
        entry = { at: 0 };
        entries.set(host, entry);
      }
      if (entry.pending) return entry.pending;
      const ttl = entry.result?.ok ? options.refreshMs : options.negativeTtlMs;
      if (entry.result && options.clock.now() - entry.at < ttl) return Promise.resolve(entry.result);
      return lookupOnce(host, entry);
    },
    forget(host) {
      entries.delete(host);
    },
    get size() {
      return entries.size;
    },
  };
}
