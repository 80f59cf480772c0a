/**
 * The published endpoints document: what Roster writes into one ConfigMap per
 * (namespace, service) and what the Roster client library reads.
 *
 * This module is the contract between the operator (writer) and every reader.
 * It is documented for users in docs/publish.md; keep the two in step.
 *
 * Where it lives: ConfigMap `<name>` (default `<service>-roster`), data key
 * `endpoints.json` (PUBLISHED_DATA_KEY). The ConfigMap also carries the
 * revision in the annotation `roster.dev/published-revision` so that tools
 * can see it without parsing the document.
 *
 * Versioning (`formatVersion`, an integer: the format's major version):
 * - Readers accept exactly the major versions they know and reject others
 *   with PublishedFormatError code "UnsupportedVersion" (never guess).
 * - Within a major version the writer only makes additive changes: new
 *   optional fields. Readers ignore fields they do not know (the schemas below
 *   strip unknown keys), so an older reader keeps working.
 * - Anything else (removing or renaming a field, changing its meaning, adding
 *   a value to an enum such as `state` or `strategy`) is a new major version.
 *
 * Revision: a positive integer that increases by one on every change of the
 * document's content (everything except `revision` itself) and only then.
 * Nothing time-based is part of the content (no generatedAt): a timestamp
 * would change the bytes, and therefore the revision, on every write. The
 * one time in it, an endpoint's `slowStartSince`, is a fact about the
 * endpoint (when it turned healthy) written once: readers compute the ramp
 * from it and their own clock (slowStartWeight()).
 *
 * Determinism: serializePublishedEndpoints() sorts endpoints by (instance,
 * address), ports by name, tags, and object keys, so equal content always
 * gives equal bytes whatever order the writer assembled it in.
 *
 * Stale documents: when the service's full document would exceed
 * PUBLISHED_MAX_BYTES the writer does not leave the previous (outdated)
 * document in place. It writes a document with `stale` set and no
 * endpoints: a reader that knows `stale` refuses it (the Roster client throws
 * StalePublicationError); an older reader that ignores it sees an empty set,
 * never the outdated one.
 */
import { z } from "zod";

// --- labels ------------------------------------------------------------------
// What marks the objects Roster publishes; clients select the ConfigMaps by them.

/** Roster's field manager and managed-by value. */
export const ROSTER_MANAGER = "roster.dev";

/** Upstream label linking an EndpointSlice to its Service. */
export const LABEL_SERVICE_NAME = "kubernetes.io/service-name";
/** Upstream label naming the controller that owns an EndpointSlice. */
export const LABEL_SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by";
/** Recommended label marking every object Roster manages (value ROSTER_MANAGER). */
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
/** The logical Roster service an object is published for: selects all of them at once. */
export const LABEL_ROSTER_SERVICE = "roster.dev/service";

/** Labels on the Service and the ConfigMap of a service. */
export function publishedLabels(service: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: ROSTER_MANAGER, [LABEL_ROSTER_SERVICE]: service };
}

/** The format major version this module writes and reads. */
export const PUBLISHED_FORMAT_VERSION = 1;
/** Format major versions parsePublishedEndpoints() accepts. */
export const SUPPORTED_FORMAT_VERSIONS: readonly number[] = [PUBLISHED_FORMAT_VERSION];
/** The ConfigMap data key that holds the JSON document. */
export const PUBLISHED_DATA_KEY = "endpoints.json";
/** ConfigMap annotation repeating the document's revision (informational). */
export const PUBLISHED_REVISION_ANNOTATION = "roster.dev/published-revision";
/**
 * ConfigMap annotation present exactly while the document is stale, holding
 * the stale reason (e.g. `OverBudget`): lets the operator and tools see it
 * without parsing the document.
 */
export const PUBLISHED_STALE_ANNOTATION = "roster.dev/published-stale";
/**
 * The largest document the writer produces, in UTF-8 bytes. A ConfigMap holds
 * at most 1 MiB in total; the rest is left for metadata.
 */
export const PUBLISHED_MAX_BYTES = 1_000_000;

