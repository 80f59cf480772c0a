/**
 * The one test-side watch on a service's EndpointSlices, independent of the
 * operator's caches: lists (or starts from an earlier list), watches from that
 * list's resourceVersion, and records the ready set after every event. It
 * fails loudly if the watch ends before `stop()`: a gap would make "never
 * shrinks" unprovable.
 */
import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice, Watch } from "@kubernetes/client-node";

/** Addresses of endpoints with ready=true across `slices`, sorted. */
export function readyIn(slices: readonly V1EndpointSlice[]): string[] {
  return slices
    .flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses))
    .sort();
}

export interface SliceSnapshot {
  items: V1EndpointSlice[];
  /** The list's resourceVersion (a watch from it sees every later write). */
  resourceVersion: string;
}

/** The slices of a service with the list's resourceVersion (for `watchSlicesOn(..., from)`). */
export async function sliceSnapshot(
  kc: KubeConfig,
  namespace: string,
  service: string,
): Promise<SliceSnapshot> {
  const l = await kc
    .makeApiClient(DiscoveryV1Api)
    .listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` });
  return { items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "" };
}

export interface SliceWatchEvent {
  type: string;
  name: string;
  resourceVersion: string;
  /** Ready addresses across all slices of the service right after this event. */
  ready: string[];
}

export interface SliceWatcher {
  /** Every event seen so far (ADDED/MODIFIED/DELETED). */
  readonly events: SliceWatchEvent[];
  /** Ready addresses when the watch started. */
  readonly initial: string[];
  /** The list's resourceVersion the watch started from. */
  readonly resourceVersion: string;
  /** Throws if the watch failed or ended before stop. */
  stop(): void;
}

/**
 * Watches the service's slices from a list taken now, or with `from` from an
 * earlier list (etcd keeps the history until compaction), so writes made while
 * nobody watched are still seen.
 */
export async function watchSlicesOn(
  kc: KubeConfig,
  namespace: string,
  service: string,
  from?: SliceSnapshot,
): Promise<SliceWatcher> {
  const start = from ?? (await sliceSnapshot(kc, namespace, service));
  const current = new Map(start.items.map((s) => [s.metadata?.name ?? "", s]));
  const events: SliceWatchEvent[] = [];
  let stopped = false;
  let failure: unknown;
  const controller = await new Watch(kc).watch(
    `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    {
      labelSelector: `kubernetes.io/service-name=${service}`,
      resourceVersion: start.resourceVersion,
      allowWatchBookmarks: true,
    },
    (type: string, obj: V1EndpointSlice) => {
      if (type === "BOOKMARK") return;
      if (type === "ERROR") {
        failure = new Error(`slice watch error: ${JSON.stringify(obj)}`);
        return;
      }
      const name = obj.metadata?.name ?? "";
      if (type === "DELETED") current.delete(name);
      else current.set(name, obj);
      events.push({
        type,
        name,
        resourceVersion: obj.metadata?.resourceVersion ?? "",
        ready: readyIn([...current.values()]),
      });
    },
    (err: unknown) => {
      if (!stopped) failure = err ?? new Error("slice watch ended early");
    },
  );
  return {
    events,
    initial: readyIn(start.items),
    resourceVersion: start.resourceVersion,
    stop() {
      stopped = true;
      controller.abort();
      if (failure) throw failure;
    },
  };
}
