/**
 * The split publication (format 2, src/api/published-parts.ts): a document
 * over the ConfigMap budget as a head ConfigMap and parts. Pure.
 *
 * Rules:
 * - Used only when the format-1 document is over the budget (small services
 *   keep format 1, byte for byte). planConfigMapPublication decides.
 * - Split: the endpoints in format-1 order (normalized, sorted by (instance,
 *   address)) are cut greedily into runs whose part text stays within the
 *   budget. The cut depends only on the content and the budget, never on the
 *   previous parts or the revision: equal content gives equal parts.
 * - One revision: the head and every part carry the same revision. It is kept
 *   when every text (head and parts) equals the previous one, and is the
 *   previous revision (head's, or format-1 document's) plus one otherwise;
 *   a previous format-1 document with the same content keeps its revision.
 * - Write order (the client's commit point is the head): parts that changed,
 *   in index order, then the head, then the deletion of parts the head no
 *   longer lists. The returned lists are in that order; the caller keeps it.
 * - Content that breaks the format throws (as planConfigMap): checked
 *   only when the texts changed, like format 1's fast path.
 * - More than `maxParts` parts needed (or one endpoint alone over the
 *   budget): undefined, and the caller publishes the stale format-1 document.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import {
  canonicalJson,
  compareEndpoints,
  normalizeEndpoint,
  PUBLISHED_DATA_KEY,
  PUBLISHED_REVISION_ANNOTATION,
  PUBLISHED_STALE_ANNOTATION,
  type PublishedEndpoint,
  readRevision,
  safeParsePublishedEndpoints,
} from "../api/published.ts";
import {
  LABEL_PUBLISHED_HEAD,
  PUBLISHED_PART_DATA_KEY,
  PUBLISHED_PARTS_FORMAT_VERSION,
  type PublishedHead,
  partJsonBytes,
  partLabels,
  partName,
  serializePublishedHead,
  serializePublishedPart,
  serializePublishedPartJson,
  sha256OfText,
} from "../api/published-parts.ts";
import type { ConfigMapPlanInput } from "./configmap.ts";
import { assertValidDocument, nextRevision } from "./configmap.ts";
import { hasLabels, isOwnedBy, publishedLabels } from "./labels.ts";

export interface PartedPlanInput extends ConfigMapPlanInput {
  /** The managed ConfigMaps that are parts of this head now (label LABEL_PUBLISHED_HEAD = name). */
  previousParts: readonly V1ConfigMap[];
  maxParts: number;
}

export interface PartedPlan {
  head: V1ConfigMap;
  /** Every part of the new revision, in index order. */
  parts: V1ConfigMap[];
  /** The parts to write (differ from the live ones), in index order: written before the head. */
  writeParts: V1ConfigMap[];
  /** The head differs from the live one (write it after writeParts). */
  headChanged: boolean;
  /** Previous parts the new head does not list: deleted after the head. */
  deleteParts: V1ConfigMap[];
  revision: number;
  contentChanged: boolean;
  /** Bytes of the head and the parts together. */
  bytes: number;
  /** Bytes of the endpoint lines alone: a format-1 document of this content is longer. */
  lineBytes: number;
}

/** The endpoint runs, each within `limit` bytes of part text; undefined when more than maxParts. */
export function splitEndpoints(
  endpoints: readonly PublishedEndpoint[],
  headerBytes: number,
  limit: number,
  maxParts: number,
): PublishedEndpoint[][] | undefined {
  const sorted = endpoints.map(normalizeEndpoint).sort(compareEndpoints);
  const cuts = cutRuns(sorted.map(canonicalJson), headerBytes, limit, maxParts);
  return cuts?.map(([from, to]) => sorted.slice(from, to));
}

/** splitEndpoints over the endpoints' canonical JSON (in format-1 order): each run as [from, to). */
function cutRuns(
  json: readonly string[],
  headerBytes: number,
  limit: number,
  maxParts: number,
): [number, number][] | undefined {
  const runs: [number, number][] = [];
  let from = 0;
  let bytes = headerBytes;
  for (let i = 0; i < json.length; i++) {
    const cost = partJsonBytes(json[i]!);
    if (headerBytes + cost > limit) return undefined;
    if (i > from && bytes + cost > limit) {
      runs.push([from, i]);
      from = i;
      bytes = headerBytes;
    }
    bytes += cost;
  }
  if (from < json.length || runs.length === 0) runs.push([from, json.length]);
  return runs.length > maxParts ? undefined : runs;
}

