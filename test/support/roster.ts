/** Typed helpers to create and read Roster objects and published objects in the test cluster. */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1EndpointSlice,
  type V1Service,
  Watch,
} from "@kubernetes/client-node";
import type {
  DiscoveryPolicy,
  DiscoveryPolicyInput,
  ServiceInstance,
  ServiceInstanceInput,
  ServiceInstanceStatus,
} from "../../src/api/index.ts";
import { type PublishedEndpoints, parsePublishedEndpoints } from "../../src/api/published.ts";
import { testCluster } from "./cluster.ts";

const group = "roster.dev";
const version = "v1alpha1";
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export async function clients() {
  const { kc } = await testCluster();
  return {
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    discovery: kc.makeApiClient(DiscoveryV1Api),
    events: kc.makeApiClient(EventsV1Api),
  };
}

/** True for a 404 from the API server. */
export function isNotFound(err: unknown): boolean {
  return (err as { code?: number }).code === 404;
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function createInstance(namespace: string, name: string, spec: ServiceInstanceInput["spec"]) {
  const { custom } = await clients();
  return custom.createNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "serviceinstances",
    body: { apiVersion: `${group}/${version}`, kind: "ServiceInstance", metadata: { name }, spec },
  });
}

/** Creates many instances, `parallel` requests at a time. */
export async function createInstances(
  namespace: string,
  specs: readonly { name: string; spec: ServiceInstanceInput["spec"] }[],
  parallel = 16,
): Promise<void> {
  for (let i = 0; i < specs.length; i += parallel) {
    await Promise.all(specs.slice(i, i + parallel).map((s) => createInstance(namespace, s.name, s.spec)));
  }
}

export async function patchInstanceSpec(
  namespace: string,
  name: string,
  spec: Partial<ServiceInstanceInput["spec"]>,
) {
  const { custom } = await clients();
  return custom.patchNamespacedCustomObject(
    { group, version, namespace, plural: "serviceinstances", name, body: { spec } },
    mergePatch,
  );
}

/** Writes an instance's status through /status (as if an earlier operator had recorded it). */
export async function patchInstanceStatus(namespace: string, name: string, status: ServiceInstanceStatus) {
  const { custom } = await clients();
  return custom.patchNamespacedCustomObjectStatus(
    { group, version, namespace, plural: "serviceinstances", name, body: { status } },
    mergePatch,
  );
}

export async function deleteInstance(namespace: string, name: string) {
  const { custom } = await clients();
  return custom.deleteNamespacedCustomObject({ group, version, namespace, plural: "serviceinstances", name });
}

export async function createPolicy(namespace: string, name: string, spec: DiscoveryPolicyInput["spec"]) {
  const { custom } = await clients();
  return custom.createNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "discoverypolicies",
    body: { apiVersion: `${group}/${version}`, kind: "DiscoveryPolicy", metadata: { name }, spec },
  });
}

export async function patchPolicySpec(
  namespace: string,
  name: string,
  spec: Partial<DiscoveryPolicyInput["spec"]>,
) {
  const { custom } = await clients();
  return custom.patchNamespacedCustomObject(
    { group, version, namespace, plural: "discoverypolicies", name, body: { spec } },
    mergePatch,
  );
}

export async function deletePolicy(namespace: string, name: string) {
  const { custom } = await clients();
  return custom.deleteNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "discoverypolicies",
    name,
  });
}

export async function getInstance(namespace: string, name: string): Promise<ServiceInstance> {
  const { custom } = await clients();
  return (await custom.getNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "serviceinstances",
    name,
  })) as ServiceInstance;
}

/** The instance, or undefined once it is gone. */
export async function findInstance(namespace: string, name: string): Promise<ServiceInstance | undefined> {
  return orUndefined(getInstance(namespace, name));
}

export async function listInstances(namespace: string): Promise<ServiceInstance[]> {
  const { custom } = await clients();
  const list = (await custom.listNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "serviceinstances",
  })) as { items: ServiceInstance[] };
  return list.items;
}

export async function getPolicy(namespace: string, name: string): Promise<DiscoveryPolicy> {
  const { custom } = await clients();
  return (await custom.getNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "discoverypolicies",
    name,
  })) as DiscoveryPolicy;
}

/** A condition of a Roster object's status, by type. */
export function condition<C extends { type: string }>(
  obj: { status?: { conditions?: readonly C[] } },
  type: string,
): C | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