export const LOAD_BALANCING_STRATEGIES = [
  "RoundRobin",
  "WeightedRoundRobin",
  "LeastConnections",
  "Random",
  "ConsistentHash",
] as const;
export const loadBalancingStrategySchema = z.enum(LOAD_BALANCING_STRATEGIES);
export type LoadBalancingStrategy = z.infer<typeof loadBalancingStrategySchema>;

export const HASH_ALGORITHMS = ["Ring", "Maglev"] as const;
export const hashAlgorithmSchema = z.enum(HASH_ALGORITHMS);
export type HashAlgorithm = z.infer<typeof hashAlgorithmSchema>;

/**
 * Where a consistent-hash key comes from. `Caller`: the application passes the
 * key to pick() (a user id, a session id). `Header`, `Cookie`,
 * `QueryParameter`: the named part of an HTTP request (`name` required).
 * `SourceIP`: the client's address.
 */
export const HASH_KEY_SOURCES = ["Caller", "Header", "Cookie", "QueryParameter", "SourceIP"] as const;
export const hashKeySourceSchema = z.enum(HASH_KEY_SOURCES);
export type HashKeySource = z.infer<typeof hashKeySourceSchema>;

const NAMED_KEY_SOURCES: readonly HashKeySource[] = ["Header", "Cookie", "QueryParameter"];

export const hashKeySchema = z
  .object({
    source: hashKeySourceSchema,
    /** Header, cookie or query parameter name; only for those sources. */
    name: z.string().min(1).max(256).optional(),
  })
  .superRefine((key, ctx) => {
    const named = NAMED_KEY_SOURCES.includes(key.source);
    if (named && key.name === undefined) {
      ctx.addIssue({ code: "custom", path: ["name"], message: `key source ${key.source} needs a name` });
    }
    if (!named && key.name !== undefined) {
      ctx.addIssue({ code: "custom", path: ["name"], message: `key source ${key.source} takes no name` });
    }
  });
export type HashKey = z.infer<typeof hashKeySchema>;

export const consistentHashSchema = z.object({
  algorithm: hashAlgorithmSchema,
  /**
   * Ring: the minimum number of points on the ring (virtual nodes in total,
   * shared by weight; like Envoy's minimum_ring_size, so that a set change
   * does not rescale the ring). Maglev: the lookup table size (a prime such
   * as 65537).
   */
  tableSize: z.int().min(1).max(16_777_216),
  key: hashKeySchema,
});
export type ConsistentHash = z.infer<typeof consistentHashSchema>;

/**
 * Slow start parameters (the policy's loadBalancing.slowStart): an endpoint
 * with `slowStartSince` is weighed by slowStartWeight() until `windowMs`
 * after that time.
 */
export const publishedSlowStartSchema = z.object({
  /** The ramp's length in milliseconds. */
  windowMs: z.int().min(1000).max(86_400_000),
  /** The ramp's shape: factor (t/window)^(1/aggression); 1 is linear. */
  aggression: z.number().gt(0).max(100),
  /** The ramp's floor in percent of the weight. */
  minWeightPercent: z.number().min(0).max(100),
});
export type PublishedSlowStart = z.infer<typeof publishedSlowStartSchema>;

export const loadBalancingSchema = z
  .object({
    strategy: loadBalancingStrategySchema,
    /**
     * The policy asks consumers to prefer endpoints in their own zone while
     * enough of them are ready (the ConfigMap side of zone hints).
     */
    zoneAware: z.boolean(),
    /** Present when strategy is ConsistentHash; ignored otherwise. */
    consistentHash: consistentHashSchema.optional(),
    /** Present when the policy ramps up endpoints that turn healthy (never with ConsistentHash). */
    slowStart: publishedSlowStartSchema.optional(),
  })
  .superRefine((lb, ctx) => {
    if (lb.strategy === "ConsistentHash" && lb.consistentHash === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["consistentHash"],
        message: "strategy ConsistentHash needs consistentHash options",
      });
    }
  });
export type LoadBalancing = z.infer<typeof loadBalancingSchema>;

