/**
 * The desired endpoint model: from per-instance inputs (resolved addresses,
 * ports, weight, zone, drain, probe verdict) and the publish policy, compute
 * what a service publishes: the endpoints of the ConfigMap document (every
 * instance, with its state) and the endpoints of the EndpointSlices (only the
 * routable and the draining ones), split by address family.
 *
 * Rules (docs/publish.md explains them for users):
 * - Ready: verdict healthy, not drained → slice conditions ready, serving.
 * - Draining (spec.drain): published as terminating, not ready; serving
 *   reports the verdict (upstream's meaning for a terminating endpoint), so
 *   kube-proxy sends it no new connections.
 * - Unhealthy / Pending (no verdict yet): not in the slices, unless the service
 *   is in panic.
 * - Panic: among non-drained instances that have a verdict, fewer than
 *   panicThreshold percent are healthy. Then every non-drained instance is
 *   published as ready (fail open) and the document says `panic: true`.
 *   Pending instances count on neither side: no verdict is no evidence, and
 *   a service whose instances are all new must not start in panic.
 * - Degraded (healthy, but its probes report it degraded): Ready as any
 *   healthy instance, at degradedWeightPercent of its weight (publishedWeight,
 *   the one place the published weight is decided), and `degraded: true`.
 * - Slow start (policy.slowStart): a Ready endpoint whose instance turned
 *   healthy within the window carries `slowStartSince` (slowStartSince(),
 *   once per ramp, so re-plans during the window write nothing). Readers
 *   ramp the published weight, so a degraded instance ramps to its degraded
 *   weight: the two multiply (weight × degradedWeightPercent × ramp factor).
 * - Zone hints (policy.trafficDistribution set, PreferSameZone or PreferClose:
 *   kube-proxy reads the same hints for both): `hints.forZones` = the endpoint's own zone,
 *   on ready endpoints, and only when every ready slice endpoint has a zone
 *   (kube-proxy ignores all hints of a service when one ready endpoint lacks
 *   them, and upstream's controller sets none in that case either).
 * - One address family per slice; addresses the API server refuses in a slice
 *   (loopback, link-local, unspecified) stay in the ConfigMap only.
 */
import type { DiscoveryV1EndpointPort, V1Endpoint } from "@kubernetes/client-node";
import type { Verdict } from "../api/common.ts";
import type { TrafficDistribution } from "../api/discoverypolicy.ts";
import {
  type AddressFamily,
  compareEndpoints,
  compareStrings,
  type EndpointState,
  formatPublishedTime,
  isRoutableState,
  type Protocol,
  type PublishedEndpoint,
  type PublishedPort,
} from "../api/published.ts";
import { checkAddress } from "./addresses.ts";
import { SERVICE_INSTANCE_API_VERSION, SERVICE_INSTANCE_KIND } from "./labels.ts";

/** The one verdict vocabulary, the probe engine's (defined in src/api for both layers). */
export type { Verdict };

export interface InstancePort {
  name: string;
  port: number;
  /** Default TCP. */
  protocol?: Protocol;
  appProtocol?: string;
}

/**
 * One ServiceInstance as the publisher sees it. The caller passes only
 * instances that may be published: those refused by the destination policy or
 * failing runtime validation are left out (and get their condition elsewhere).
 */
export interface InstanceInput {
  /** The ServiceInstance name. */
  name: string;
  /** The ServiceInstance UID, recorded in the slices' targetRef when known. */
  uid?: string;
  /** Resolved IP addresses (IPv4 and/or IPv6; a DNS name resolved by the operator). */
  addresses: readonly string[];
  ports: readonly InstancePort[];
  /** 0..10000, default 100. */
  weight?: number;
  zone?: string;
  drain?: boolean;
  verdict: Verdict;
  /** Healthy but degraded (only read with verdict Healthy): published at a reduced weight. */
  degraded?: boolean;
  tags?: readonly string[];
  metadata?: Readonly<Record<string, string>>;
  /** When a healthy instance turned healthy (ms), for slow start. */
  healthySince?: number;
  /** The database role its probe reported (the instance view decides it); absent when unknown. */
  role?: "primary" | "replica";
  /** Its check has no postgres or redis probe: its role is never known (publish.role leaves it out for good). */
  noRoleProbe?: boolean;
}

export interface PublishPolicy {
  /** Percent 0..100; 0 disables panic. */
  panicThreshold: number;
  /** The Service's trafficDistribution: set means zone hints are wanted. */
  trafficDistribution?: TrafficDistribution;
  /** Slow start: Ready endpoints that turned healthy less than windowMs ago carry slowStartSince. */
  slowStart?: { windowMs: number; notBeforeMs?: number };
  /** The time (ms) slow start windows are measured at; required with slowStart. */
  now?: number;
  /** Percent 0..100 of its weight a degraded instance is published with; default 100 (no reduction). */
  degradedWeightPercent?: number;
}

