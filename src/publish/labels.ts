/**
 * Names, labels and ownership marks shared by everything Roster publishes.
 */
import type { V1ObjectMeta, V1OwnerReference } from "@kubernetes/client-node";

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

/** The group/version of ServiceInstance, used in EndpointSlice targetRefs. */
export const SERVICE_INSTANCE_API_VERSION = "roster.dev/v1alpha1";
export const SERVICE_INSTANCE_KIND = "ServiceInstance";

/** Labels on the Service and the ConfigMap of a service. */
export function publishedLabels(service: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: ROSTER_MANAGER, [LABEL_ROSTER_SERVICE]: service };
}

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
