/**
 * Pure mapping from API objects to what the operator acts on: which policy
 * governs a service, the effective settings of an instance (instance override,
 * else the service's DiscoveryPolicy, else the operator default), and the
 * probe engine's target for an instance.
 */
import {
  type DiscoveryPolicy,
  type HealthCheck,
  type LoadBalancing,
  type Probe,
  type Publish,
  parseDuration,
  resolveProbePort,
  type ServiceInstance,
  validateDiscoveryPolicy,
} from "../api/index.ts";
import type { FieldError } from "../api/validate.ts";
import type { DefaultPolicy } from "../config/schema.ts";
import type { CheckSpec, ProbeSpec, Target, TlsSpec } from "../health/index.ts";

/** The operator-wide default policy (from its config file). */
export type { DefaultPolicy };

export interface EffectiveSettings {
  healthCheck: HealthCheck;
  loadBalancing: LoadBalancing;
  publish: Publish;
  /** Milliseconds; undefined: never deregister. */
  deregisterAfterMs?: number;
  /** Where the health check came from, for status messages. */
  checkSource: "Instance" | "Policy" | "Default";
  policy?: DiscoveryPolicy;
}

/** `namespace/service`: the key of everything published for one service. */
export function serviceKey(namespace: string, service: string): string {
  return `${namespace}/${service}`;
}

/**
 * The policies of one service, the governing one first: the oldest wins (then
 * by name), so a second policy for the same service never displaces the first.
 */
export function rankPolicies(policies: readonly DiscoveryPolicy[]): DiscoveryPolicy[] {
  return [...policies].sort((a, b) => {
    const ta = a.metadata.creationTimestamp ?? "";
    const tb = b.metadata.creationTimestamp ?? "";
    return ta < tb ? -1 : ta > tb ? 1 : a.metadata.name! < b.metadata.name! ? -1 : 1;
  });
}

export interface GoverningPolicy<P extends DiscoveryPolicy> {
  /** The service's policies, the governing one first (see rankPolicies). */
  ranked: P[];
  /** The governing policy as zod parsed it (defaults filled in); undefined when none or invalid. */
  policy?: DiscoveryPolicy;
  /** Why the governing policy is invalid: it is not used, the operator defaults apply. */
  invalid?: FieldError[];
}

/**
 * The policy that governs a service, re-validated: the cache holds what the
 * API server accepted, which an older CRD (or one installed without its
 * schema) may have let through. An invalid policy is ignored as a whole (the
 * operator defaults apply, as for a service without one) rather than used
 * in parts: its probes, Secret names and publish settings are never read.
 * The publisher reports it as Ready=False/InvalidSpec on the policy.
 */
export function governingPolicy<P extends DiscoveryPolicy>(policies: readonly P[]): GoverningPolicy<P> {
  const ranked = rankPolicies(policies) as P[];
  const first = ranked[0];
  if (!first) return { ranked };
  const v = validateDiscoveryPolicy(first);
  if (!v.ok) return { ranked, invalid: v.errors };
  return { ranked, policy: { ...v.value, metadata: first.metadata } };
}

export function effectiveSettings(
  policy: DiscoveryPolicy | undefined,
  defaults: DefaultPolicy,
  instance?: ServiceInstance,
): EffectiveSettings {
  const spec = policy?.spec;
  const override = instance?.spec.healthCheck;
  const deregisterAfter = spec?.deregisterAfter ?? defaults.deregisterAfter;
  return {
    healthCheck: override ?? spec?.healthCheck ?? defaults.healthCheck,
    checkSource: override ? "Instance" : spec?.healthCheck ? "Policy" : "Default",
    loadBalancing: spec?.loadBalancing ?? defaults.loadBalancing,
    publish: spec?.publish ?? defaults.publish,
    deregisterAfterMs: deregisterAfter ? parseDuration(deregisterAfter) : undefined,
    policy,
  };
}

/** Header values from Secrets, resolved by the caller: `(secretName, key) => value`. */
export type SecretLookup = (name: string, key: string) => string | undefined;

export type TargetResult =
  | { ok: true; target: Target; hostOverride?: string }
  | { ok: false; reason: string; message: string };

/**
 * The probe engine's target for an instance. All network probes of one
 * instance must aim at one host: the instance address, or the same `host`
 * override (the engine keeps one verdict per resolved address of that host).
 */
