/**
 * IP address handling for publication: family, canonical text, and the
 * addresses an EndpointSlice may not hold.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { AddressFamily } from "../api/published.ts";

export type AddressCheck =
  | { ok: true; address: string; family: AddressFamily; sliceable: true }
  | { ok: true; address: string; family: AddressFamily; sliceable: false; reason: string }
  | { ok: false; reason: string };

/**
 * Canonical text of an IP: IPv4 dotted quad, IPv6 in the RFC 5952 form (lower
 * case, longest zero run compressed), IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as
 * IPv4 (as Kubernetes treats it). Canonical text makes equal addresses compare
 * equal in the slices and the ConfigMap, so a spelling change is no change.
 */
export function canonicalIp(input: string): { address: string; family: AddressFamily } | undefined {
  const text = input.trim();
  if (isIPv4(text)) return { address: text, family: "IPv4" };
  if (!isIPv6(text) || text.includes("%")) return undefined;
  // WHATWG URL serializes IPv6 hosts canonically (RFC 5952).
  const host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = Number.parseInt(mapped[1]!, 16);
    const lo = Number.parseInt(mapped[2]!, 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: "IPv4" };
  }
  return { address: host, family: "IPv6" };
}

/** The first 16-bit groups of a canonical IPv6 address, expanded. */
function ipv6Groups(address: string): number[] {
  const [head = "", tail] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16));
}

/**
 * Why the API server would refuse this address in an EndpointSlice
 * (apivalidation.ValidateNonSpecialIP: unspecified, loopback, link-local
 * unicast, link-local multicast), or undefined when it is accepted. One bad
 * address would fail the write of a whole slice, so such addresses are kept
 * out of slices (they still appear in the ConfigMap, where clients can use
 * them: a loopback target is legitimate for a same-host consumer).
 */
export function sliceRejection(address: string, family: AddressFamily): string | undefined {
  if (family === "IPv4") {
    // Canonical dotted quads (no leading zeros), so prefixes are exact.
    if (address === "0.0.0.0") return "unspecified address (0.0.0.0)";
    if (address.startsWith("127.")) return "loopback address (127.0.0.0/8)";
    if (address.startsWith("169.254.")) return "link-local address (169.254.0.0/16)";
    if (address.startsWith("224.0.0.")) return "link-local multicast address (224.0.0.0/24)";
    return undefined;
  }
  const g = ipv6Groups(address);
  if (g.every((x) => x === 0)) return "unspecified address (::)";
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback address (::1)";
  const first = g[0] ?? 0;
  if ((first & 0xffc0) === 0xfe80) return "link-local address (fe80::/10)";
  if ((first & 0xff0f) === 0xff02) return "link-local multicast address (ff02::/16)";
  return undefined;
}

export function checkAddress(input: string): AddressCheck {
  const ip = canonicalIp(input);
  if (!ip) return { ok: false, reason: `not an IP address: ${JSON.stringify(input)}` };
  const rejection = sliceRejection(ip.address, ip.family);
  if (rejection) return { ok: true, ...ip, sliceable: false, reason: rejection };
  return { ok: true, ...ip, sliceable: true };
}