export function planPartedConfigMaps(input: PartedPlanInput, limit: number): PartedPlan | undefined {
  const { namespace, name, content } = input;
  const { service } = content;
  // An upper bound of a part's text without endpoints, whatever the revision
  // and index: the cut must not depend on either.
  const headerBytes = Buffer.byteLength(
    serializePublishedPart({
      formatVersion: PUBLISHED_PARTS_FORMAT_VERSION,
      revision: Number.MAX_SAFE_INTEGER,
      namespace,
      service,
      head: name,
      index: input.maxParts,
      endpoints: [],
    }),
    "utf8",
  );
  // Every endpoint rendered once: its JSON both measures the cut and is the part's line.
  const sorted = content.endpoints.map(normalizeEndpoint).sort(compareEndpoints);
  const json = sorted.map(canonicalJson);
  const cuts = cutRuns(json, headerBytes, limit, input.maxParts);
  if (!cuts) return undefined;
  const runs = cuts.map(([from, to]) => ({ from, to, length: to - from }));

  const build = (revision: number) => {
    const texts = runs.map(({ from, to }, index) =>
      serializePublishedPartJson(
        {
          formatVersion: PUBLISHED_PARTS_FORMAT_VERSION,
          revision,
          namespace,
          service,
          head: name,
          index,
        },
        json.slice(from, to),
      ),
    );
    const head: PublishedHead = {
      formatVersion: PUBLISHED_PARTS_FORMAT_VERSION,
      revision,
      namespace,
      service,
      panic: content.panic,
      loadBalancing: content.loadBalancing,
      endpointCount: runs.reduce((n, r) => n + r.length, 0),
      parts: texts.map((text, i) => ({
        name: partName(name, i),
        endpoints: runs[i]!.length,
        sha256: sha256OfText(text),
      })),
    };
    return { texts, headText: serializePublishedHead(head) };
  };

  const previousText = input.previous?.data?.[PUBLISHED_DATA_KEY];
  const previousRevision = readRevision(previousText);
  const livePart = new Map(input.previousParts.map((cm) => [cm.metadata?.name ?? "", cm]));
  let revision = previousRevision ?? 1;
  let built = build(revision);
  const same =
    previousText === built.headText &&
    built.texts.every((t, i) => livePart.get(partName(name, i))?.data?.[PUBLISHED_PART_DATA_KEY] === t);
  let contentChanged = false;
  if (!same) {
    // A previous format-1 document of equal content keeps its revision;
    // anything else (another split, another format) moves it on.
    const parsed = previousText !== undefined ? safeParsePublishedEndpoints(previousText) : undefined;
    const prevDoc = parsed?.ok ? parsed.document : undefined;
    revision = prevDoc ? nextRevision(prevDoc, content, previousRevision) : (previousRevision ?? 0) + 1;
    contentChanged = revision !== previousRevision;
    assertValidDocument({ ...content, revision }, name);
    built = build(revision);
  }

  const owner = input.owner ? { ownerReferences: [{ ...input.owner }] } : {};
  const changed = (prev: V1ConfigMap | undefined, want: V1ConfigMap, key: string) =>
    prev === undefined ||
    prev.data?.[key] !== want.data?.[key] ||
    !hasLabels(prev.metadata?.labels, want.metadata?.labels ?? {}) ||
    !hasLabels(prev.metadata?.annotations, want.metadata?.annotations ?? {}) ||
    (input.owner !== undefined && !isOwnedBy(prev.metadata, input.owner));

  const revisionAnnotation = { [PUBLISHED_REVISION_ANNOTATION]: String(revision) };
  const parts: V1ConfigMap[] = built.texts.map((text, i) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: partName(name, i),
      namespace,
      labels: { ...publishedLabels(service), ...partLabels(service, name, revision) },
      annotations: revisionAnnotation,
      ...owner,
    },
    data: { [PUBLISHED_PART_DATA_KEY]: text },
  }));
  const annotations: Record<string, string> = { ...revisionAnnotation };
  // As in planConfigMap: a stale marker is cleared to "", never left out.
  if (input.previous?.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION] !== undefined) {
    annotations[PUBLISHED_STALE_ANNOTATION] = "";
  }
  const head: V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace, labels: publishedLabels(service), annotations, ...owner },
    data: { [PUBLISHED_DATA_KEY]: built.headText },
  };
  const listed = new Set(parts.map((p) => p.metadata!.name!));
  const bytes =
    Buffer.byteLength(built.headText, "utf8") +
    built.texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
  return {
    head,
    parts,
    writeParts: parts.filter((p) => changed(livePart.get(p.metadata!.name!), p, PUBLISHED_PART_DATA_KEY)),
    headChanged: changed(input.previous, head, PUBLISHED_DATA_KEY),
    deleteParts: input.previousParts
      .filter((cm) => !listed.has(cm.metadata?.name ?? ""))
      .sort((a, b) => ((a.metadata?.name ?? "") < (b.metadata?.name ?? "") ? -1 : 1)),
    revision,
    contentChanged,
    bytes,
    lineBytes: json.reduce((n, j) => n + partJsonBytes(j), 0) - 1,
  };
}

/** Whether a ConfigMap is a part of head `name` (its LABEL_PUBLISHED_HEAD). */
export function isPartOf(cm: Pick<V1ConfigMap, "metadata">, name: string): boolean {
  return cm.metadata?.labels?.[LABEL_PUBLISHED_HEAD] === name;
}

/** Whether a ConfigMap is a part of any head. */
export function isPart(cm: Pick<V1ConfigMap, "metadata">): boolean {
  return cm.metadata?.labels?.[LABEL_PUBLISHED_HEAD] !== undefined;
}

/** Whether a ConfigMap holds a format-2 head (cheap: no parse of the document). */
export function isHead(cm: Pick<V1ConfigMap, "data"> | undefined): boolean {
  const text = cm?.data?.[PUBLISHED_DATA_KEY];
  return text?.startsWith(`{\n  "formatVersion": ${PUBLISHED_PARTS_FORMAT_VERSION},`) === true;
}
