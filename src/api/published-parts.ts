/**
 * Format 2 of the published endpoints: one service's document split across
 * several ConfigMaps, for services whose format-1 document exceeds the
 * ConfigMap budget (PUBLISHED_MAX_BYTES). Documented for readers in
 * docs/publish.md ("Format 2"); keep the two in step.
 *
 * Objects:
 * - Parts: ConfigMaps `<head>-part-<i>` (i = 0, 1, ...), data key
 *   `endpoints-part.json` (PUBLISHED_PART_DATA_KEY, not `endpoints.json`, so
 *   that format-1 readers ignore them), each holding a contiguous run of the
 *   sorted endpoints and the revision they belong to. Labelled like the head
 *   plus LABEL_PUBLISHED_HEAD and LABEL_PUBLISHED_REVISION.
 * - Head: the ConfigMap at the usual name, `endpoints.json` with
 *   `formatVersion: 2`: the document's header fields (revision, panic,
 *   loadBalancing) and the list of its parts with their endpoint counts and
 *   the SHA-256 of each part's exact text. Format-1 readers reject it
 *   (UnsupportedVersion) rather than read an empty set.
 *
 * Commit point: the writer writes every part of revision N first, then the
 * head of revision N, and deletes parts the head no longer lists only after
 * that. A reader takes the head, then each listed part, and accepts the set
 * only when every part exists with the head's revision and the listed hash;
 * otherwise it is reading across a write (a torn set) and waits for (or
 * re-reads) the next head. assemblePublished() is that check.
 *
 * The assembled result is the format-1 document the parts stand for (same
 * revision, header, endpoints in the same order): readers handle one shape.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import {
  canonicalJson,
  LABEL_ROSTER_SERVICE,
  loadBalancingSchema,
  PUBLISHED_DATA_KEY,
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoint,
  type PublishedEndpoints,
  PublishedFormatError,
  publishedEndpointSchema,
  safeParsePublishedEndpoints,
} from "./published.ts";

/** The format major version of a split document (head and parts). */
export const PUBLISHED_PARTS_FORMAT_VERSION = 2;
/** The data key of a part ConfigMap. */
export const PUBLISHED_PART_DATA_KEY = "endpoints-part.json";
/** Label on a part: the name of its head ConfigMap. */
export const LABEL_PUBLISHED_HEAD = "roster.dev/published-head";
/** Label on a part: the revision it belongs to. */
export const LABEL_PUBLISHED_REVISION = "roster.dev/published-revision";
/** The most parts one service is split into (64 MB of endpoints); beyond, the document is stale. */
export const PUBLISHED_MAX_PARTS = 64;

/** The name of part `index` of head `head`. */
export function partName(head: string, index: number): string {
  return `${head}-part-${index}`;
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "a lower-case hex SHA-256");

export const publishedPartRefSchema = z.object({
  /** The part ConfigMap's name (same namespace as the head). */
  name: z.string().min(1).max(253),
  /** How many endpoints the part holds. */
  endpoints: z.int().min(0),
  /** SHA-256 (hex) of the part's `endpoints-part.json` text, as UTF-8 bytes. */
  sha256: sha256Hex,
});
export type PublishedPartRef = z.infer<typeof publishedPartRefSchema>;

export const publishedHeadSchema = z.object({
  formatVersion: z.literal(PUBLISHED_PARTS_FORMAT_VERSION),
  /** As in format 1; every listed part carries the same revision. */
  revision: z.int().min(1),
  namespace: z.string().min(1).max(63),
  service: z.string().min(1).max(63),
  panic: z.boolean(),
  loadBalancing: loadBalancingSchema,
  /** The endpoints of all parts together. */
  endpointCount: z.int().min(0),
  /** In order: the endpoints are part 0's, then part 1's, ... (sorted by (instance, address)). */
  parts: z.array(publishedPartRefSchema).min(1).max(PUBLISHED_MAX_PARTS),
});
export type PublishedHead = z.infer<typeof publishedHeadSchema>;

export const publishedPartSchema = z.object({
  formatVersion: z.literal(PUBLISHED_PARTS_FORMAT_VERSION),
  /** The revision of the head this part was written for. */
  revision: z.int().min(1),
  namespace: z.string().min(1).max(63),
  service: z.string().min(1).max(63),
  /** The head ConfigMap's name. */
  head: z.string().min(1).max(253),
  index: z.int().min(0),
  endpoints: z.array(publishedEndpointSchema),
});
export type PublishedPart = z.infer<typeof publishedPartSchema>;