export async function slicesOf(namespace: string, service: string): Promise<V1EndpointSlice[]> {
  const { discovery } = await clients();
  const list = await discovery.listNamespacedEndpointSlice({
    namespace,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  return list.items;
}

/** Addresses of endpoints with ready=true across the service's slices, sorted. */
export async function readyAddresses(namespace: string, service: string): Promise<string[]> {
  return readyIn(await slicesOf(namespace, service));
}

/** Addresses of endpoints with ready=true across `slices`, sorted. */
export function readyIn(slices: readonly V1EndpointSlice[]): string[] {
  return slices
    .flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses))
    .sort();
}

/** Every endpoint of the service's slices with its slice's address type. */
export async function sliceEndpoints(namespace: string, service: string) {
  const slices = await slicesOf(namespace, service);
  return slices.flatMap((s) => (s.endpoints ?? []).map((e) => ({ ...e, addressType: s.addressType })));
}

/** name → resourceVersion of the service's slices. */
export async function sliceVersions(namespace: string, service: string): Promise<Record<string, string>> {
  const slices = await slicesOf(namespace, service);
  return Object.fromEntries(slices.map((s) => [s.metadata!.name!, s.metadata!.resourceVersion!]));
}

export async function getService(namespace: string, name: string): Promise<V1Service | undefined> {
  const { core } = await clients();
  return orUndefined(core.readNamespacedService({ namespace, name }));
}

export async function getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
  const { core } = await clients();
  return orUndefined(core.readNamespacedConfigMap({ namespace, name }));
}

export async function publishedDocument(
  namespace: string,
  name: string,
): Promise<PublishedEndpoints | undefined> {
  const cm = await getConfigMap(namespace, name);
  return cm ? parsePublishedEndpoints(cm.data) : undefined;
}

export async function createSecret(namespace: string, name: string, data: Record<string, string>) {
  const { core } = await clients();
  return core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: data } });
}

export async function eventReasons(namespace: string, regardingName: string): Promise<string[]> {
  const { events } = await clients();
  const list = await events.listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.regarding?.name === regardingName).map((e) => e.reason ?? "");
}

/** How often each reason was recorded about the object (series counted). */
export async function eventCounts(namespace: string, regardingName: string): Promise<Record<string, number>> {
  const { events } = await clients();
  const list = await events.listNamespacedEvent({ namespace });
  const out: Record<string, number> = {};
  for (const e of list.items.filter((x) => x.regarding?.name === regardingName)) {
    out[e.reason ?? ""] = (out[e.reason ?? ""] ?? 0) + (e.series?.count ?? 1);
  }
  return out;
}

/** Waits for an Event with `reason` about the object named `regardingName`. */
export async function hasEvent(namespace: string, regardingName: string, reason: string) {
  return (await eventReasons(namespace, regardingName)).includes(reason) ? true : undefined;
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
  stop(): void;
}

/**
 * A real watch on the service's EndpointSlices from the test, independent of
 * the operator's caches: lists, then watches from the list's resourceVersion,
 * and records the ready set after every event. Fails loudly if the watch ends
 * before `stop()` (a gap would make "never shrinks" unprovable).
 */
export async function watchSlices(namespace: string, service: string): Promise<SliceWatcher> {
  const { kc } = await testCluster();
  const { discovery } = await clients();
  const list = await discovery.listNamespacedEndpointSlice({
    namespace,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  const current = new Map<string, V1EndpointSlice>(list.items.map((s) => [s.metadata!.name!, s]));
  const events: SliceWatchEvent[] = [];
  let stopped = false;
  let failure: unknown;
  const controller = await new Watch(kc).watch(
    `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    {
      labelSelector: `kubernetes.io/service-name=${service}`,
      resourceVersion: list.metadata?.resourceVersion,
      allowWatchBookmarks: true,
    },
    (type, obj: V1EndpointSlice) => {
      if (type === "BOOKMARK") return;
      if (type === "ERROR") {
        failure = new Error(`slice watch error: ${JSON.stringify(obj)}`);
        return;
      }
      const name = obj.metadata!.name!;
      if (type === "DELETED") current.delete(name);
      else current.set(name, obj);
      events.push({
        type,
        name,
        resourceVersion: obj.metadata!.resourceVersion!,
        ready: readyIn([...current.values()]),
      });
    },
    (err) => {
      if (!stopped) failure = err ?? new Error("slice watch ended early");
    },
  );
  return {
    events,
    initial: readyIn(list.items),
    stop() {
      if (failure) throw failure;
      stopped = true;
      controller.abort();
    },
  };
}
