/**
 * The plan executor: carries out a list of writes that a pure planner
 * computed (create, content-hash upsert, apply, delete), with the write
 * mechanics every planner would otherwise repeat. Planners decide what to
 * write; this decides how, and reports what stood in the way.
 *
 * Guarantees:
 * - Objects the caller does not own (`owned(meta)` false) are never
 *   modified: creates use POST, so an existing object is never taken over
 *   (AlreadyExists → read it: ours → adopted and `behind`, not ours → a
 *   `conflict`); applies carry the planned resourceVersion as a
 *   precondition; deletes the planned UID.
 * - An upsert writes nothing when the content hash recorded on the object
 *   (annotation `roster.dev/applied-hash`) matches the desired content.
 * - Steps run in the order given; a conflict does not stop the rest (the
 *   caller decides what a conflict means for the steps that follow).
 * - With a `group`, writes and deletes of the tracked types are recorded in
 *   the WriteTracker (read-your-writes for the next plan).
 */
import { createHash } from "node:crypto";
import type { Applier } from "./apply.ts";
import { isAlreadyExists, type KubeClient } from "./client.ts";
import { apiVersionOf, type KubeObject, type ObjectMeta, type ResourceType, resourcePath } from "./object.ts";
import type { WriteTracker } from "./tracker.ts";

export const APPLIED_HASH_ANNOTATION = "roster.dev/applied-hash";

export type WriteStep =
  /** POST; never takes over an existing object. */
  | { op: "create"; type: ResourceType; body: KubeObject }
  /** Create, or apply when the content hash differs from the one `existing` records. */
  | { op: "upsert"; type: ResourceType; body: KubeObject; existing: KubeObject | undefined }
  /** Forced server-side apply with the body's resourceVersion as precondition. */
  | { op: "apply"; type: ResourceType; body: KubeObject }
  /** Delete this incarnation (UID precondition); gone already is fine. */
  | { op: "delete"; type: ResourceType; namespace: string; name: string; uid: string | undefined };

export interface ExecuteResult {
  /** Per step: the object as the API server returned it (undefined: deleted, or not written). */
  written: (KubeObject | undefined)[];
  /** The last create that met an object the caller does not own. */
  conflict?: { kind: string; name: string };
  /** A create met the caller's own object that its cache has not shown yet. */
  behind: boolean;
}

export interface ExecuteOptions {
  /** Records the writes in the tracker under this group. */
  group?: string;
  signal?: AbortSignal;
}

export interface PlanExecutor {
  run(steps: readonly WriteStep[], options?: ExecuteOptions): Promise<ExecuteResult>;
}

export interface PlanExecutorOptions {
  client: KubeClient;
  applier: Applier;
  /** Whether an object is the caller's to modify (e.g. its managed-by label). */
  owned(meta: ObjectMeta): boolean;
  tracker?: WriteTracker;
  /** The types whose writes go to the tracker (those whose informers it observes). */
  tracked?: readonly ResourceType[];
}

