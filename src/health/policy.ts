/**
 * Destination policy (SSRF guard). The operator probes addresses that users
 * write, from inside the cluster: without a guard, a ServiceInstance could
 * aim the prober at the cloud metadata endpoint or at the operator's own
 * loopback services. A denied address is never connected to.
 *
 * Order: deny list (default: link-local 169.254.0.0/16 and fe80::/10, where
 * metadata endpoints live, and the metadata addresses outside them) >
 * loopback and unspecified addresses (denied unless `allowLoopback`) > allow
 * list (when non-empty, only those ranges).
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as their IPv4 form.
 * IPv6 forms that carry an IPv4 address a gateway or the kernel may connect
 * to (IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are
 * judged as IPv6 and, in addition, their IPv4 address must pass the deny
 * list and the loopback rule: 64:ff9b::a9fe:a9fe is 169.254.169.254.
 */
import { BlockList, isIP } from "node:net";

export interface DestinationPolicyConfig {
  /** When non-empty, only these CIDRs (or single IPs) may be probed. */
  allow?: string[];
  /** CIDRs never probed; replaces the default link-local ranges when given. */
  deny?: string[];
  /** Allow 127.0.0.0/8, ::1 and the unspecified addresses (which Linux routes to loopback). */
  allowLoopback?: boolean;
}

export const defaultDeny: readonly string[] = [
  "169.254.0.0/16", // link-local: AWS, GCP, Azure, OCI, DigitalOcean... metadata (169.254.169.254)
  "fe80::/10",
  "fd00:ec2::254/128", // AWS metadata over IPv6
  "100.100.100.200/32", // Alibaba Cloud metadata
];
const loopback = ["127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128"];

export type PolicyDecision = { allowed: true } | { allowed: false; message: string };

export interface DestinationPolicy {
  readonly config: DestinationPolicyConfig;
  check(ip: string): PolicyDecision;
}

interface Rule {
  cidr: string;
  list: BlockList;
}

export function parseCidr(cidr: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } {
  const [address = "", prefixText] = cidr.trim().split("/");
  const version = isIP(address);
  if (version === 0) throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: not an IP address`);
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > max ||
    (prefixText !== undefined && !/^\d+$/.test(prefixText))
  ) {
    throw new Error(`invalid CIDR ${JSON.stringify(cidr)}: prefix must be 0..${max}`);
  }
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

function rule(cidr: string): Rule {
  const p = parseCidr(cidr);
  const list = new BlockList();
  list.addSubnet(p.address, p.prefix, p.family);
  return { cidr: cidr.trim(), list };
}

function matches(rules: Rule[], ip: string, family: "ipv4" | "ipv6"): Rule | undefined {
  for (const r of rules) if (r.list.check(ip, family)) return r;
  return undefined;
}

/** ::ffff:a.b.c.d (or its hex form) to a.b.c.d; other addresses unchanged. */
export function unmapIPv4(ip: string): string {
  const m = /^::ffff:(.+)$/i.exec(ip);
  if (!m) return ip;
  const rest = m[1]!;
  if (isIP(rest) === 4) return rest;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(rest);
  if (!hex) return ip;
  const hi = Number.parseInt(hex[1]!, 16);
  const lo = Number.parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** The eight 16-bit words of a valid IPv6 address (a trailing dotted IPv4 part allowed). */
function ipv6Words(ip: string): number[] {
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  let text = ip;
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${ip.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const words = (part: string) => (part ? part.split(":").map((w) => Number.parseInt(w, 16)) : []);
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/**
 * The IPv4 address carried by an IPv4-compatible (::a.b.c.d), NAT64
 * (64:ff9b::/96) or 6to4 (2002:AABB:CCDD::/48) IPv6 address, with the form's
 * name; undefined for any other address (IPv4-mapped ones are unmapped first).
 */
export function embeddedIPv4(ip: string): { ipv4: string; form: string } | undefined {
  if (isIP(ip) !== 6) return undefined;
  const w = ipv6Words(ip);
  const zero = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (w[0] === 0x2002) return { ipv4: v4(w[1]!, w[2]!), form: "6to4" };
  if (w[0] === 0x64 && w[1] === 0xff9b && zero(2, 6)) return { ipv4: v4(w[6]!, w[7]!), form: "NAT64" };
  // :: and ::1 are IPv6's own unspecified and loopback addresses (the loopback rule has them).
  if (zero(0, 6) && (w[6] !== 0 || w[7]! > 1)) return { ipv4: v4(w[6]!, w[7]!), form: "IPv4-compatible" };
  return undefined;
}

/** Throws on an invalid CIDR, so a bad config is rejected when loaded rather than ignored. */
export function destinationPolicy(config: DestinationPolicyConfig = {}): DestinationPolicy {
  const deny = (config.deny ?? defaultDeny).map(rule);
  const allow = (config.allow ?? []).map(rule);
  const loop = loopback.map(rule);
  return {
    config,
    check(address) {
      const ip = unmapIPv4(address.replace(/%.*$/, ""));
      const version = isIP(ip);
      if (version === 0) return { allowed: false, message: `${address} is not an IP address` };
      const family = version === 4 ? "ipv4" : "ipv6";
      const denied = matches(deny, ip, family);
      if (denied) return { allowed: false, message: `${address} is in denied range ${denied.cidr}` };
      if (!config.allowLoopback && matches(loop, ip, family)) {
        return {
          allowed: false,
          message: `${address} is a loopback address; loopback probes are not allowed`,
        };
      }
      const embedded = embeddedIPv4(ip);
      if (embedded) {
        const inner = matches(deny, embedded.ipv4, "ipv4");
        if (inner) {
          const what = `${embedded.form} form of ${embedded.ipv4}`;
          return { allowed: false, message: `${address} (${what}) is in denied range ${inner.cidr}` };
        }
        if (!config.allowLoopback && matches(loop, embedded.ipv4, "ipv4")) {
          return {
            allowed: false,
            message: `${address} (${embedded.form} form of ${embedded.ipv4}) is a loopback address; loopback probes are not allowed`,
          };
        }
      }
      if (allow.length > 0 && !matches(allow, ip, family)) {
        return { allowed: false, message: `${address} is not in the allowed ranges` };
      }
      return { allowed: true };
    },
  };
}
