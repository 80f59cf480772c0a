/**
 * Objects as they come off the wire, resource types, and object keys.
 *
 * Objects are plain parsed JSON (timestamps stay strings), never client-node's
 * generated model classes: the informer stores exactly what the API server
 * sent, minus `metadata.managedFields` by default.
 *
 * Guarantees:
 * - `objectKey` is `namespace/name` for namespaced objects and `name` for
 *   cluster-scoped ones, the same format client-go's MetaNamespaceKeyFunc uses;
 *   `splitKey` is its exact inverse.
 * - `resourcePath` builds the REST path of a collection, an object or a
 *   subresource; it never guesses plurals (the ResourceType says them).
 */
import type { ResourceType } from "../api/common.ts";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  /** Opaque: compare for equality only, never order. */
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: unknown[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: T[];
}

export type { ResourceType } from "../api/common.ts";

export function apiVersionOf(rt: ResourceType): string {
  return rt.group === "" ? rt.version : `${rt.group}/${rt.version}`;
}

/** `configmaps`, `leases.coordination.k8s.io`: for logs and metric labels. */
export function resourceName(rt: ResourceType): string {
  return rt.group === "" ? rt.plural : `${rt.plural}.${rt.group}`;
}

export interface PathOptions {
  namespace?: string;
  name?: string;
  subresource?: string;
}

export function resourcePath(rt: ResourceType, opts: PathOptions = {}): string {
  let path = rt.group === "" ? `/api/${rt.version}` : `/apis/${rt.group}/${rt.version}`;
  if (rt.namespaced && opts.namespace) path += `/namespaces/${encodeURIComponent(opts.namespace)}`;
  path += `/${rt.plural}`;
  if (opts.name !== undefined) path += `/${encodeURIComponent(opts.name)}`;
  if (opts.subresource) {
    if (opts.name === undefined) throw new Error("a subresource needs an object name");
    path += `/${opts.subresource}`;
  }
  return path;
}

export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata.namespace;
  const name = obj.metadata.name ?? "";
  return ns ? `${ns}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** A few built-in types the runtime itself needs; operator types live in src/api. */
export const resources = {
  configMaps: { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
  namespaces: { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  services: { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
  secrets: { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
  endpointSlices: {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    kind: "EndpointSlice",
    namespaced: true,
  },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true },
  events: { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event", namespaced: true },
} as const satisfies Record<string, ResourceType>;
