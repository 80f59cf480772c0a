/**
 * The published ConfigMap: the document of src/api/published.ts with its
 * revision handling.
 *
 * Revision rule: the revision is kept when the content (everything but the
 * revision) is equal to the previous document's, and is the previous revision
 * plus one otherwise. When the previous document cannot be read (a newer
 * format, a hand edit), its revision is still honoured if it can be found, so
 * the revision never goes backwards for readers.
 *
 * Over budget: a document larger than PUBLISHED_MAX_BYTES is not written, and
 * the previous one is not left in place either (it would serve an outdated set
 * as current). The plan is a stale document instead: no endpoints, `stale`
 * saying why, and the PUBLISHED_STALE_ANNOTATION on the ConfigMap.
 */
import type { V1ConfigMap, V1OwnerReference } from "@kubernetes/client-node";
import { z } from "zod";
import {
  type LoadBalancing,
  PUBLISHED_DATA_KEY,
  PUBLISHED_FORMAT_VERSION,
  PUBLISHED_MAX_BYTES,
  PUBLISHED_REVISION_ANNOTATION,
  PUBLISHED_STALE_ANNOTATION,
  type PublishedContent,
  type PublishedEndpoints,
  publishedContentKey,
  publishedEndpointsSchema,
  readRevision,
  STALE_OVER_BUDGET,
  safeParsePublishedEndpoints,
  serializePublishedEndpoints,
} from "../api/published.ts";
import type { DesiredPublication } from "./desired.ts";
import { hasLabels, isOwnedBy, publishedLabels } from "./labels.ts";

export class PublishedDocumentTooLargeError extends Error {
  readonly bytes: number;
  readonly limit: number;
  constructor(bytes: number, limit: number) {
    super(`published document is ${bytes} bytes, over the ${limit}-byte ConfigMap budget`);
    this.name = "PublishedDocumentTooLargeError";
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** The document content of a desired publication under a load-balancing policy. */
export function buildPublishedContent(
  desired: Pick<DesiredPublication, "namespace" | "service" | "panic" | "endpoints">,
  loadBalancing: LoadBalancing,
): PublishedContent {
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    namespace: desired.namespace,
    service: desired.service,
    panic: desired.panic,
    loadBalancing:
      loadBalancing.strategy === "ConsistentHash"
        ? {
            strategy: loadBalancing.strategy,
            zoneAware: loadBalancing.zoneAware,
            ...(loadBalancing.consistentHash ? { consistentHash: loadBalancing.consistentHash } : {}),
          }
        : {
            strategy: loadBalancing.strategy,
            zoneAware: loadBalancing.zoneAware,
            ...(loadBalancing.slowStart ? { slowStart: loadBalancing.slowStart } : {}),
          },
    endpoints: desired.endpoints,
  };
}

/**
 * The revision for `content` given the previous document: unchanged when the
 * content is equal, previous + 1 otherwise, 1 for a first document.
 * `floor` is a revision known from an unreadable previous document.
 */
export function nextRevision(
  previous: PublishedEndpoints | undefined,
  content: PublishedContent,
  floor?: number,
): number {
  if (previous && publishedContentKey(previous) === publishedContentKey(content)) return previous.revision;
  return Math.max(previous?.revision ?? 0, floor ?? 0) + 1;
}

export interface ConfigMapPlanInput {
  namespace: string;
  /** The ConfigMap name (policy's, default defaultConfigMapName(service)). */
  name: string;
  content: PublishedContent;
  /** The current ConfigMap, when there is one. The caller checks isManagedByRoster() first. */
  previous?: V1ConfigMap;
  /** Usually serviceOwnerReference(the managed Service). */
  owner?: V1OwnerReference;
}

export interface ConfigMapPlan {
  configMap: V1ConfigMap;
  document: PublishedEndpoints;
  revision: number;
  /** The document content differs from the previous one (the revision went up). */
  contentChanged: boolean;
  /** Anything the writer owns differs (data, labels, annotation, owner): write only when true. */
  changed: boolean;
  /** Size of the written document in UTF-8 bytes. */
  bytes: number;
  /**
   * Set when the full document was over budget and the plan is the stale
   * document: what the full one would have cost.
   */
  overBudget?: { bytes: number; limit: number };
}

/**
 * The ConfigMap to write. Over PUBLISHED_MAX_BYTES it is the stale document
 * (see the module comment; `overBudget` says so). Throws an Error when the
 * content breaks the format's schema (an input bug: nothing is published
 * rather than a document readers would reject).
 */
export function planConfigMap(input: ConfigMapPlanInput, limit = PUBLISHED_MAX_BYTES): ConfigMapPlan {
  try {
    return planDocument(input, limit);
  } catch (err) {
    if (!(err instanceof PublishedDocumentTooLargeError)) throw err;
    const stale: PublishedContent = {
      ...input.content,
      endpoints: [],
      stale: { reason: STALE_OVER_BUDGET, bytes: err.bytes, limit: err.limit },
    };
    return { ...planDocument({ ...input, content: stale }, limit), overBudget: { bytes: err.bytes, limit } };
  }
}

function planDocument(input: ConfigMapPlanInput, limit: number): ConfigMapPlan {
  const previousText = input.previous?.data?.[PUBLISHED_DATA_KEY];
  const previousRevision = readRevision(previousText);

  // Fast path: the canonical bytes under the previous revision are the
  // previous bytes, so the content is unchanged (the usual case when only the
  // slices or nothing at all changed). No parse, no validation: these exact
  // bytes were validated when they were written.
  let revision = previousRevision ?? 1;
  let text = serializePublishedEndpoints({ ...input.content, revision });
  let contentChanged = false;
  if (previousText === undefined || previousRevision === undefined || text !== previousText) {
    // Slow path: compare content semantically, so that a previous document in
    // another (older, non-canonical) spelling of the same content keeps its
    // revision; a newer or unreadable one still bounds the revision from below.
    const parsed = previousText !== undefined ? safeParsePublishedEndpoints(previousText) : undefined;
    revision = nextRevision(parsed?.ok ? parsed.document : undefined, input.content, previousRevision);
    contentChanged = !parsed?.ok || revision !== parsed.document.revision;
    const document: PublishedEndpoints = { ...input.content, revision };
    text = serializePublishedEndpoints(document);
    // Size first: validating thousands of endpoints of a document that is
    // not written (split or stale instead) would cost every reconcile.
    const size = Buffer.byteLength(text, "utf8");
    if (size > limit) throw new PublishedDocumentTooLargeError(size, limit);
    assertValidDocument(document, input.name);
  }
  const document: PublishedEndpoints = { ...input.content, revision };
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > limit) throw new PublishedDocumentTooLargeError(bytes, limit);

