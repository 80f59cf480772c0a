/**
 * Server-side apply: Roster writes objects by declaring the fields it wants,
 * under one field manager, and lets the API server merge.
 *
 * Guarantees:
 * - Every apply uses the single field manager `roster` (or the one the
 *   applier was created with) and the explicit content type
 *   `application/apply-patch+yaml` (JSON is YAML), never a guessed patch type.
 * - `force` is false unless the caller says the fields are ours: on objects
 *   Roster creates and labels as managed it is safe to take fields over from
 *   another manager; on anything else a conflict surfaces as an ApiError
 *   (409) instead of silently stealing fields.
 * - The applied body never carries `managedFields`, `resourceVersion` (unless
 *   asked for as a precondition), `uid`, `creationTimestamp` or `status`
 *   (status goes through `/status`, see status.ts).
 */
import { ApiError, type KubeClient } from "./client.ts";
import { apiVersionOf, type KubeObject, type ResourceType, resourcePath } from "./object.ts";

export const defaultFieldManager = "roster";
export const applyPatchContentType = "application/apply-patch+yaml";
export const mergePatchContentType = "application/merge-patch+json";

export interface ApplyOptions {
  /** Take over fields other managers own. Only for objects Roster owns. */
  force?: boolean;
  subresource?: "status" | string;
  dryRun?: boolean;
  /** Keep `metadata.resourceVersion` in the body as an optimistic-lock precondition. */
  precondition?: boolean;
  signal?: AbortSignal;
}

export interface DeleteOptions {
  /** Only delete this exact incarnation of the object. */
  uid?: string;
  resourceVersion?: string;
  propagationPolicy?: "Foreground" | "Background" | "Orphan";
  signal?: AbortSignal;
}

export interface Applier {
  readonly fieldManager: string;
  apply<T extends KubeObject>(type: ResourceType, obj: T, options?: ApplyOptions): Promise<T>;
  /** Deletes; true if deleted, false if it was already gone. */
  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options?: DeleteOptions,
  ): Promise<boolean>;
}

/** The body sent for an apply: identity plus desired fields, nothing server-owned. */
export function applyBody<T extends KubeObject>(
  type: ResourceType,
  obj: T,
  options: ApplyOptions = {},
): KubeObject {
  const { managedFields, resourceVersion, uid, creationTimestamp, generation, ...meta } = obj.metadata;
  const body: KubeObject & Record<string, unknown> = {
    ...(obj as KubeObject & Record<string, unknown>),
    apiVersion: obj.apiVersion ?? apiVersionOf(type),
    kind: obj.kind ?? type.kind,
    metadata: options.precondition && resourceVersion ? { ...meta, resourceVersion } : meta,
  };
  if (options.subresource !== "status") delete body.status;
  return body;
}

/** A 409 from apply: another manager owns some of the fields. */
export function isApplyConflict(err: unknown): boolean {
  return err instanceof ApiError && err.status === 409 && err.reason === "Conflict";
}

export function applier(client: KubeClient, fieldManager = defaultFieldManager): Applier {
  return {
    fieldManager,
    apply<T extends KubeObject>(type: ResourceType, obj: T, options: ApplyOptions = {}): Promise<T> {
      const name = obj.metadata.name;
      if (!name) throw new Error("server-side apply needs metadata.name");
      if (type.namespaced && !obj.metadata.namespace)
        throw new Error(`${type.kind} ${name} needs a namespace`);
      return client.request<T>({
        method: "PATCH",
        path: resourcePath(type, {
          namespace: obj.metadata.namespace,
          name,
          subresource: options.subresource,
        }),
        query: {
          fieldManager,
          force: options.force ? true : undefined,
          dryRun: options.dryRun ? "All" : undefined,
        },
        contentType: applyPatchContentType,
        body: applyBody(type, obj, options),
        signal: options.signal,
      });
    },

    async delete(type, namespace, name, options = {}) {
      const preconditions =
        options.uid || options.resourceVersion
          ? { uid: options.uid, resourceVersion: options.resourceVersion }
          : undefined;
      try {
        await client.request({
          method: "DELETE",
          path: resourcePath(type, { namespace, name }),
          body: {
            apiVersion: "v1",
            kind: "DeleteOptions",
            preconditions,
            propagationPolicy: options.propagationPolicy,
          },
          signal: options.signal,
        });
        return true;
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return false;
        throw err;
      }
    },
  };
}