export function sha256OfText(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function lines(endpointJson: readonly string[]): string {
  if (endpointJson.length === 0) return "[]";
  return `[\n${endpointJson.map((json) => `    ${json}`).join(",\n")}\n  ]`;
}

/** Canonical head text (fixed field order, like format 1). */
export function serializePublishedHead(head: PublishedHead): string {
  return [
    "{",
    `  "formatVersion": ${head.formatVersion},`,
    `  "revision": ${head.revision},`,
    `  "namespace": ${JSON.stringify(head.namespace)},`,
    `  "service": ${JSON.stringify(head.service)},`,
    `  "panic": ${head.panic},`,
    `  "loadBalancing": ${canonicalJson(head.loadBalancing)},`,
    `  "endpointCount": ${head.endpointCount},`,
    `  "parts": [\n${head.parts.map((p) => `    ${canonicalJson(p)}`).join(",\n")}\n  ]`,
    "}",
    "",
  ].join("\n");
}

/**
 * Canonical part text. The endpoints are written in the order given: the
 * planner passes them normalized and sorted (a run of the format-1 order).
 */
export function serializePublishedPart(part: PublishedPart): string {
  return serializePublishedPartJson(part, part.endpoints.map(canonicalJson));
}

/**
 * serializePublishedPart with each endpoint already in canonical JSON
 * (canonicalJson(endpoint), in order): the planner renders every endpoint
 * once, to measure the cut and to write the text.
 */
export function serializePublishedPartJson(
  part: Omit<PublishedPart, "endpoints">,
  endpointJson: readonly string[],
): string {
  return [
    "{",
    `  "formatVersion": ${part.formatVersion},`,
    `  "revision": ${part.revision},`,
    `  "namespace": ${JSON.stringify(part.namespace)},`,
    `  "service": ${JSON.stringify(part.service)},`,
    `  "head": ${JSON.stringify(part.head)},`,
    `  "index": ${part.index},`,
    `  "endpoints": ${lines(endpointJson)}`,
    "}",
    "",
  ].join("\n");
}

/** Bytes one endpoint line costs in a part (indent, comma, newline). */
export function partLineBytes(ep: PublishedEndpoint): number {
  return partJsonBytes(canonicalJson(ep));
}

/** partLineBytes of an endpoint already in canonical JSON. */
export function partJsonBytes(endpointJson: string): number {
  return Buffer.byteLength(endpointJson, "utf8") + 6;
}

/** What a published ConfigMap's data holds. */
export type PublishedData =
  | { ok: true; kind: "document"; document: PublishedEndpoints }
  | { ok: true; kind: "head"; head: PublishedHead }
  | { ok: true; kind: "part"; part: PublishedPart; text: string }
  | { ok: false; error: PublishedFormatError };

function invalid(what: string, error: z.ZodError, version: unknown): PublishedData {
  return {
    ok: false,
    error: new PublishedFormatError(
      "InvalidDocument",
      `${what} (formatVersion ${version}) is invalid:\n${z.prettifyError(error)}`,
      version,
    ),
  };
}

function versionOf(text: string): unknown {
  try {
    const raw: unknown = JSON.parse(text);
    return typeof raw === "object" && raw !== null
      ? (raw as Record<string, unknown>).formatVersion
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a published ConfigMap's data in either format: a format-1 document,
 * a format-2 head, or a format-2 part. Errors as parsePublishedEndpoints().
 */
export function safeParsePublishedData(
  data: Readonly<Record<string, string>> | null | undefined,
): PublishedData {
  const partText = data?.[PUBLISHED_PART_DATA_KEY];
  if (partText !== undefined && data?.[PUBLISHED_DATA_KEY] === undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(partText);
    } catch (err) {
      return {
        ok: false,
        error: new PublishedFormatError(
          "InvalidJson",
          `${PUBLISHED_PART_DATA_KEY} is not valid JSON: ${(err as Error).message}`,
        ),
      };
    }
    const version = (raw as Record<string, unknown> | null)?.formatVersion;
    if (version !== PUBLISHED_PARTS_FORMAT_VERSION) {
      return {
        ok: false,
        error: new PublishedFormatError(
          "UnsupportedVersion",
          `${PUBLISHED_PART_DATA_KEY}: formatVersion ${JSON.stringify(version)} is not supported (supported: 2)`,
          version,
        ),
      };
    }
    const parsed = publishedPartSchema.safeParse(raw);
    if (!parsed.success) return invalid(PUBLISHED_PART_DATA_KEY, parsed.error, version);
    return { ok: true, kind: "part", part: parsed.data, text: partText };
  }
  const text = data?.[PUBLISHED_DATA_KEY];
  if (text !== undefined && versionOf(text) === PUBLISHED_PARTS_FORMAT_VERSION) {
    const parsed = publishedHeadSchema.safeParse(JSON.parse(text));
    if (!parsed.success) return invalid(PUBLISHED_DATA_KEY, parsed.error, PUBLISHED_PARTS_FORMAT_VERSION);
    return { ok: true, kind: "head", head: parsed.data };
  }
  const doc = safeParsePublishedEndpoints(data);
  return doc.ok ? { ok: true, kind: "document", document: doc.document } : doc;
}

/** A part as a reader holds it: parsed, with its exact text (for the hash). */
export interface HeldPart {
  part: PublishedPart;
  text: string;
}

export type AssembleResult =
  | { ok: true; document: PublishedEndpoints }
  /** A listed part is absent, or of another revision or content: a torn read; wait for the next head. */
  | { ok: false; torn: true; reason: string }
  /** The parts match the head but break the format (duplicates, counts): a writer bug. */
  | { ok: false; torn: false; error: PublishedFormatError };

/**
 * The document a head and its parts stand for, or why not (yet). `partOf`
 * returns the reader's current copy of a part ConfigMap by name.
 */
export function assemblePublished(
  head: PublishedHead,
  partOf: (name: string) => HeldPart | undefined,
): AssembleResult {
  const endpoints: PublishedEndpoint[] = [];
  for (const [index, ref] of head.parts.entries()) {
    const held = partOf(ref.name);
    if (!held) return { ok: false, torn: true, reason: `part ${ref.name} not seen yet` };
    const { part } = held;
    if (part.revision !== head.revision || sha256OfText(held.text) !== ref.sha256) {
      return {
        ok: false,
        torn: true,
        reason: `part ${ref.name} is at revision ${part.revision}, the head at ${head.revision}`,
      };
    }
    const bad = (message: string): AssembleResult => ({
      ok: false,
      torn: false,
      error: new PublishedFormatError("InvalidDocument", `part ${ref.name}: ${message}`, 2),
    });
    if (part.index !== index || part.namespace !== head.namespace || part.service !== head.service) {
      return bad(`names index ${part.index} of ${part.namespace}/${part.service}`);
    }
    if (part.endpoints.length !== ref.endpoints) {
      return bad(`holds ${part.endpoints.length} endpoints, the head lists ${ref.endpoints}`);
    }
    for (const ep of part.endpoints) endpoints.push(ep);
  }
  const seen = new Set<string>();
  for (const ep of endpoints) {
    const id = `${ep.instance}\u0000${ep.address}`;
    if (seen.has(id)) {
      return {
        ok: false,
        torn: false,
        error: new PublishedFormatError(
          "InvalidDocument",
          `duplicate endpoint ${ep.instance} ${ep.address}`,
          2,
        ),
      };
    }
    seen.add(id);
  }
  if (endpoints.length !== head.endpointCount) {
    return {
      ok: false,
      torn: false,
      error: new PublishedFormatError(
        "InvalidDocument",
        `the parts hold ${endpoints.length} endpoints, the head says ${head.endpointCount}`,
        2,
      ),
    };
  }
  return {
    ok: true,
    document: {
      formatVersion: PUBLISHED_FORMAT_VERSION,
      revision: head.revision,
      namespace: head.namespace,
      service: head.service,
      panic: head.panic,
      loadBalancing: head.loadBalancing,
      endpoints,
    },
  };
}

/** Labels of a part ConfigMap (besides the head's). */
export function partLabels(service: string, head: string, revision: number): Record<string, string> {
  return {
    [LABEL_ROSTER_SERVICE]: service,
    [LABEL_PUBLISHED_HEAD]: head,
    [LABEL_PUBLISHED_REVISION]: String(revision),
  };
}
