/**
 * The one test-side watch on a service's EndpointSlices, independent of the
 * operator's caches: lists (or starts from an earlier list), watches from that
 * list's resourceVersion, and records the ready set after every event. A watch
 * that ends is resumed from the last resourceVersion seen, so no event is
 * missed; one the API server cannot resume (410 Gone) fails `stop()`: a gap
 * would make "never shrinks" unprovable.
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
  /** Throws if the watch failed with a gap (410 Gone). */
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
  let controller: AbortController | undefined;
  // Where the next watch resumes: the last event's or bookmark's resourceVersion.
  let resumeAt = start.resourceVersion;
  // A watch ends without a gap all the time: the API server closes it after its
  // timeout, the client after 30 s without a byte, a restarted API server drops
  // it. Like client-go's RetryWatcher, resume from the last resourceVersion
  // seen; only an ERROR event (410 Gone: the history is compacted) is a gap.
  const open = async (): Promise<void> => {
    controller = await new Watch(kc).watch(
      `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
      {
        labelSelector: `kubernetes.io/service-name=${service}`,
        resourceVersion: resumeAt,
        allowWatchBookmarks: true,
      },
      (type: string, obj: V1EndpointSlice) => {
        if (type === "ERROR") {
          failure ??= new Error(`slice watch error: ${JSON.stringify(obj)}`);
          return;
        }
        resumeAt = obj.metadata?.resourceVersion ?? resumeAt;
        if (type === "BOOKMARK") return;
        const name = obj.metadata?.name ?? "";
        if (type === "DELETED") current.delete(name);
        else current.set(name, obj);
        events.push({ type, name, resourceVersion: resumeAt, ready: readyIn([...current.values()]) });
      },
      () => {
        if (stopped || failure) return;
        // Reopen after a breath, so an API server that is down is not spun on.
        setTimeout(() => {
          if (!stopped && !failure) void open().catch(retry);
        }, 200).unref();
      },
    );
  };
  const retry = (err: unknown) => {
    // The API server is away (refused, 5xx): keep trying until stop().
    if (stopped || failure) return;
    if (isGone(err)) failure = err;
    else setTimeout(() => void open().catch(retry), 200).unref();
  };
  await open();
  return {
    events,
    initial: readyIn(start.items),
    resourceVersion: start.resourceVersion,
    stop() {
      stopped = true;
      controller?.abort();
      if (failure) throw failure;
    },
  };
}

function isGone(err: unknown): boolean {
  return (err as { statusCode?: number } | undefined)?.statusCode === 410;
}