export function instanceTarget(
  instance: ServiceInstance,
  healthCheck: HealthCheck,
  secrets: SecretLookup,
): TargetResult {
  const { namespace, name } = instance.metadata;
  const ports = Object.fromEntries(instance.spec.ports.map((p) => [p.name, p.port]));
  const hosts = new Set(healthCheck.probes.map(probeHost).filter((h) => h !== undefined));
  if (hosts.size > 1) {
    return {
      ok: false,
      reason: "InvalidHealthCheck",
      message: `probes name different hosts (${[...hosts].join(", ")}); use one host for all probes of an instance`,
    };
  }
  const probes: ProbeSpec[] = [];
  for (const probe of healthCheck.probes) {
    const mapped = toProbeSpec(probe, instance, secrets);
    if ("reason" in mapped) return { ok: false, ...mapped };
    probes.push(mapped);
  }
  const intervalMs = parseDuration(healthCheck.interval);
  const check: CheckSpec = {
    probes,
    combine: healthCheck.combine,
    intervalMs,
    timeoutMs: parseDuration(healthCheck.timeout),
    initialDelayMs: parseDuration(healthCheck.initialDelay),
    failureThreshold: healthCheck.failureThreshold,
    successThreshold: healthCheck.successThreshold,
    jitterMs: Math.round((intervalMs * healthCheck.jitter) / 100),
    flapDamping: healthCheck.flapDamping && {
      maxTransitions: healthCheck.flapDamping.maxTransitions,
      windowMs: parseDuration(healthCheck.flapDamping.window),
    },
  };
  const [hostOverride] = hosts;
  return {
    ok: true,
    hostOverride,
    target: { id: `${namespace}/${name}`, host: hostOverride ?? instance.spec.address, ports, check },
  };
}

function probeHost(probe: Probe): string | undefined {
  switch (probe.type) {
    case "http":
      return probe.http.host;
    case "tcp":
      return probe.tcp.host;
    case "grpc":
      return probe.grpc.host;
    default:
      return undefined;
  }
}

function toProbeSpec(
  probe: Probe,
  instance: ServiceInstance,
  secrets: SecretLookup,
): ProbeSpec | { reason: string; message: string } {
  const port = (ref: string | number | undefined) => resolveProbePort(ref, instance.spec.ports);
  const missingPort = (ref: string | number | undefined) => ({
    reason: "InvalidHealthCheck",
    message: `probe port ${String(ref)} is not among the instance's ports`,
  });
  switch (probe.type) {
    case "http": {
      const h = probe.http;
      const p = port(h.port);
      if (p === undefined) return missingPort(h.port);
      const headers: Record<string, string> = {};
      for (const header of h.headers ?? []) {
        const ref = header.valueFrom?.secretKeyRef;
        const value = ref ? secrets(ref.name, ref.key) : header.value;
        if (value === undefined) {
          return {
            reason: "SecretNotFound",
            message: `header ${header.name}: key ${ref?.key} of Secret ${ref?.name} not found`,
          };
        }
        headers[header.name] = value;
      }
      return {
        type: "http",
        port: p,
        path: h.path,
        scheme: h.scheme,
        method: h.method,
        headers,
        expectedStatuses: h.expectedStatuses.map((r) => ({ from: r.min, to: r.max })),
        bodyMatch: h.bodyMatch?.substring,
        bodyRegex: h.bodyMatch?.regex,
        maxBodyBytes: h.bodyMatch?.maxBytes,
        followRedirects: h.followRedirects,
        tls: h.tls && tlsSpec(h.tls),
      };
    }
    case "tcp": {
      const p = port(probe.tcp.port);
      return p === undefined ? missingPort(probe.tcp.port) : { type: "tcp", port: p };
    }
    case "grpc": {
      const g = probe.grpc;
      const p = port(g.port);
      if (p === undefined) return missingPort(g.port);
      return { type: "grpc", port: p, service: g.service, tls: g.tls ? tlsSpec(g.tls) : false };
    }
    case "heartbeat":
      return {
        type: "heartbeat",
        lease: {
          namespace: instance.metadata.namespace!,
          name: probe.heartbeat.leaseName ?? instance.metadata.name!,
        },
      };
    case "none":
      return { type: "none" };
  }
}

function tlsSpec(tls: { serverName?: string; caBundle?: string; insecureSkipVerify?: boolean }): TlsSpec {
  return { serverName: tls.serverName, caBundle: tls.caBundle, insecureSkipVerify: tls.insecureSkipVerify };
}
