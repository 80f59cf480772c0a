/**
 * Typed helpers to create and read Roster objects and published objects.
 * `rosterApi(kc)` binds them to any cluster (a private sandbox, a
 * ServiceAccount's identity); the functions exported on their own use the
 * shared test cluster.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  EventsV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1EndpointSlice,
  type V1Service,
} from "@kubernetes/client-node";
import type {
  DiscoveryPolicy,
  DiscoveryPolicyInput,
  ServiceInstance,
  ServiceInstanceInput,
  ServiceInstanceStatus,
} from "../../src/api/index.ts";
import { type PublishedEndpoints, parsePublishedEndpoints } from "../../src/api/published.ts";
import { eventually, testCluster } from "./cluster.ts";
import { readyIn, type SliceWatcher, watchSlicesOn } from "./slices.ts";

export { readyIn, type SliceWatchEvent, type SliceWatcher } from "./slices.ts";

const group = "roster.dev";
const version = "v1alpha1";
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

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

/** A condition of a Roster object's status, by type. */
export function condition<C extends { type: string }>(
  obj: { status?: { conditions?: readonly C[] } },
  type: string,
): C | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

export type RosterApi = ReturnType<typeof rosterApi>;

/** Roster and published-object helpers bound to the cluster (and identity) of `kc`. */
export function rosterApi(kc: KubeConfig) {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const events = kc.makeApiClient(EventsV1Api);

  const createInstance = (namespace: string, name: string, spec: ServiceInstanceInput["spec"]) =>
    custom.createNamespacedCustomObject({
      group,
      version,
      namespace,
      plural: "serviceinstances",
      body: { apiVersion: `${group}/${version}`, kind: "ServiceInstance", metadata: { name }, spec },
    });
  const getInstance = async (namespace: string, name: string): Promise<ServiceInstance> =>
    (await custom.getNamespacedCustomObject({
      group,
      version,
      namespace,
      plural: "serviceinstances",
      name,
    })) as ServiceInstance;
  const slicesOf = async (namespace: string, service: string): Promise<V1EndpointSlice[]> =>
    (
      await discovery.listNamespacedEndpointSlice({
        namespace,
        labelSelector: `kubernetes.io/service-name=${service}`,
      })
    ).items;
  const getConfigMap = (namespace: string, name: string): Promise<V1ConfigMap | undefined> =>
    orUndefined(core.readNamespacedConfigMap({ namespace, name }));
  const eventReasons = async (namespace: string, regardingName: string): Promise<string[]> => {
    const list = await events.listNamespacedEvent({ namespace });
    return list.items.filter((e) => e.regarding?.name === regardingName).map((e) => e.reason ?? "");
  };

  return {
    kc,
    custom,
    core,
    discovery,
    events,
    async createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
      await core.createNamespace({ body: { metadata: { name, labels } } });
    },
    createInstance,
    /** Creates many instances, `parallel` requests in flight at a time (a pool, not batches). */
    async createInstances(
      namespace: string,
      specs: readonly { name: string; spec: ServiceInstanceInput["spec"] }[],
      parallel = 16,
    ): Promise<void> {
      let next = 0;
      const worker = async () => {
        while (next < specs.length) {
          const s = specs[next++]!;
          await createInstance(namespace, s.name, s.spec);
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, specs.length) }, worker));
    },
    patchInstanceSpec(namespace: string, name: string, spec: Partial<ServiceInstanceInput["spec"]>) {
      return custom.patchNamespacedCustomObject(
        { group, version, namespace, plural: "serviceinstances", name, body: { spec } },
        mergePatch,
      );
    },
    /** Writes an instance's status through /status (as if an earlier operator had recorded it). */
    patchInstanceStatus(namespace: string, name: string, status: ServiceInstanceStatus) {
      return custom.patchNamespacedCustomObjectStatus(
        { group, version, namespace, plural: "serviceinstances", name, body: { status } },
        mergePatch,
      );
    },
    deleteInstance(namespace: string, name: string) {
      return custom.deleteNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "serviceinstances",
        name,
      });
    },
    createPolicy(namespace: string, name: string, spec: DiscoveryPolicyInput["spec"]) {
      return custom.createNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "discoverypolicies",
        body: { apiVersion: `${group}/${version}`, kind: "DiscoveryPolicy", metadata: { name }, spec },
      });
    },
    patchPolicySpec(namespace: string, name: string, spec: Partial<DiscoveryPolicyInput["spec"]>) {
      return custom.patchNamespacedCustomObject(
        { group, version, namespace, plural: "discoverypolicies", name, body: { spec } },
        mergePatch,
      );
    },
    deletePolicy(namespace: string, name: string) {
      return custom.deleteNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "discoverypolicies",
        name,
      });
    },
    getInstance,
    /** The instance, or undefined once it is gone. */
    findInstance(namespace: string, name: string): Promise<ServiceInstance | undefined> {
      return orUndefined(getInstance(namespace, name));
    },
    async listInstances(namespace: string): Promise<ServiceInstance[]> {
      const list = (await custom.listNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "serviceinstances",
      })) as { items: ServiceInstance[] };
      return list.items;
    },
    async getPolicy(namespace: string, name: string): Promise<DiscoveryPolicy> {
      return (await custom.getNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "discoverypolicies",
        name,
      })) as DiscoveryPolicy;
    },
    slicesOf,
    /** Addresses of endpoints with ready=true across the service's slices, sorted. */
    async readyAddresses(namespace: string, service: string): Promise<string[]> {
      return readyIn(await slicesOf(namespace, service));
    },
    /** Every endpoint of the service's slices with its slice's address type. */
    async sliceEndpoints(namespace: string, service: string) {
      const slices = await slicesOf(namespace, service);
      return slices.flatMap((s) => (s.endpoints ?? []).map((e) => ({ ...e, addressType: s.addressType })));
    },
    /** name → resourceVersion of the service's slices. */
    async sliceVersions(namespace: string, service: string): Promise<Record<string, string>> {
      const slices = await slicesOf(namespace, service);
      return Object.fromEntries(slices.map((s) => [s.metadata!.name!, s.metadata!.resourceVersion!]));
    },
    getService(namespace: string, name: string): Promise<V1Service | undefined> {
      return orUndefined(core.readNamespacedService({ namespace, name }));
    },
    getConfigMap,
    async publishedDocument(namespace: string, name: string): Promise<PublishedEndpoints | undefined> {
      const cm = await getConfigMap(namespace, name);
      return cm ? parsePublishedEndpoints(cm.data) : undefined;
    },
    createSecret(namespace: string, name: string, data: Record<string, string>) {
      return core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: data } });
    },
    eventReasons,
    /** How often each reason was recorded about the object (series counted). */
    async eventCounts(namespace: string, regardingName: string): Promise<Record<string, number>> {
      const list = await events.listNamespacedEvent({ namespace });
      const out: Record<string, number> = {};
      for (const e of list.items.filter((x) => x.regarding?.name === regardingName)) {
        out[e.reason ?? ""] = (out[e.reason ?? ""] ?? 0) + (e.series?.count ?? 1);
      }
      return out;
    },
    /** Waits for an Event with `reason` about the object named `regardingName`. */
    async hasEvent(namespace: string, regardingName: string, reason: string) {
      return (await eventReasons(namespace, regardingName)).includes(reason) ? true : undefined;
    },
    /** The test-side slice watch (`watchSlicesOn`) on this cluster. */
    watchSlices(namespace: string, service: string): Promise<SliceWatcher> {
      return watchSlicesOn(kc, namespace, service);
    },
  };
}

