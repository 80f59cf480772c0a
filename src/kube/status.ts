/**
 * Status writes: through the `/status` subresource, and only when the status
 * actually changed.
 *
 * Guarantees:
 * - `writeStatus` compares the desired status with the object's current one
 *   (as read from the cache) semantically: key order and properties set to
 *   `undefined` do not count as changes. Equal means no API call at all.
 * - Otherwise it server-side-applies `{ status }` to `/status` with Roster's
 *   field manager and `force` (the status of Roster's own resources is owned
 *   by Roster), and returns the object the API server answered with, minus
 *   `managedFields` (callers may keep it until their cache catches up; at
 *   start-up with tens of thousands of instances those copies added up to
 *   ~100 MiB).
 * - Spec, labels and the rest of the object are never sent.
 */

import { deepEqual } from "../util/equal.ts";
import type { Applier } from "./apply.ts";
import type { KubeObject, ResourceType } from "./object.ts";
import { stripUnread } from "./transform.ts";

export interface WithStatus<S> extends KubeObject {
  status?: S;
}

export interface StatusWrite<T> {
  written: boolean;
  object: T;
}

/** The status with `observedGeneration` set from the object's generation. */
export function observed<S extends object>(obj: KubeObject, status: S): S & { observedGeneration?: number } {
  return obj.metadata.generation === undefined
    ? status
    : { ...status, observedGeneration: obj.metadata.generation };
}

export async function writeStatus<T extends WithStatus<unknown>>(
  applier: Applier,
  type: ResourceType,
  current: T,
  status: NonNullable<T["status"]>,
  options: { signal?: AbortSignal } = {},
): Promise<StatusWrite<T>> {
  if (deepEqual(current.status, status)) return { written: false, object: current };
  const body = {
    apiVersion: current.apiVersion,
    kind: current.kind,
    metadata: { name: current.metadata.name, namespace: current.metadata.namespace },
    status,
  } as WithStatus<T["status"]>;
  const object = await applier.apply(type, body, {
    subresource: "status",
    force: true,
    signal: options.signal,
  });
  return { written: true, object: stripUnread(object as T) };
}
