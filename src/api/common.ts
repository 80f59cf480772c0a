/**
 * Building blocks shared by both kinds: API coordinates, name formats,
 * durations, addresses, ports and the standard Kubernetes condition.
 *
 * Every pattern here is written in the common subset of JavaScript and RE2
 * (Go) regular expressions, because the same pattern is checked by zod in
 * Node and by the API server in Go.
 */
import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";
import { celRegex, withRules } from "./rules.ts";

/** The API group of Roster's custom resources. */
export const GROUP = "roster.dev";
/** The served and stored version. */
export const VERSION = "v1alpha1";
/** `apiVersion` of Roster objects: `roster.dev/v1alpha1`. */
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Enough to address a resource over REST (the controller runtime's and the CLI's one descriptor). */
export interface ResourceType {
  /** "" for the core group. */
  group: string;
  version: string;
  /** Lower-case plural, as in the URL: `configmaps`. */
  plural: string;
  kind: string;
  namespaced: boolean;
}

/** A Roster custom resource: its REST coordinates plus the names its CRD declares. */
export interface CustomResourceType extends ResourceType {
  singular: string;
  shortNames: string[];
}

// --- names ------------------------------------------------------------------

/** DNS-1035 label: what Service names must be (starts with a letter). */
export const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** DNS-1123 label. */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** DNS-1123 subdomain: what most object names must be. */
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value that is not empty (zones use this format). */
export const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** A qualified name: an optional DNS subdomain prefix and `/`, then a name (like label keys). */
export const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** An HTTP header field name (RFC 9110 token). */
export const HTTP_TOKEN = /^[-A-Za-z0-9!#$%&'*+.^_`|~]+$/;
/** A condition reason: CamelCase, as the Kubernetes API conventions ask. */
export const CONDITION_REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
/** A condition type (metav1.Condition). */
export const CONDITION_TYPE =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;

/** A DNS-1035 label of at most 63 characters. */
export const Dns1035Label = z
  .string()
  .min(1)
  .max(63)
  .regex(
    DNS1035_LABEL,
    "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter",
  );

/** A DNS-1123 subdomain of at most 253 characters (object names). */
export const ObjectName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    DNS1123_SUBDOMAIN,
    "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
  );

// --- durations ----------------------------------------------------------------

/** A duration such as `10s`, `500ms`, `1m30s` or `1.5h` (units h, m, s, ms). */
export const DURATION = /^([0-9]+(\.[0-9]+)?(h|ms|m|s))+$/;
const durationPart = /([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)/g;
const unitMs: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/**
 * Parses a duration string (`10s`, `500ms`, `1m30s`, `1.5h`) into
 * milliseconds. Throws a RangeError on anything else. Same syntax as Go's
 * time.ParseDuration (which CEL's `duration()` uses) restricted to h/m/s/ms.
 */
export function parseDuration(s: string): number {
  const ms = tryParseDuration(s);
  if (ms === undefined)
    throw new RangeError(`invalid duration ${JSON.stringify(s)} (use e.g. 10s, 500ms, 1m30s)`);
  return ms;
}

/** Like `parseDuration`, but returns undefined instead of throwing. */
export function tryParseDuration(s: string): number | undefined {
  if (typeof s !== "string" || s.length > 32 || !DURATION.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(durationPart)) total += Number(m[1]) * unitMs[m[2]!]!;
  return Math.round(total * 1e6) / 1e6;
}

/** Formats milliseconds as a duration string (`90000` → `1m30s`, `1500` → `1.5s`, `250` → `250ms`). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`cannot format ${ms} as a duration`);
  if (ms === 0) return "0s";
  if (ms < 1000) return `${+ms.toFixed(6)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${+s.toFixed(3)}s` : ""}`;
}

/** The base duration string schema (no range). */
const DurationString = z
  .string()
  .max(32)
  .regex(DURATION, "must be a duration such as 10s, 500ms or 1m30s (units: h, m, s, ms)");

/**
 * A duration string limited to [min, max] (both duration strings), checked
 * by zod and by CEL's `duration()` at admission.
 */
export function durationBetween(min: string, max: string) {
  const lo = parseDuration(min);
  const hi = parseDuration(max);
  return withRules(DurationString, [
    {
      // The guard keeps CEL from failing to parse what the pattern already rejected.
      rule: `!self.matches(${celRegex(DURATION)}) || (duration(self) >= duration('${min}') && duration(self) <= duration('${max}'))`,
      message: `must be between ${min} and ${max}`,
      check: (s) => {
        const ms = tryParseDuration(s);
        return ms === undefined || (ms >= lo && ms <= hi);
      },
    },
  ]);
}

// --- addresses ------------------------------------------------------------------

/** The 8 16-bit groups of a valid IPv6 address without a zone, or undefined. */
function ipv6Groups(s: string): number[] | undefined {
  if (!isIPv6(s) || s.includes("%")) return undefined;
  let text = s;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (last.includes(".")) {
    // An embedded IPv4 tail (e.g. ::ffff:1.2.3.4) stands for the last two groups.
    const [a = 0, b = 0, c = 0, d = 0] = last.split(".").map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith("::")) text = text.slice(0, -1);
  }
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  const [head = "", rest] = text.split("::");
  if (rest === undefined) return [...parse(head), ...tail];
  const h = parse(head);
  const r = parse(rest);
  return [...h, ...new Array<number>(8 - tail.length - h.length - r.length).fill(0), ...r, ...tail];
}

