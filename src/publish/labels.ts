/**
 * Names, labels and ownership marks shared by everything Roster publishes.
 */
import type { V1ObjectMeta, V1OwnerReference } from "@kubernetes/client-node";

// The labels are part of the published contract (clients select by them):
// declared with the format in src/api/published.ts.
export {
  LABEL_MANAGED_BY,
  LABEL_ROSTER_SERVICE,
  LABEL_SERVICE_NAME,
  LABEL_SLICE_MANAGED_BY,
  publishedLabels,
  ROSTER_MANAGER,
} from "../api/published.ts";

import {
  LABEL_MANAGED_BY,
  LABEL_ROSTER_SERVICE,
  LABEL_SERVICE_NAME,
  LABEL_SLICE_MANAGED_BY,
  ROSTER_MANAGER,
} from "../api/published.ts";

/** The group/version of ServiceInstance, used in EndpointSlice targetRefs. */
export const SERVICE_INSTANCE_API_VERSION = "roster.dev/v1alpha1";
export const SERVICE_INSTANCE_KIND = "ServiceInstance";

/** Labels on every EndpointSlice of a service. */
export function sliceLabels(service: string): Record<string, string> {
  return {
    [LABEL_SERVICE_NAME]: service,
    [LABEL_SLICE_MANAGED_BY]: ROSTER_MANAGER,
    [LABEL_MANAGED_BY]: ROSTER_MANAGER,
    [LABEL_ROSTER_SERVICE]: service,
  };
}

/** Label selector (string form) for the EndpointSlices Roster manages for a service. */
export function sliceSelector(service: string): string {
  return `${LABEL_SERVICE_NAME}=${service},${LABEL_SLICE_MANAGED_BY}=${ROSTER_MANAGER}`;
}

/**
 * Whether Roster manages this object. Roster never takes over an object that
 * fails this test (it reports a Conflict instead).
 */
export function isManagedByRoster(meta: Pick<V1ObjectMeta, "labels"> | undefined): boolean {
  const labels = meta?.labels ?? {};
  return labels[LABEL_MANAGED_BY] === ROSTER_MANAGER || labels[LABEL_SLICE_MANAGED_BY] === ROSTER_MANAGER;
}

/** Default ConfigMap name of a service. */
export function defaultConfigMapName(service: string): string {
  return `${service}-roster`;
}

/** Whether every label in `required` is present in `actual` with the same value. */
export function hasLabels(
  actual: Record<string, string> | undefined,
  required: Record<string, string>,
): boolean {
  for (const [k, v] of Object.entries(required)) if (actual?.[k] !== v) return false;
  return true;
}

export function isOwnedBy(meta: V1ObjectMeta | undefined, owner: V1OwnerReference): boolean {
  return (meta?.ownerReferences ?? []).some((ref) => ref.uid === owner.uid);
}