/** One endpoint of an EndpointSlice, with the ports that decide which slices can hold it. */
export interface SliceEndpoint {
  /** Sorted by name; slices group endpoints with equal port lists. */
  ports: DiscoveryV1EndpointPort[];
  endpoint: V1Endpoint;
}

export type DesiredSliceEndpoints = Record<AddressFamily, SliceEndpoint[]>;

export interface SkippedAddress {
  instance: string;
  address: string;
  reason: string;
  /** The address is still published in the ConfigMap (valid IP, refused by slices only). */
  inConfigMap: boolean;
}

export interface PublishCounts {
  /** Instances given. */
  total: number;
  /** Verdict healthy (drained ones included). */
  healthy: number;
  unhealthy: number;
  /** No verdict yet. */
  pending: number;
  draining: number;
  /** Instances published as ready (Ready or Panic), at least one address. */
  ready: number;
}

export interface DesiredPublication {
  namespace: string;
  service: string;
  panic: boolean;
  /** Whether hints.forZones were set (trafficDistribution set and every ready endpoint has a zone). */
  zoneHints: boolean;
  counts: PublishCounts;
  /** ConfigMap endpoints, sorted by (instance, address). */
  endpoints: PublishedEndpoint[];
  /** EndpointSlice endpoints per family, sorted by address then instance. */
  slices: DesiredSliceEndpoints;
  skipped: SkippedAddress[];
}

export const DEFAULT_WEIGHT = 100;

/** Whether the share of healthy instances is below the threshold. */
export function isPanic(healthy: number, withVerdict: number, panicThreshold: number): boolean {
  if (panicThreshold <= 0 || withVerdict === 0) return false;
  return healthy * 100 < panicThreshold * withVerdict;
}

/**
 * The ramp start an endpoint publishes (RFC 3339, whole seconds), or
 * undefined: only a Ready endpoint whose instance turned healthy within the
 * last window (measured from the second it turned healthy, as readers do),
 * and not before the policy's `notBeforeMs` (an instance that was healthy
 * when the policy appeared does not ramp).
 */
export function slowStartSince(
  instance: Pick<InstanceInput, "healthySince">,
  state: EndpointState,
  policy: Pick<PublishPolicy, "slowStart" | "now">,
): string | undefined {
  const ss = policy.slowStart;
  const since = instance.healthySince;
  if (!ss || since === undefined || state !== "Ready") return undefined;
  const start = Math.floor(since / 1000) * 1000;
  if (ss.notBeforeMs !== undefined && start < ss.notBeforeMs) return undefined;
  if ((policy.now ?? Number.POSITIVE_INFINITY) >= start + ss.windowMs) return undefined;
  return formatPublishedTime(start);
}

/** The weight an instance is published with: its own, reduced while it is degraded. */
export function publishedWeight(instance: InstanceInput, policy: PublishPolicy): number {
  const weight = instance.weight ?? DEFAULT_WEIGHT;
  if (!isDegraded(instance)) return weight;
  const percent = policy.degradedWeightPercent ?? 100;
  // A reduced weight never rounds down to 0 (no traffic) unless the percent says so.
  return percent === 0 || weight === 0 ? 0 : Math.max(1, Math.round((weight * percent) / 100));
}

function isDegraded(instance: InstanceInput): boolean {
  return instance.degraded === true && instance.verdict === "Healthy";
}

function endpointState(instance: InstanceInput, panic: boolean): EndpointState {
  if (instance.drain) return "Draining";
  if (instance.verdict === "Healthy") return "Ready";
  if (panic) return "Panic";
  return instance.verdict === "Unhealthy" ? "Unhealthy" : "Pending";
}

/** Ports with the protocol defaulted, sorted by name. */
export function normalizePorts(ports: readonly InstancePort[]): PublishedPort[] {
  return [...ports]
    .map((p) => ({
      name: p.name,
      port: p.port,
      protocol: p.protocol ?? "TCP",
      ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
    }))
    .sort((a, b) => compareStrings(a.name, b.name));
}