export function planExecutor(opts: PlanExecutorOptions): PlanExecutor {
  const { client, applier, owned, tracker } = opts;
  const tracked = new Set(opts.tracked ?? []);

  async function create(
    type: ResourceType,
    body: KubeObject,
    result: ExecuteResult,
    signal: AbortSignal | undefined,
  ): Promise<KubeObject | undefined> {
    try {
      return await client.request<KubeObject>({
        method: "POST",
        path: resourcePath(type, { namespace: body.metadata.namespace }),
        query: { fieldManager: applier.fieldManager },
        body: { ...body, apiVersion: body.apiVersion ?? apiVersionOf(type), kind: body.kind ?? type.kind },
        signal,
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      // Not in the cache: either our own write the cache has not shown yet,
      // or an object we do not manage, which is never taken over.
      const live = await client.request<KubeObject>({
        method: "GET",
        path: resourcePath(type, { namespace: body.metadata.namespace, name: body.metadata.name }),
        signal,
      });
      if (owned(live.metadata)) {
        result.behind = true;
        return live;
      }
      result.conflict = { kind: type.kind, name: body.metadata.name ?? "" };
      return undefined;
    }
  }

  const apply = (type: ResourceType, body: KubeObject, signal: AbortSignal | undefined) =>
    applier.apply(type, body, { force: true, precondition: true, signal });

  async function upsert(
    type: ResourceType,
    desired: KubeObject,
    existing: KubeObject | undefined,
    result: ExecuteResult,
    signal: AbortSignal | undefined,
  ): Promise<KubeObject | undefined> {
    const hash = contentHash(desired);
    const body = {
      ...desired,
      metadata: {
        ...desired.metadata,
        annotations: { ...desired.metadata.annotations, [APPLIED_HASH_ANNOTATION]: hash },
      },
    };
    if (!existing) return create(type, body, result, signal);
    if (existing.metadata.annotations?.[APPLIED_HASH_ANNOTATION] === hash) return existing;
    const current = await ownAsApplied(type, existing, signal);
    return apply(type, withVersion(body, current), signal);
  }

  /**
   * A create (POST, so that an existing object is never taken over) records
   * the fields under an `Update` entry of managedFields, and a later
   * server-side apply can never remove fields owned there: a renumbered
   * Service port stayed next to the new one (the Service became invalid:
   * duplicate port name) and trafficDistribution could not be turned off.
   * Before the first apply to such an object, re-label that entry as the
   * manager's `Apply` entry (as kubectl's client-side to server-side apply
   * upgrade does); the resourceVersion in the patch makes it apply to the
   * object as read only. One GET and no write for objects already converted.
   */
  async function ownAsApplied(type: ResourceType, cached: KubeObject, signal: AbortSignal | undefined) {
    const manager = applier.fieldManager;
    const path = resourcePath(type, { namespace: cached.metadata.namespace, name: cached.metadata.name });
    // Caches drop managedFields: read them (upserted objects are written rarely).
    const live = await client.request<KubeObject>({ method: "GET", path, signal });
    if (live.metadata.uid !== cached.metadata.uid) return cached; // replaced: the apply's precondition fails
    const entries = (live.metadata.managedFields ?? []) as ManagedFieldsEntry[];
    const created = entries.find((e) => e.manager === manager && e.operation === "Update");
    if (!created) return live;
    // An object applied to before (by an older version) also has an Apply
    // entry: merge the two (managedFields allows one entry per manager and operation).
    const applied = entries.find((e) => e.manager === manager && e.operation === "Apply");
    const managedFields = entries
      .filter((e) => e !== created)
      .map((e) => (e === applied ? { ...e, fieldsV1: mergeFields(e.fieldsV1, created.fieldsV1) } : e));
    if (!applied) managedFields.push({ ...created, operation: "Apply" });
    return client.request<KubeObject>({
      method: "PATCH",
      path,
      contentType: "application/merge-patch+json",
      body: { metadata: { resourceVersion: live.metadata.resourceVersion, managedFields } },
      signal,
    });
  }

  return {
    async run(steps, { group, signal } = {}) {
      const result: ExecuteResult = { written: [], behind: false };
      const track = (type: ResourceType) =>
        group !== undefined && tracker !== undefined && tracked.has(type) ? tracker : undefined;
      for (const step of steps) {
        let written: KubeObject | undefined;
        if (step.op === "delete") {
          const gone = await applier.delete(step.type, step.namespace, step.name, { uid: step.uid, signal });
          if (gone) track(step.type)?.deleted(group!, `${step.namespace}/${step.name}`);
        } else {
          if (step.op === "create") written = await create(step.type, step.body, result, signal);
          else if (step.op === "apply") written = await apply(step.type, step.body, signal);
          else written = await upsert(step.type, step.body, step.existing, result, signal);
          if (written) track(step.type)?.wrote(group!, written);
        }
        result.written.push(written);
      }
      return result;
    },
  };
}

/** The body with `existing`'s resourceVersion, as an apply precondition. */
export function withVersion<T extends KubeObject>(body: T, existing: KubeObject): T {
  return { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } };
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  fieldsV1?: unknown;
}

/** The union of two FieldsV1 sets (nested objects whose leaves are `{}`). */
function mergeFields(a: unknown, b: unknown): unknown {
  if (typeof a !== "object" || a === null) return b;
  if (typeof b !== "object" || b === null) return a;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = mergeFields(out[k], v);
  return out;
}

function contentHash(obj: KubeObject): string {
  return createHash("sha256").update(JSON.stringify(obj)).digest("hex").slice(0, 16);
}