export const PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;
export const protocolSchema = z.enum(PROTOCOLS);
export type Protocol = z.infer<typeof protocolSchema>;

export const publishedPortSchema = z.object({
  /** The instance's port name (DNS label); unique within an endpoint. */
  name: z.string().min(1).max(63),
  port: z.int().min(1).max(65535),
  protocol: protocolSchema,
  appProtocol: z.string().min(1).max(316).optional(),
});
export type PublishedPort = z.infer<typeof publishedPortSchema>;

/**
 * Endpoint states. `ready` (below) is true exactly for Ready and Panic: those
 * are the endpoints that should receive new traffic.
 * - Ready: healthy and not drained.
 * - Panic: not healthy (Unhealthy or Pending verdict) but published as ready
 *   because the service is in panic (document `panic: true`): fail open.
 * - Draining: `spec.drain` is set. Existing traffic may finish; no new
 *   traffic. `healthy` still reports the probe verdict.
 * - Unhealthy: the health check fails and the service is not in panic.
 * - Pending: no verdict yet (not probed yet, e.g. a new instance).
 */
export const ENDPOINT_STATES = ["Ready", "Panic", "Draining", "Unhealthy", "Pending"] as const;
export const endpointStateSchema = z.enum(ENDPOINT_STATES);
export type EndpointState = z.infer<typeof endpointStateSchema>;

/** True for the states that receive new traffic (Ready, Panic). */
export function isRoutableState(state: EndpointState): boolean {
  return state === "Ready" || state === "Panic";
}

export const ADDRESS_FAMILIES = ["IPv4", "IPv6"] as const;
export const addressFamilySchema = z.enum(ADDRESS_FAMILIES);
export type AddressFamily = z.infer<typeof addressFamilySchema>;

export const publishedEndpointSchema = z
  .object({
    /** The ServiceInstance name. An instance with several addresses gives several endpoints. */
    instance: z.string().min(1).max(253),
    /** An IP address in canonical form (IPv6 lower case, compressed). */
    address: z.union([z.ipv4(), z.ipv6()]),
    family: addressFamilySchema,
    /** Sorted by name; at least one. */
    ports: z.array(publishedPortSchema).min(1),
    /** Relative weight, 0..10000; 0 receives no traffic from weighted strategies. */
    weight: z.int().min(0).max(10000),
    zone: z.string().min(1).max(253).optional(),
    /** Sorted, without duplicates. */
    tags: z.array(z.string()),
    metadata: z.record(z.string(), z.string()),
    state: endpointStateSchema,
    /** Should receive new traffic: state is Ready or Panic. */
    ready: z.boolean(),
    /** The probe verdict is healthy (independent of drain and panic). */
    healthy: z.boolean(),
    /**
     * RFC 3339 time (UTC, whole seconds) the endpoint turned healthy, present
     * while it ramps up under loadBalancing.slowStart: readers weigh it by
     * slowStartWeight(). Written once per ramp, never rewritten as time passes.
     */
    slowStartSince: z.iso.datetime().optional(),
    /** The database role its postgres or redis probe last reported; absent when unknown. */
    role: z.enum(["primary", "replica"]).optional(),
    /**
     * Healthy but degraded (slow, rate-limited, certificate about to expire):
     * still Ready, and `weight` is already reduced by the policy's
     * degradedWeightPercent. Written only when true (absent means false).
     */
    degraded: z.literal(true).optional(),
  })
  .superRefine((ep, ctx) => {
    const v4 = !ep.address.includes(":");
    if ((ep.family === "IPv4") !== v4) {
      ctx.addIssue({
        code: "custom",
        path: ["family"],
        message: `family ${ep.family} does not match ${ep.address}`,
      });
    }
    if (ep.ready !== isRoutableState(ep.state)) {
      ctx.addIssue({
        code: "custom",
        path: ["ready"],
        message: `ready=${ep.ready} contradicts state ${ep.state}`,
      });
    }
    if (ep.state === "Ready" && !ep.healthy) {
      ctx.addIssue({ code: "custom", path: ["healthy"], message: "state Ready needs healthy=true" });
    }
    if (ep.degraded && !ep.healthy) {
      ctx.addIssue({ code: "custom", path: ["degraded"], message: "degraded needs healthy=true" });
    }
    const names = new Set<string>();
    for (const [i, p] of ep.ports.entries()) {
      if (names.has(p.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["ports", i, "name"],
          message: `duplicate port name ${p.name}`,
        });
      }
      names.add(p.name);
    }
  });