export function computeDesired(
  namespace: string,
  service: string,
  instances: readonly InstanceInput[],
  policy: PublishPolicy,
): DesiredPublication {
  const counts: PublishCounts = {
    total: instances.length,
    healthy: 0,
    unhealthy: 0,
    pending: 0,
    draining: 0,
    ready: 0,
  };
  let eligibleHealthy = 0;
  let eligible = 0;
  for (const inst of instances) {
    if (inst.verdict === "Healthy") counts.healthy++;
    else if (inst.verdict === "Unhealthy") counts.unhealthy++;
    else counts.pending++;
    if (inst.drain) counts.draining++;
    else if (inst.verdict !== "Unknown") {
      eligible++;
      if (inst.verdict === "Healthy") eligibleHealthy++;
    }
  }
  const panic = isPanic(eligibleHealthy, eligible, policy.panicThreshold);

  const endpoints: PublishedEndpoint[] = [];
  const skipped: SkippedAddress[] = [];
  const sliced: { family: AddressFamily; entry: SliceEndpoint; ready: boolean; zone: string | undefined }[] =
    [];
  let previousName: string | undefined;

  for (const inst of [...instances].sort((a, b) => compareStrings(a.name, b.name))) {
    if (inst.name === previousName) {
      for (const address of inst.addresses) {
        skipped.push({ instance: inst.name, address, reason: "duplicate instance name", inConfigMap: false });
      }
      continue;
    }
    previousName = inst.name;
    const seen = new Set<string>();
    const state = endpointState(inst, panic);
    const ready = isRoutableState(state);
    const healthy = inst.verdict === "Healthy";
    const degraded = isDegraded(inst);
    const weight = publishedWeight(inst, policy);
    const ports = normalizePorts(inst.ports);
    const rampSince = slowStartSince(inst, state, policy);
    // One array per instance: the planner normalizes each distinct array once.
    const slicePorts: DiscoveryV1EndpointPort[] = ports.map((p) => ({ ...p }));
    let publishedAny = false;
    for (const raw of inst.addresses) {
      if (ports.length === 0) {
        skipped.push({
          instance: inst.name,
          address: raw,
          reason: "instance has no ports",
          inConfigMap: false,
        });
        continue;
      }
      const check = checkAddress(raw);
      if (!check.ok) {
        skipped.push({ instance: inst.name, address: raw, reason: check.reason, inConfigMap: false });
        continue;
      }
      if (seen.has(check.address)) continue; // the same address spelled twice
      seen.add(check.address);
      publishedAny = true;
      endpoints.push({
        instance: inst.name,
        address: check.address,
        family: check.family,
        ports,
        weight,
        ...(inst.zone ? { zone: inst.zone } : {}),
        tags: [...new Set(inst.tags ?? [])].sort(compareStrings),
        metadata: { ...(inst.metadata ?? {}) },
        state,
        ready,
        healthy,
        ...(rampSince ? { slowStartSince: rampSince } : {}),
        ...(inst.role ? { role: inst.role } : {}),
        ...(degraded ? { degraded: true as const } : {}),
      });
      if (!check.sliceable) {
        skipped.push({
          instance: inst.name,
          address: check.address,
          reason: check.reason,
          inConfigMap: true,
        });
        continue;
      }
      if (!ready && state !== "Draining") continue;
      sliced.push({
        family: check.family,
        ready,
        zone: inst.zone || undefined,
        entry: {
          ports: slicePorts,
          endpoint: {
            addresses: [check.address],
            conditions: { ready, serving: ready || healthy, terminating: state === "Draining" },
            ...(inst.zone ? { zone: inst.zone } : {}),
            targetRef: {
              apiVersion: SERVICE_INSTANCE_API_VERSION,
              kind: SERVICE_INSTANCE_KIND,
              namespace,
              name: inst.name,
              ...(inst.uid ? { uid: inst.uid } : {}),
            },
          },
        },
      });
    }
    if (ready && publishedAny) counts.ready++;
  }

  const readySliced = sliced.filter((s) => s.ready);
  const hints =
    policy.trafficDistribution !== undefined &&
    readySliced.length > 0 &&
    readySliced.every((s) => s.zone !== undefined);
  if (hints) {
    for (const s of readySliced) s.entry.endpoint.hints = { forZones: [{ name: s.zone! }] };
  }

  const slices: DesiredSliceEndpoints = { IPv4: [], IPv6: [] };
  const keyed = sliced.map((s) => ({ s, key: endpointKey(s.entry.endpoint) }));
  keyed.sort((a, b) => compareStrings(a.key, b.key));
  for (const { s } of keyed) slices[s.family].push(s.entry);
  endpoints.sort(compareEndpoints);
  return { namespace, service, panic, zoneHints: hints, counts, endpoints, slices, skipped };
}

/** Identity of a slice endpoint: its addresses and the object it stands for. */
export function endpointKey(ep: V1Endpoint): string {
  const addresses =
    ep.addresses.length === 1 ? ep.addresses[0]! : [...ep.addresses].sort(compareStrings).join(",");
  const ref = ep.targetRef;
  return ref ? `${addresses}|${ref.namespace ?? ""}/${ref.name ?? ""}` : `${addresses}|/`;
}
