/**
 * ServiceInstance specs for the operator's end-to-end tests: instances are
 * published at documentation-range addresses (192.0.2.N, 2001:db8::N; the
 * API server refuses loopback addresses in EndpointSlices) and probed at
 * real loopback servers through the probe's `host` override.
 */
import type { HealthCheckInput, ServiceInstanceInput } from "../../src/api/index.ts";
import type { HttpTarget } from "./targets.ts";

/** Fast checks: one probe a second, unhealthy after 2 failures, healthy after 1 success. */
export const FAST = { interval: "1s", timeout: "500ms", failureThreshold: 2, successThreshold: 1, jitter: 0 };
export const INTERVAL_MS = 1000;
/** Watch round trips, batching and status writes on top of threshold × interval. */
export const MARGIN_MS = 2500;

/** An HTTP health check of `/healthz` at the target's loopback address. */
export function httpCheck(target: HttpTarget, extra: Partial<HealthCheckInput> = {}): HealthCheckInput {
  return {
    probes: [{ type: "http", http: { host: target.host, port: "http", path: "/healthz" } }],
    ...FAST,
    ...extra,
  };
}

/** A web instance published at 192.0.2.N (index + 1) and probed at its loopback server. */
export function webInstance(
  target: HttpTarget,
  index: number,
  extra: Partial<ServiceInstanceInput["spec"]> = {},
): ServiceInstanceInput["spec"] {
  return {
    service: "web",
    address: `192.0.2.${index + 1}`,
    ports: [{ name: "http", port: target.port }],
    healthCheck: httpCheck(target),
    ...extra,
  };
}