/**
 * Whether `s` is an IP address as the API server's CEL `isIP()` sees it:
 * IPv4 in dotted decimal without leading zeros, or IPv6 without a zone and
 * not IPv4-mapped (`::ffff:1.2.3.4`).
 */
export function isIP(s: string): boolean {
  if (isIPv4(s)) return true;
  const g = ipv6Groups(s);
  if (!g) return false;
  const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
  return !mapped;
}

/** Whether `s` is the unspecified address (`0.0.0.0` or `::`). */
export function isUnspecifiedIP(s: string): boolean {
  if (isIPv4(s)) return s === "0.0.0.0";
  const g = ipv6Groups(s);
  return !!g && g.every((x) => x === 0);
}

/** Whether `s` is a DNS name Roster accepts as an address (lowercase RFC 1123, not all digits). */
export function isDnsName(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s) && !/^[0-9.]+$/.test(s);
}

/** The kind of address an instance gives, or undefined when it is neither an IP nor a DNS name. */
export function addressKind(s: string): "IPv4" | "IPv6" | "DNS" | undefined {
  if (isIPv4(s)) return "IPv4";
  if (isIP(s)) return "IPv6";
  if (isDnsName(s)) return "DNS";
  return undefined;
}

const ADDRESS_MESSAGE =
  "must be an IPv4 address, an IPv6 address (no zone, not IPv4-mapped) or a lowercase DNS name, and not 0.0.0.0 or ::";

/** An instance address: IPv4, IPv6 or DNS name. */
export const Address = withRules(z.string().min(1).max(253), [
  {
    rule: `isIP(self) ? !ip(self).isUnspecified() : (self.matches(${celRegex(DNS1123_SUBDOMAIN)}) && !self.matches('^[0-9.]+$'))`,
    message: ADDRESS_MESSAGE,
    check: (s) => (isIP(s) ? !isUnspecifiedIP(s) : isDnsName(s)),
  },
]);

// --- ports ------------------------------------------------------------------

/** A port number, 1..65535. */
export const PortNumber = z.int().min(1).max(65535);

/** A port name: a DNS-1035 label, so that it is never mistaken for a number. */
export const PortName = z
  .string()
  .min(1)
  .max(63)
  .regex(
    DNS1035_LABEL,
    "must be a port name: a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)",
  );

/**
 * A port given by number or by the name of one of the instance's ports
 * (Kubernetes int-or-string).
 */
export const PortRef = z
  .union([PortNumber, PortName], {
    error: "must be a port number (1-65535) or the name of one of the instance's ports",
  })
  .meta({ "x-kubernetes-int-or-string": true });

/** A port given by number or by name. */
export type PortRef = z.output<typeof PortRef>;