export type PublishedEndpoint = z.infer<typeof publishedEndpointSchema>;

/**
 * Why a document is stale. Written today: `OverBudget` (the full document is
 * larger than PUBLISHED_MAX_BYTES). A string, not an enum, so that a new
 * reason is an additive change: readers refuse a stale document whatever
 * its reason.
 */
export const STALE_OVER_BUDGET = "OverBudget";

export const publishedStaleSchema = z.object({
  reason: z.string().min(1).max(63),
  /** Size in UTF-8 bytes of the full document that could not be written. */
  bytes: z.int().min(0),
  /** The budget it exceeded (PUBLISHED_MAX_BYTES). */
  limit: z.int().min(1),
});
export type PublishedStale = z.infer<typeof publishedStaleSchema>;

export const publishedEndpointsSchema = z
  .object({
    formatVersion: z.literal(PUBLISHED_FORMAT_VERSION),
    /** Increases by one on every content change, and only then. Starts at 1. */
    revision: z.int().min(1),
    namespace: z.string().min(1).max(63),
    service: z.string().min(1).max(63),
    /** True when fewer than the policy's panicThreshold percent of instances are healthy. */
    panic: z.boolean(),
    loadBalancing: loadBalancingSchema,
    /** Every resolved (instance, address) pair, in every state, sorted by (instance, address). */
    endpoints: z.array(publishedEndpointSchema),
    /**
     * Present when the writer could not publish the current set: the
     * document then has no endpoints, and readers must not route from it
     * (nor keep routing on an older revision as if it were current).
     */
    stale: publishedStaleSchema.optional(),
  })
  .superRefine((doc, ctx) => {
    if (doc.stale && doc.endpoints.length > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["endpoints"],
        message: "a stale document carries no endpoints",
      });
    }
    const seen = new Set<string>();
    for (const [i, ep] of doc.endpoints.entries()) {
      const id = `${ep.instance}\u0000${ep.address}`;
      if (seen.has(id)) {
        ctx.addIssue({
          code: "custom",
          path: ["endpoints", i],
          message: `duplicate endpoint ${ep.instance} ${ep.address}`,
        });
      }
      seen.add(id);
    }
  });
/** The whole document as stored in the ConfigMap. */
export type PublishedEndpoints = z.infer<typeof publishedEndpointsSchema>;
/** The document without its revision: what "content" means for revision bumps. */
export type PublishedContent = Omit<PublishedEndpoints, "revision">;

// --- slow start ------------------------------------------------------------------