// --- the same helpers on the shared test cluster ---------------------------------------------

let shared: Promise<RosterApi> | undefined;
function onShared(): Promise<RosterApi> {
  shared ??= testCluster().then(({ kc }) => rosterApi(kc));
  return shared;
}

export async function clients() {
  const { custom, core, discovery, events } = await onShared();
  return { custom, core, discovery, events };
}

export async function createInstance(namespace: string, name: string, spec: ServiceInstanceInput["spec"]) {
  return (await onShared()).createInstance(namespace, name, spec);
}

/** Creates many instances, `parallel` requests in flight at a time. */
export async function createInstances(
  namespace: string,
  specs: readonly { name: string; spec: ServiceInstanceInput["spec"] }[],
  parallel = 16,
): Promise<void> {
  return (await onShared()).createInstances(namespace, specs, parallel);
}

export async function patchInstanceSpec(
  namespace: string,
  name: string,
  spec: Partial<ServiceInstanceInput["spec"]>,
) {
  return (await onShared()).patchInstanceSpec(namespace, name, spec);
}

/** Writes an instance's status through /status (as if an earlier operator had recorded it). */
export async function patchInstanceStatus(namespace: string, name: string, status: ServiceInstanceStatus) {
  return (await onShared()).patchInstanceStatus(namespace, name, status);
}