// --- time and conditions -------------------------------------------------------

/** An RFC 3339 timestamp, as Kubernetes writes them (`2025-01-02T03:04:05Z`). */
export const Timestamp = z.iso.datetime({ offset: true, error: "must be an RFC 3339 timestamp" });

/** The status of a condition. */
export const ConditionStatus = z.enum(["True", "False", "Unknown"]);
export type ConditionStatus = z.output<typeof ConditionStatus>;

/** A metav1.Condition, as the Kubernetes API conventions define it. */
export const Condition = z
  .strictObject({
    type: z
      .string()
      .min(1)
      .max(316)
      .regex(CONDITION_TYPE, "must be a condition type such as Ready")
      .describe("Type of condition in CamelCase, e.g. Ready, Healthy, Conflict."),
    status: ConditionStatus.describe("Status of the condition: True, False or Unknown."),
    observedGeneration: z
      .int()
      .min(0)
      .meta({ format: "int64" })
      .optional()
      .describe("metadata.generation of the object when the condition was set."),
    lastTransitionTime: Timestamp.describe("Last time the condition's status changed."),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(CONDITION_REASON, "must be CamelCase")
      .describe("Machine-readable CamelCase reason for the condition's last transition."),
    message: z.string().max(32768).describe("Human-readable details about the transition; may be empty."),
  })
  .describe("A condition of the object (metav1.Condition).");
export type Condition = z.output<typeof Condition>;

/**
 * The list of conditions, a map keyed by `type`. The API server enforces
 * unique types through the list-map; zod checks the same.
 */
export const Conditions = z
  .array(Condition)
  .max(16)
  .superRefine((list, ctx) => {
    for (const i of duplicates(list.map((c) => c.type))) {
      ctx.addIssue({
        code: "custom",
        message: "condition types must be unique",
        path: [i, "type"],
        input: list,
      });
    }
  })
  .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] });

/** Indices of the items that repeat an earlier item. */
export function duplicates(values: readonly unknown[]): number[] {
  const seen = new Set<unknown>();
  const out: number[] = [];
  values.forEach((v, i) => {
    if (seen.has(v)) out.push(i);
    seen.add(v);
  });
  return out;
}

/** Length in Unicode code points, which is what CEL's `size()` counts. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Well-known condition types of Roster objects (Kubernetes convention: CamelCase, positive polarity). */
export const ConditionTypes = Object.freeze({
  /** ServiceInstance: published as ready (healthy and not drained). DiscoveryPolicy: accepted and published. */
  Ready: "Ready",
  /** ServiceInstance: passes its health check. */
  Healthy: "Healthy",
  /** ServiceInstance: healthy, but its probes report it degraded (slow, rate-limited...): published at a reduced weight. */
  Degraded: "Degraded",
  /** ServiceInstance: its DNS name resolved to at least one address. */
  Resolved: "Resolved",
  /** ServiceInstance/DiscoveryPolicy: the endpoint set was published (Service, EndpointSlices, ConfigMap). */
  Published: "Published",
  /** DiscoveryPolicy: another policy governs the same service, or an object Roster does not manage is in the way. */
  Conflict: "Conflict",
} as const);
export type ConditionType = (typeof ConditionTypes)[keyof typeof ConditionTypes];

/** Freezes a value and everything inside it (for shared default objects). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * The slice of ObjectMeta that Roster's schemas look at. Everything else
 * the API server adds (uid, resourceVersion, managedFields, ...) passes through.
 */
export const ObjectMeta = z.looseObject({
  name: z.string().max(253).optional(),
  generateName: z.string().max(253).optional(),
  namespace: z.string().max(63).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  generation: z.int().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.string().optional(),
});
export type ObjectMeta = z.output<typeof ObjectMeta>;

/**
 * An instance's (or address's) health verdict: the probe engine decides it,
 * the publisher publishes by it. One vocabulary for both; `Unknown` until a
 * threshold is met (no verdict yet is no evidence either way).
 */
export type Verdict = "Unknown" | "Healthy" | "Unhealthy";
