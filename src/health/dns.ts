/**
 * DNS names of targets, resolved with caching: one lookup per name per
 * refresh period however many targets share it, concurrent lookups of a name
 * coalesced, failures cached briefly, lookups bounded by a timeout
 * (getaddrinfo itself cannot be cancelled, but nobody waits on it).
 * Bounded: an answer past its refresh period is worth nothing (the next
 * lookup asks again), so such entries are evicted (at the latest one refresh
 * period later, and by `sweep`), and with `maxEntries` the least recently used
 * name goes first: names that targets' redirects invent cannot grow it.
 *
 * Two resolvers: the system's (getaddrinfo: /etc/hosts, search domains) and
 * `dnsServersResolver`, which asks given DNS servers directly (A and AAAA).
 */
import { Resolver as DnsResolver, lookup } from "node:dns/promises";
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

/** At most this many servers in `dnsServersResolver` (and `probing.dnsServers`). */
export const MAX_DNS_SERVERS = 8;

/**
 * Why `server` is not a DNS server address Roster accepts, or undefined if it
 * is: an IP address, optionally with a port (`10.0.0.10`, `10.0.0.10:53`,
 * `fd00::10`, `[fd00::10]:53`). Names are refused: resolving the resolver
 * would need a resolver.
 */
export function dnsServerProblem(server: string): string | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  const v4 = /^([0-9.]+)(?::(\d+))?$/.exec(server);
  let ip: string;
  let port: string | undefined;
  if (bracketed) {
    ip = bracketed[1]!;
    port = bracketed[2];
    if (isIP(ip) !== 6) return "brackets are for IPv6 addresses: [fd00::10]:53";
  } else if (v4) {
    ip = v4[1]!;
    port = v4[2];
    if (isIP(ip) !== 4) return "must be an IPv4 or IPv6 address, optionally with :port";
  } else {
    ip = server;
    if (isIP(ip) !== 6)
      return "must be an IPv4 or IPv6 address, optionally with :port ([fd00::10]:53 for IPv6)";
  }
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) return "port must be 1..65535";
  return undefined;
}

const nameMissing = new Set(["ENOTFOUND", "ENODATA"]);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * A resolver that queries `servers` directly for A and AAAA records (c-ares
 * through node:dns), bypassing /etc/resolv.conf, /etc/hosts and search
 * domains: names must be fully qualified. The two answers are merged. A name
 * that does not exist (NXDOMAIN) or has neither record type fails with
 * ENOTFOUND / ENODATA, which `dnsCache` treats as authoritative, as it does
 * for getaddrinfo; a timeout or SERVFAIL stays a transient failure, unless
 * the other record type answered.
 */
export function dnsServersResolver(servers: readonly string[]): Resolver {
  if (servers.length === 0 || servers.length > MAX_DNS_SERVERS) {
    throw new Error(`dnsServersResolver needs 1 to ${MAX_DNS_SERVERS} servers, got ${servers.length}`);
  }
  for (const s of servers) {
    const problem = dnsServerProblem(s);
    if (problem) throw new Error(`invalid DNS server ${JSON.stringify(s)}: ${problem}`);
  }
  // Per query and server: 1 s, twice; the cache's own timeout bounds the whole lookup.
  const resolver = new DnsResolver({ timeout: 1000, tries: 2 });
  resolver.setServers([...servers]);
  const where = servers.join(", ");
  return async (host) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const addresses = [
      ...(v4.status === "fulfilled" ? v4.value : []),
      ...(v6.status === "fulfilled" ? v6.value : []),
    ];
    if (addresses.length > 0) return addresses;
    const errors = [v4, v6].flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    const transient = errors.find((e) => !nameMissing.has(codeOf(e) ?? ""));
    if (transient !== undefined) {
      const text = transient instanceof Error ? transient.message : String(transient);
      throw Object.assign(new Error(`${text} (DNS servers ${where})`), { code: codeOf(transient) });
    }
    // Both record types answered authoritatively with nothing (or one with nothing, the other NXDOMAIN).
    const nx = errors.some((e) => codeOf(e) === "ENOTFOUND");
    throw Object.assign(
      new Error(nx ? `no such name (NXDOMAIN from ${where})` : `no A or AAAA records (DNS servers ${where})`),
      { code: nx ? "ENOTFOUND" : "ENODATA" },
    );
  };
}

export interface DnsCacheOptions {
  resolver: Resolver;
  clock: Clock;
  /** How long a successful answer is used before the name is resolved again. */
  refreshMs: number;
  /** How long a failure is remembered. */
  negativeTtlMs: number;
  timeoutMs: number;
  /** Names kept at most; beyond it the least recently resolved is dropped (default: no limit). */
  maxEntries?: number;
}

export interface DnsCache {
  resolve(host: string): Promise<Resolution>;
  /** Drops a name no target uses any more. */
  forget(host: string): void;
  /** Drops every answer past its refresh period (or failure past its TTL); `resolve` also does, once per period. */
  sweep(): void;
  readonly size: number;
}

interface Entry {
  at: number;
  result?: Resolution;
  pending?: Promise<Resolution>;
}

const authoritativeCodes = new Set(["ENOTFOUND", "ENODATA", "ENONAME"]);

export function dnsCache(options: DnsCacheOptions): DnsCache {
  /** In order of last use (a use moves the entry to the end): the first is the least recently used. */
  const entries = new Map<string, Entry>();
  const maxEntries = options.maxEntries ?? Number.POSITIVE_INFINITY;
  let sweptAt = options.clock.now();

  const ttlOf = (e: Entry) => (e.result?.ok ? options.refreshMs : options.negativeTtlMs);
  const expired = (e: Entry, now: number) => !e.pending && !!e.result && now - e.at >= ttlOf(e);

  function sweep(): void {
    const now = options.clock.now();
    sweptAt = now;
    for (const [host, e] of entries) if (expired(e, now)) entries.delete(host);
  }

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
      const now = options.clock.now();
      if (now - sweptAt >= options.refreshMs) sweep();
      let entry = entries.get(host);
      if (entry) {
        entries.delete(host); // re-inserted last: most recently used
      } else {
        entry = { at: 0 };
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      }
      entries.set(host, entry);
      if (entry.pending) return entry.pending;
      if (entry.result && now - entry.at < ttlOf(entry)) return Promise.resolve(entry.result);
      return lookupOnce(host, entry);
    },
    forget(host) {
      entries.delete(host);
    },
    sweep,
    get size() {
      return entries.size;
    },
  };
}
