/** ServiceInstance and DiscoveryPolicy values with API defaults applied, for the operator's pure functions. */
import {
  API_VERSION,
  type DiscoveryPolicy,
  DiscoveryPolicySpec,
  type DiscoveryPolicySpecInput,
  HealthCheck,
  type HealthCheckInput,
  type ServiceInstance,
  ServiceInstanceSpec,
  type ServiceInstanceSpecInput,
  type ServiceInstanceStatus,
} from "../../../src/api/index.ts";
import type { InstanceVerdict } from "../../../src/operator/verdicts.ts";

export const NS = "shop";
export const T0 = Date.parse("2030-01-01T00:00:00Z");

export function instance(
  spec: Partial<ServiceInstanceSpecInput> = {},
  options: { name?: string; generation?: number; status?: ServiceInstanceStatus } = {},
): ServiceInstance {
  return {
    apiVersion: API_VERSION,
    kind: "ServiceInstance",
    metadata: { name: options.name ?? "web-1", namespace: NS, generation: options.generation ?? 1 },
    spec: ServiceInstanceSpec.parse({
      service: "web",
      address: "192.0.2.1",
      ports: [{ name: "http", port: 8080 }],
      ...spec,
    }),
    ...(options.status ? { status: options.status } : {}),
  };
}

export function policy(
  name: string,
  spec: Partial<DiscoveryPolicySpecInput> = {},
  created = "2030-01-01T00:00:00Z",
): DiscoveryPolicy {
  return {
    apiVersion: API_VERSION,
    kind: "DiscoveryPolicy",
    metadata: { name, namespace: NS, creationTimestamp: created, generation: 1 },
    spec: DiscoveryPolicySpec.parse({ service: "web", ...spec }),
  };
}

export function check(input: HealthCheckInput = {}): HealthCheck {
  return HealthCheck.parse(input);
}

export function verdict(
  v: InstanceVerdict["verdict"],
  extra: Partial<InstanceVerdict> = {},
): InstanceVerdict {
  return {
    verdict: v,
    reason: v === "Healthy" ? "ProbeSucceeded" : v === "Unhealthy" ? "HttpStatus" : "Pending",
    message: v === "Healthy" ? "HTTP 200" : v === "Unhealthy" ? "HTTP 503" : "not probed yet",
    since: T0,
    addresses: [],
    probed: v !== "Unknown",
    ...extra,
  };
}
