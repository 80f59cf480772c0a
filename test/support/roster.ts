/** Typed helpers to create and read Roster objects and published objects in the test cluster. */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  EventsV1Api,
  type V1EndpointSlice,
} from "@kubernetes/client-node";
import type { DiscoveryPolicyInput, ServiceInstance, ServiceInstanceInput } from "../../src/api/index.ts";
import { type PublishedEndpoints, parsePublishedEndpoints } from "../../src/api/published.ts";
import { testCluster } from "./cluster.ts";

const group = "roster.dev";
const version = "v1alpha1";

export async function clients() {
  const { kc } = await testCluster();
  return {
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    discovery: kc.makeApiClient(DiscoveryV1Api),
    events: kc.makeApiClient(EventsV1Api),
  };
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

export async function patchInstanceSpec(
  namespace: string,
  name: string,
  spec: Partial<ServiceInstanceInput["spec"]>,
) {
  const { custom } = await clients();
  const { setHeaderOptions, PatchStrategy } = await import("@kubernetes/client-node");
  return custom.patchNamespacedCustomObject(
    { group, version, namespace, plural: "serviceinstances", name, body: { spec } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
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

export async function getPolicy(namespace: string, name: string) {
  const { custom } = await clients();
  return (await custom.getNamespacedCustomObject({
    group,
    version,
    namespace,
    plural: "discoverypolicies",
    name,
  })) as {
    status?: {
      conditions?: { type: string; status: string; reason: string }[];
      panic?: boolean;
      publishedRevision?: number;
      healthyInstances?: number;
      totalInstances?: number;
    };
  };
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
  const slices = await slicesOf(namespace, service);
  return slices
    .flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses))
    .sort();
}

export async function publishedDocument(
  namespace: string,
  name: string,
): Promise<PublishedEndpoints | undefined> {
  const { core } = await clients();
  try {
    const cm = await core.readNamespacedConfigMap({ namespace, name });
    return parsePublishedEndpoints(cm.data);
  } catch {
    return undefined;
  }
}

export async function eventReasons(namespace: string, regardingName: string): Promise<string[]> {
  const { events } = await clients();
  const list = await events.listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.regarding?.name === regardingName).map((e) => e.reason ?? "");
}
