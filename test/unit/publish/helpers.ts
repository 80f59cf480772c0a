/** Builders shared by the publication unit tests. */
import type { V1OwnerReference } from "@kubernetes/client-node";
import type { InstanceInput, SliceEndpoint } from "../../../src/publish/index.ts";

export const NS = "shop";
export const SVC = "web";
export const OWNER: V1OwnerReference = {
  apiVersion: "v1",
  kind: "Service",
  name: SVC,
  uid: "uid-web-1",
  controller: true,
  blockOwnerDeletion: true,
};

/** The i-th IPv4 address of a test pool (10.x.y.z, never special). */
export function ip4(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

export function ip6(i: number): string {
  return `2001:db8::${(i + 1).toString(16)}`;
}

export function instance(name: string, over: Partial<InstanceInput> = {}): InstanceInput {
  return {
    name,
    addresses: ["10.1.0.1"],
    ports: [{ name: "http", port: 8080 }],
    verdict: "Healthy",
    ...over,
  };
}

export interface EpOptions {
  ready?: boolean;
  zone?: string;
  port?: number;
  name?: string;
}

/** A slice endpoint as computeDesired makes it, for planner tests. */
export function sliceEp(address: string, opts: EpOptions = {}): SliceEndpoint {
  const ready = opts.ready ?? true;
  return {
    ports: [{ name: "http", port: opts.port ?? 8080, protocol: "TCP" }],
    endpoint: {
      addresses: [address],
      conditions: { ready, serving: ready, terminating: !ready },
      ...(opts.zone ? { zone: opts.zone } : {}),
      targetRef: {
        apiVersion: "roster.dev/v1alpha1",
        kind: "ServiceInstance",
        namespace: NS,
        name: opts.name ?? `i-${address.replaceAll(/[.:]/g, "-")}`,
      },
    },
  };
}

export function range(n: number, from = 0): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}