  const labels = publishedLabels(input.content.service);
  const annotations: Record<string, string> = { [PUBLISHED_REVISION_ANNOTATION]: String(revision) };
  // Cleared to "" rather than left out: a ConfigMap created stale (POST)
  // records the annotation under an Update entry, which a later apply
  // cannot remove.
  const wasStale = input.previous?.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION] !== undefined;
  if (input.content.stale || wasStale) {
    annotations[PUBLISHED_STALE_ANNOTATION] = input.content.stale?.reason ?? "";
  }
  const configMap: V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels,
      annotations,
      ...(input.owner ? { ownerReferences: [{ ...input.owner }] } : {}),
    },
    data: { [PUBLISHED_DATA_KEY]: text },
  };

  const prev = input.previous;
  const changed =
    prev === undefined ||
    previousText !== text ||
    !hasLabels(prev.metadata?.labels, labels) ||
    !hasLabels(prev.metadata?.annotations, annotations) ||
    (input.owner !== undefined && !isOwnedBy(prev.metadata, input.owner));
  return { configMap, document, revision, contentChanged, changed, bytes };
}

/** Throws an Error naming the fields when `document` breaks the format (an input bug). */
export function assertValidDocument(document: PublishedEndpoints, name: string): void {
  const checked = publishedEndpointsSchema.safeParse(document);
  if (!checked.success) {
    throw new Error(
      `published document for ${document.namespace}/${name} is invalid:\n${z.prettifyError(checked.error)}`,
    );
  }
}

/**
 * The stale reason of a published ConfigMap (its PUBLISHED_STALE_ANNOTATION),
 * or undefined when its document is current. Cheap: no parse of the document.
 */
export function staleReasonOf(cm: Pick<V1ConfigMap, "metadata"> | undefined): string | undefined {
  return cm?.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION] || undefined;
}

/** The policy's (and the log's) account of an over-budget document. */
export function overBudgetMessage(name: string, overBudget: { bytes: number; limit: number }): string {
  return (
    `ConfigMap ${name}: the document is ${overBudget.bytes} bytes, over the ${overBudget.limit}-byte budget; ` +
    "it is published as stale (no endpoints, clients refuse it) until it fits"
  );
}