export async function deleteInstance(namespace: string, name: string) {
  return (await onShared()).deleteInstance(namespace, name);
}

export async function createPolicy(namespace: string, name: string, spec: DiscoveryPolicyInput["spec"]) {
  return (await onShared()).createPolicy(namespace, name, spec);
}

export async function patchPolicySpec(
  namespace: string,
  name: string,
  spec: Partial<DiscoveryPolicyInput["spec"]>,
) {
  return (await onShared()).patchPolicySpec(namespace, name, spec);
}

export async function deletePolicy(namespace: string, name: string) {
  return (await onShared()).deletePolicy(namespace, name);
}

export async function getInstance(namespace: string, name: string): Promise<ServiceInstance> {
  return (await onShared()).getInstance(namespace, name);
}

/** The instance, or undefined once it is gone. */
export async function findInstance(namespace: string, name: string): Promise<ServiceInstance | undefined> {
  return (await onShared()).findInstance(namespace, name);
}

export async function listInstances(namespace: string): Promise<ServiceInstance[]> {
  return (await onShared()).listInstances(namespace);
}

export async function getPolicy(namespace: string, name: string): Promise<DiscoveryPolicy> {
  return (await onShared()).getPolicy(namespace, name);
}

export async function slicesOf(namespace: string, service: string): Promise<V1EndpointSlice[]> {
  return (await onShared()).slicesOf(namespace, service);
}

/** Addresses of endpoints with ready=true across the service's slices, sorted. */
export async function readyAddresses(namespace: string, service: string): Promise<string[]> {
  return (await onShared()).readyAddresses(namespace, service);
}

/** Every endpoint of the service's slices with its slice's address type. */
export async function sliceEndpoints(namespace: string, service: string) {
  return (await onShared()).sliceEndpoints(namespace, service);
}

/** name → resourceVersion of the service's slices. */
export async function sliceVersions(namespace: string, service: string): Promise<Record<string, string>> {
  return (await onShared()).sliceVersions(namespace, service);
}

export async function getService(namespace: string, name: string): Promise<V1Service | undefined> {
  return (await onShared()).getService(namespace, name);
}

export async function getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
  return (await onShared()).getConfigMap(namespace, name);
}

export async function publishedDocument(
  namespace: string,
  name: string,
): Promise<PublishedEndpoints | undefined> {
  return (await onShared()).publishedDocument(namespace, name);
}

export async function createSecret(namespace: string, name: string, data: Record<string, string>) {
  return (await onShared()).createSecret(namespace, name, data);
}

export async function eventReasons(namespace: string, regardingName: string): Promise<string[]> {
  return (await onShared()).eventReasons(namespace, regardingName);
}

/** How often each reason was recorded about the object (series counted). */
export async function eventCounts(namespace: string, regardingName: string): Promise<Record<string, number>> {
  return (await onShared()).eventCounts(namespace, regardingName);
}

/** Waits for an Event with `reason` about the object named `regardingName`. */
export async function hasEvent(namespace: string, regardingName: string, reason: string) {
  return (await onShared()).hasEvent(namespace, regardingName, reason);
}

/** `rosterApi(kc).watchSlices` on the shared test cluster. */
export async function watchSlices(namespace: string, service: string): Promise<SliceWatcher> {
  return (await onShared()).watchSlices(namespace, service);
}

/** Waits until the policy's condition `type` has `status`; returns the policy. */
export async function policyWithCondition(
  namespace: string,
  name: string,
  type: string,
  status: "True" | "False" = "True",
  timeoutMs = 15_000,
): Promise<DiscoveryPolicy> {
  return eventually(
    async () => {
      const p = await getPolicy(namespace, name);
      return condition(p, type)?.status === status ? p : undefined;
    },
    { timeoutMs, what: `${type}=${status} on DiscoveryPolicy ${name}` },
  );
}