/** A published time as it is written: RFC 3339, UTC, whole seconds (`2026-01-02T03:04:05Z`). */
export function formatPublishedTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The share of its weight an endpoint gets `elapsedMs` after its ramp
 * started: Envoy's slow start, max(minWeightPercent / 100,
 * (max(elapsed s, 1) / window s)^(1 / aggression)), and 1 from the end of
 * the window on. A negative elapsed time (the reader's clock behind the
 * writer's) counts as the ramp's start.
 */
export function slowStartFactor(elapsedMs: number, slowStart: PublishedSlowStart): number {
  if (elapsedMs >= slowStart.windowMs) return 1;
  const timeFactor = Math.max(elapsedMs, 1000) / slowStart.windowMs;
  return Math.min(1, Math.max(slowStart.minWeightPercent / 100, timeFactor ** (1 / slowStart.aggression)));
}

/**
 * The weight a reader balances an endpoint by at `nowMs` (ms since the
 * epoch): its published weight, ramped by slowStartFactor() while it is in
 * slow start. An integer: weight × factor rounded to nearest, and at least 1
 * for a weight above 0, so that a ramping endpoint is never dropped (a
 * service whose only healthy endpoint ramps still has it). This is the one
 * place the ramp is computed; readers in other languages follow it (golden
 * values in schemas/balance-vectors.v1.json, `slowStart`).
 */
export function slowStartWeight(
  endpoint: Pick<PublishedEndpoint, "weight" | "slowStartSince">,
  slowStart: PublishedSlowStart | undefined,
  nowMs: number,
): number {
  const { weight, slowStartSince } = endpoint;
  if (!slowStart || slowStartSince === undefined || weight <= 0) return weight;
  const since = Date.parse(slowStartSince);
  if (!Number.isFinite(since)) return weight;
  const factor = slowStartFactor(nowMs - since, slowStart);
  return factor >= 1 ? weight : Math.max(1, Math.round(weight * factor));
}

/** When an endpoint's ramp ends (ms since the epoch), or undefined when it has none. */
export function slowStartEnd(
  endpoint: Pick<PublishedEndpoint, "slowStartSince">,
  slowStart: PublishedSlowStart | undefined,
): number | undefined {
  if (!slowStart || endpoint.slowStartSince === undefined) return undefined;
  const since = Date.parse(endpoint.slowStartSince);
  return Number.isFinite(since) ? since + slowStart.windowMs : undefined;
}

export type PublishedFormatErrorCode =
  /** The ConfigMap has no endpoints.json key (or the input was empty). */
  | "MissingData"
  /** endpoints.json is not JSON. */
  | "InvalidJson"
  /** formatVersion names a major version this reader does not know. */
  | "UnsupportedVersion"
  /** The document does not match the schema of its version. */
  | "InvalidDocument";

export class PublishedFormatError extends Error {
  readonly code: PublishedFormatErrorCode;
  /** The document's formatVersion when it could be read. */
  readonly formatVersion: unknown;
  constructor(code: PublishedFormatErrorCode, message: string, formatVersion?: unknown) {
    super(message);
    this.name = "PublishedFormatError";
    this.code = code;
    this.formatVersion = formatVersion;
  }
}

export type ParseResult =
  | { ok: true; document: PublishedEndpoints }
  | { ok: false; error: PublishedFormatError };

/**
 * Reads a published document. Accepts a ConfigMap's `data` map (the document
 * is under `endpoints.json`) or the JSON text itself. Throws
 * PublishedFormatError with a code and a message naming the problem.
 */
export function parsePublishedEndpoints(
  input: string | Readonly<Record<string, string>> | null | undefined,
): PublishedEndpoints {
  const result = safeParsePublishedEndpoints(input);
  if (!result.ok) throw result.error;
  return result.document;
}

export function safeParsePublishedEndpoints(
  input: string | Readonly<Record<string, string>> | null | undefined,
): ParseResult {
  const fail = (code: PublishedFormatErrorCode, message: string, version?: unknown): ParseResult => ({
    ok: false,
    error: new PublishedFormatError(code, message, version),
  });
  const text = typeof input === "string" ? input : input?.[PUBLISHED_DATA_KEY];
  if (text === undefined || text.trim() === "") {
    return fail(
      "MissingData",
      typeof input === "string"
        ? "published endpoints document is empty"
        : `ConfigMap data has no "${PUBLISHED_DATA_KEY}" key: not a Roster published endpoints ConfigMap`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return fail("InvalidJson", `${PUBLISHED_DATA_KEY} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail("InvalidDocument", `${PUBLISHED_DATA_KEY} must hold a JSON object`);
  }
  const version = (raw as Record<string, unknown>).formatVersion;
  if (version === undefined) {
    return fail(
      "InvalidDocument",
      `${PUBLISHED_DATA_KEY} has no formatVersion: not a Roster published document`,
    );
  }
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    return fail(
      "InvalidDocument",
      `${PUBLISHED_DATA_KEY}: formatVersion must be a positive integer, got ${JSON.stringify(version)}`,
      version,
    );
  }
  if (!SUPPORTED_FORMAT_VERSIONS.includes(version)) {
    return fail(
      "UnsupportedVersion",
      `${PUBLISHED_DATA_KEY}: formatVersion ${version} is not supported by this reader ` +
        `(supported: ${SUPPORTED_FORMAT_VERSIONS.join(", ")}); ` +
        (version > PUBLISHED_FORMAT_VERSION
          ? "upgrade the Roster client library"
          : "the document was written by an unsupported Roster version"),
      version,
    );
  }
  const parsed = publishedEndpointsSchema.safeParse(raw);
  if (!parsed.success) {
    return fail(
      "InvalidDocument",
      `${PUBLISHED_DATA_KEY} (formatVersion ${version}) is invalid:\n${z.prettifyError(parsed.error)}`,
      version,
    );
  }
  return { ok: true, document: parsed.data };
}

/**
 * Best-effort read of a previous document's revision, even when the document
 * is otherwise unreadable (a newer format written by a newer operator, a hand
 * edit). Writers use it so that the revision never goes backwards.
 */
export function readRevision(
  input: string | Readonly<Record<string, string>> | null | undefined,
): number | undefined {
  const text = typeof input === "string" ? input : input?.[PUBLISHED_DATA_KEY];
  if (!text) return undefined;
  try {
    const raw: unknown = JSON.parse(text);
    if (typeof raw !== "object" || raw === null) return undefined;
    const revision = (raw as Record<string, unknown>).revision;
    return typeof revision === "number" && Number.isSafeInteger(revision) && revision >= 0
      ? revision
      : undefined;
  } catch {
    return undefined;
  }
}

/** Code-unit order: the same in every JavaScript runtime, unlike localeCompare. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** JSON with object keys sorted at every level and undefined members left out. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => compareStrings(a, b));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** An endpoint with its lists in canonical order (ports by name, tags sorted and unique). */
export function normalizeEndpoint(ep: PublishedEndpoint): PublishedEndpoint {
  return {
    ...ep,
    ports: [...ep.ports].sort((a, b) => compareStrings(a.name, b.name)),
    tags: [...new Set(ep.tags)].sort(compareStrings),
  };
}

export function compareEndpoints(a: PublishedEndpoint, b: PublishedEndpoint): number {
  return compareStrings(a.instance, b.instance) || compareStrings(a.address, b.address);
}

function endpointLines(endpoints: readonly PublishedEndpoint[]): string {
  if (endpoints.length === 0) return "[]";
  const sorted = endpoints.map(normalizeEndpoint).sort(compareEndpoints);
  return `[\n${sorted.map((ep) => `    ${canonicalJson(ep)}`).join(",\n")}\n  ]`;
}

/**
 * The canonical bytes of a document: header fields in a fixed order, one
 * endpoint per line (readable in `kubectl get configmap -o yaml`, small
 * diffs), keys sorted, endpoints sorted. Equal content gives equal text.
 */
export function serializePublishedEndpoints(doc: PublishedEndpoints): string {
  return [
    "{",
    `  "formatVersion": ${JSON.stringify(doc.formatVersion)},`,
    `  "revision": ${JSON.stringify(doc.revision)},`,
    `  "namespace": ${JSON.stringify(doc.namespace)},`,
    `  "service": ${JSON.stringify(doc.service)},`,
    `  "panic": ${JSON.stringify(doc.panic)},`,
    `  "loadBalancing": ${canonicalJson(doc.loadBalancing)},`,
    `  "endpoints": ${endpointLines(doc.endpoints)}${doc.stale ? "," : ""}`,
    ...(doc.stale ? [`  "stale": ${canonicalJson(doc.stale)}`] : []),
    "}",
    "",
  ].join("\n");
}

/**
 * A canonical key for a document's content (everything but the revision):
 * two documents have equal content exactly when their keys are equal.
 */
export function publishedContentKey(content: PublishedContent): string {
  return serializePublishedEndpoints({ ...content, revision: 1 });
}

export function samePublishedContent(a: PublishedContent, b: PublishedContent): boolean {
  return publishedContentKey(a) === publishedContentKey(b);
}
