/**
 * Pure mapping from API objects to what the operator acts on: which policy
 * governs a service, the effective settings of an instance (its health check
 * override merged over the service's DiscoveryPolicy's, else over the
 * operator default's), and the
 * probe engine's target for an instance.
 */
import {
  type DiscoveryPolicy,
  type EffectiveHealthCheck,
  HealthCheck,
  type HealthCheckOverride,
  type LoadBalancing,
  type Probe,
  type ProbeOverride,
  type Publish,
  parseDuration,
  resolveProbePort,
  type ServiceInstance,
  type TlsOptions,
  validateDiscoveryPolicy,
} from "../api/index.ts";
import type { FieldError } from "../api/validate.ts";
import type { DefaultPolicy } from "../config/schema.ts";
import type { CheckSpec, ProbeSpec, Target, TlsSpec } from "../health/index.ts";
import { subtreeInterner } from "../kube/transform.ts";

/** The operator-wide default policy (from its config file). */
export type { DefaultPolicy };

export interface EffectiveSettings {
  /** The health check instances are probed with (the base check when the override does not merge). */
  healthCheck: HealthCheck;
  /** The instance's override does not merge into a valid check: why (the instance cannot be probed). */
  healthCheckError?: string;
  loadBalancing: LoadBalancing;
  /** loadBalancing.slowStart as the publisher applies it; undefined: off. */
  slowStart?: EffectiveSlowStart;
  publish: EffectivePublish;
  /** Milliseconds; undefined: never deregister. */
  deregisterAfterMs?: number;
  /**
   * Where the health check came from: the policy's, the operator default, or
   * the instance's override merged over one of them ("Instance" when the
   * override is complete and replaces it).
   */
  checkSource: "Instance" | "InstanceOverPolicy" | "InstanceOverDefault" | "Policy" | "Default";
  policy?: DiscoveryPolicy;
}

/** Slow start as the publisher applies it (src/publish/desired.ts). */
export interface EffectiveSlowStart {
  windowMs: number;
  aggression: number;
  minWeightPercent: number;
  /**
   * Instances that turned healthy before this time (ms) do not ramp: the
   * governing policy's creation. An instance already healthy when its policy
   * appeared is not new to its clients. Undefined for the operator default.
   */
  notBeforeMs?: number;
}

/** The one translation of loadBalancing.slowStart (API durations to milliseconds). */
export function effectiveSlowStart(
  lb: LoadBalancing,
  policy: DiscoveryPolicy | undefined,
): EffectiveSlowStart | undefined {
  const ss = lb.slowStart;
  // The API rejects slowStart with ConsistentHash; an older CRD may not have.
  if (!ss || lb.strategy === "ConsistentHash") return undefined;
  const created = policy?.metadata.creationTimestamp ? Date.parse(policy.metadata.creationTimestamp) : NaN;
  return {
    windowMs: parseDuration(ss.window),
    aggression: ss.aggression,
    minWeightPercent: ss.minWeightPercent,
    ...(Number.isFinite(created) ? { notBeforeMs: created } : {}),
  };
}

/** The publish settings the engine acts on: the deprecated zoneHints is translated away. */
export type EffectivePublish = Omit<Publish, "zoneHints">;

/**
 * The one translation of publish.zoneHints (deprecated, still read from
 * older objects): `true` means trafficDistribution PreferClose, what it set
 * on the Service before trafficDistribution existed; an explicit
 * trafficDistribution wins.
 */
export function effectivePublish(publish: Publish): EffectivePublish {
  // Unchanged (the same object) when there is nothing to translate.
  if (publish.zoneHints === undefined) return publish;
  const { zoneHints, ...rest } = publish;
  if (rest.trafficDistribution !== undefined || zoneHints !== true) return rest;
  return { ...rest, trafficDistribution: "PreferClose" };
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
  const base = spec?.healthCheck ?? defaults.healthCheck;
  const loadBalancing = spec?.loadBalancing ?? defaults.loadBalancing;
  const slowStart = effectiveSlowStart(loadBalancing, spec?.loadBalancing ? policy : undefined);
  const baseSource = spec?.healthCheck ? "Policy" : "Default";
  // The operator default's probes (one tcp probe, unless the config says
  // otherwise) stand in for "no probes chosen": an instance that names its
  // probes has chosen them, and keeping the stand-in next to them would probe
  // what nobody asked for.
  const merged = override
    ? mergeHealthCheck(base, override, { replaceProbes: baseSource === "Default" })
    : undefined;
  return {
    healthCheck: merged?.ok ? merged.healthCheck : base,
    healthCheckError: merged && !merged.ok ? merged.message : undefined,
    checkSource: !merged
      ? baseSource
      : merged.ok && merged.replaced
        ? "Instance"
        : `InstanceOver${baseSource}`,
    loadBalancing,
    ...(slowStart ? { slowStart } : {}),
    publish: effectivePublish(spec?.publish ?? defaults.publish),
    deregisterAfterMs: deregisterAfter ? parseDuration(deregisterAfter) : undefined,
    policy,
  };
}

/** The scalar fields of a health check. */
const SCALARS = [
  "combine",
  "interval",
  "timeout",
  "initialDelay",
  "failureThreshold",
  "successThreshold",
  "jitter",
] as const;

export type MergedHealthCheck =
  | { ok: true; healthCheck: HealthCheck; replaced: boolean }
  | { ok: false; message: string };

/**
 * An instance's health check: its override merged over the base (the
 * policy's or the operator default's), like a strategic merge patch.
 *
 * - A scalar field the override sets wins; an absent one is the base's.
 * - `flapDamping` merges field by field (the FlapDamping defaults fill what
 *   neither sets).
 * - `probes` merge by type: an override probe merges into the base probe of
 *   the same type (the one with its name, when it names a base probe), field
 *   by field within its member (`http`, `tcp`, ...); lists and objects in a
 *   member (headers, expectedStatuses, degradedStatuses, tls, bodyMatch) replace the base's
 *   whole. Base probes no override probe matches stay; override probes that
 *   match none are added.
 * - With `replaceProbes` (the base is the operator default's check), the
 *   override's probes, when it sets them, replace the base's.
 * - An override that sets `probes` and every scalar field replaces the base
 *   as a whole: that is what every override stored before overrides merged
 *   looks like (the API server stored the defaults), so those instances keep
 *   the check they had.
 *
 * The result is validated as a whole check (timeout < interval, tls only
 * with HTTPS, ...): a merge can break a rule that neither side breaks.
 */
export function mergeHealthCheck(
  base: HealthCheck,
  override: HealthCheckOverride,
  options: { replaceProbes?: boolean } = {},
): MergedHealthCheck {
  const replaced = override.probes !== undefined && SCALARS.every((k) => override[k] !== undefined);
  const input = replaced
    ? override
    : {
        ...base,
        ...defined(override),
        probes: !override.probes
          ? base.probes
          : options.replaceProbes
            ? override.probes
            : mergeProbes(base.probes, override.probes),
        ...(override.flapDamping || base.flapDamping
          ? { flapDamping: { ...base.flapDamping, ...defined(override.flapDamping ?? {}) } }
          : {}),
      };
  const parsed = HealthCheck.safeParse(input);
  if (parsed.success) return { ok: true, healthCheck: parsed.data, replaced };
  return {
    ok: false,
    message: parsed.error.issues
      .map((i) => `${["healthCheck", ...i.path].join(".")}: ${i.message}`)
      .join("; "),
  };
}

function mergeProbes(base: readonly Probe[], overrides: readonly ProbeOverride[]): unknown[] {
  const out: Record<string, unknown>[] = base.map((p) => ({ ...p }));
  const merged = new Set<number>();
  for (const o of overrides) {
    const byName = o.name === undefined ? -1 : out.findIndex((p) => p.type === o.type && p.name === o.name);
    const i =
      byName >= 0 || o.name !== undefined
        ? byName
        : out.findIndex((p, j) => p.type === o.type && !merged.has(j) && j < base.length);
    const member = o.type === "none" ? undefined : o[o.type];
    if (i < 0) {
      out.push({ ...o });
      continue;
    }
    merged.add(i);
    const target = out[i]!;
    if (member) target[o.type] = { ...(target[o.type] as object), ...defined(member) };
  }
  return out;
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The check an instance is probed with, as its status shows it (bounded: one line per probe). */
export function effectiveHealthCheckStatus(e: EffectiveSettings): EffectiveHealthCheck {
  const hc = e.healthCheck;
  const status: EffectiveHealthCheck = {
    source: e.checkSource,
    probes: hc.probes.map((p) => {
      const line = `${p.name ? `${p.name}: ` : ""}${describeProbe(p)}`;
      return line.length <= 256 ? line : `${line.slice(0, 255)}…`;
    }),
    combine: hc.combine,
    interval: hc.interval,
    timeout: hc.timeout,
    initialDelay: hc.initialDelay,
    failureThreshold: hc.failureThreshold,
    successThreshold: hc.successThreshold,
    jitter: hc.jitter,
  };
  if (e.policy && e.checkSource !== "Default" && e.checkSource !== "InstanceOverDefault")
    status.policy = e.policy.metadata.name;
  if (hc.flapDamping) status.flapDamping = { ...hc.flapDamping };
  return status;
}

function describeProbe(p: Probe): string {
  const at = (host: string | undefined, port: string | number | undefined) =>
    `${host ?? "<address>"}:${port ?? "<first port>"}`;
  switch (p.type) {
    case "http": {
      const h = p.http;
      const ranges = (rs: readonly { min: number; max: number }[]) =>
        rs.map((r) => (r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`)).join(",");
      const degraded = h.degradedStatuses ? `; degraded ${ranges(h.degradedStatuses)}` : "";
      return `http ${h.method} ${h.scheme.toLowerCase()}://${at(h.host, h.port)}${h.path} (${ranges(h.expectedStatuses)}${degraded})`;
    }
    case "tcp":
      return `tcp ${at(p.tcp.host, p.tcp.port)}${p.tcp.tls ? " tls" : ""}`;
    case "udp":
      return `udp ${at(p.udp.host, p.udp.port)}${p.udp.expectRegex ? ` expect /${p.udp.expectRegex}/` : ""}`;
    case "grpc":
      return `grpc ${at(p.grpc.host, p.grpc.port)}${p.grpc.service ? ` service ${p.grpc.service}` : ""}${p.grpc.tls ? " tls" : ""}`;
    case "postgres": {
      const g = p.postgres;
      return `postgres ${g.user}@${at(g.host, g.port)}/${g.database}${g.tls ? " tls" : ""}${g.expectRole ? ` role ${g.expectRole}` : ""}`;
    }
    case "redis":
      return `redis ${at(p.redis.host, p.redis.port)}${p.redis.tls ? " tls" : ""}${p.redis.expectRole ? ` role ${p.redis.expectRole}` : ""}`;
    case "heartbeat":
      return `heartbeat lease ${p.heartbeat.leaseName ?? "<instance name>"}`;
    case "none":
      return "none";
  }
}

/** Header values and CA bundles from Secrets (default) or ConfigMaps, resolved by the caller: `(name, key, kind) => value`. */
export type SecretLookup = (name: string, key: string, kind?: "Secret" | "ConfigMap") => string | undefined;

/**
 * Parts of targets that most instances have in common (port maps, expected
 * status ranges, headers) are shared, frozen, instead of built anew for each
 * of 50,000 targets: the engine and the probe-target controller keep every
 * target for as long as the instance is probed.
 */
const targetParts = subtreeInterner(1024, 256);
function shared<T extends object>(value: T): T {
  const json = JSON.stringify(value);
  return json.length <= targetParts.maxJson ? (targetParts.share(json, value) as T) : value;
}

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
  const ports = shared(Object.fromEntries(instance.spec.ports.map((p) => [p.name, p.port])));
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
    ...(healthCheck.recheckInterval ? { recheckIntervalMs: parseDuration(healthCheck.recheckInterval) } : {}),
    ...(healthCheck.degradedLatency ? { degradedLatencyMs: parseDuration(healthCheck.degradedLatency) } : {}),
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
    case "udp":
      return probe.udp.host;
    case "postgres":
      return probe.postgres.host;
    case "redis":
      return probe.redis.host;
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
      const tls = h.tls && tlsSpec(h.tls, secrets);
      if (tls && "reason" in tls) return tls;
      const headers: Record<string, string> = {};
      const secretHeaders: string[] = [];
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
        if (ref) secretHeaders.push(header.name);
      }
      // Fields left out rather than undefined: each costs a slot in every target.
      return {
        type: "http",
        port: p,
        path: h.path,
        scheme: h.scheme,
        method: h.method,
        // Secret values stay out of the shared table.
        headers: secretHeaders.length > 0 ? headers : shared(headers),
        ...(secretHeaders.length > 0 ? { secretHeaders } : {}),
        expectedStatuses: shared(h.expectedStatuses.map((r) => ({ from: r.min, to: r.max }))),
        ...(h.degradedStatuses
          ? { degradedStatuses: shared(h.degradedStatuses.map((r) => ({ from: r.min, to: r.max }))) }
          : {}),
        ...(h.degradeOnWarning ? { degradeOnWarning: true } : {}),
        ...(h.bodyMatch?.substring !== undefined ? { bodyMatch: h.bodyMatch.substring } : {}),
        ...(h.bodyMatch?.regex !== undefined ? { bodyRegex: h.bodyMatch.regex } : {}),
        ...(h.bodyMatch?.maxBytes !== undefined ? { maxBodyBytes: h.bodyMatch.maxBytes } : {}),
        followRedirects: h.followRedirects,
        ...(tls ? { tls } : {}),
      };
    }
    case "tcp": {
      const p = port(probe.tcp.port);
      if (p === undefined) return missingPort(probe.tcp.port);
      const tls = probe.tcp.tls && tlsSpec(probe.tcp.tls, secrets);
      if (tls && "reason" in tls) return tls;
      return { type: "tcp", port: p, ...(tls ? { tls } : {}) };
    }
    case "udp": {
      const u = probe.udp;
      const p = port(u.port);
      if (p === undefined) return missingPort(u.port);
      return {
        type: "udp",
        port: p,
        payload: udpPayload(u),
        ...(u.expectRegex !== undefined ? { expectRegex: u.expectRegex } : {}),
      };
    }
    case "grpc": {
      const g = probe.grpc;
      const p = port(g.port);
      if (p === undefined) return missingPort(g.port);
      const tls = g.tls ? tlsSpec(g.tls, secrets) : false;
      if (tls && "reason" in tls) return tls;
      return { type: "grpc", port: p, service: g.service, tls };
    }
    case "postgres":
    case "redis": {
      const o = probe.type === "postgres" ? probe.postgres : probe.redis;
      const p = port(o.port);
      if (p === undefined) return missingPort(o.port);
      const ref = o.passwordFrom?.secretKeyRef;
      const password = ref ? secrets(ref.name, ref.key) : undefined;
      if (ref && password === undefined) {
        return {
          reason: "SecretNotFound",
          message: `${probe.type} password: key ${ref.key} of Secret ${ref.name} not found`,
        };
      }
      const tls = o.tls && tlsSpec(o.tls, secrets);
      if (tls && "reason" in tls) return tls;
      const common = {
        port: p,
        ...(password !== undefined ? { password } : {}),
        ...(tls ? { tls } : {}),
        ...(o.expectRole ? { expectRole: o.expectRole } : {}),
      };
      return probe.type === "postgres"
        ? { type: "postgres", database: probe.postgres.database, user: probe.postgres.user, ...common }
        : { type: "redis", ...(probe.redis.username ? { username: probe.redis.username } : {}), ...common };
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

/** The datagram a udp probe sends: its text as UTF-8, its base64 decoded, or nothing. */
export function udpPayload(u: { payload?: string; payloadBase64?: string }): Uint8Array {
  if (u.payloadBase64 !== undefined) return new Uint8Array(Buffer.from(u.payloadBase64, "base64"));
  return new TextEncoder().encode(u.payload ?? "");
}

/** A probe's TLS settings with a referenced CA bundle resolved; a missing Secret/ConfigMap key is a reason. */
function tlsSpec(tls: TlsOptions, secrets: SecretLookup): TlsSpec | { reason: string; message: string } {
  let caBundle = tls.caBundle;
  const from = tls.caBundleFrom;
  if (from) {
    const ref = (from.secretKeyRef ?? from.configMapKeyRef)!;
    const kind = from.secretKeyRef ? "Secret" : "ConfigMap";
    caBundle = secrets(ref.name, ref.key, kind);
    if (caBundle === undefined) {
      return {
        reason: `${kind}NotFound`,
        message: `tls.caBundleFrom: key ${ref.key} of ${kind} ${ref.name} not found`,
      };
    }
    if (!caBundle.includes("-----BEGIN CERTIFICATE-----")) {
      return {
        reason: "InvalidHealthCheck",
        message: `tls.caBundleFrom: key ${ref.key} of ${kind} ${ref.name} holds no PEM certificate`,
      };
    }
  }
  let clientCert: TlsSpec["clientCert"];
  if (tls.clientCertificate) {
    const name = tls.clientCertificate.secretName;
    const cert = secrets(name, "tls.crt");
    const key = secrets(name, "tls.key");
    if (cert === undefined || key === undefined) {
      return {
        reason: "SecretNotFound",
        message: `tls.clientCertificate: key ${cert === undefined ? "tls.crt" : "tls.key"} of Secret ${name} not found`,
      };
    }
    clientCert = { cert, key };
  }
  return {
    serverName: tls.serverName,
    caBundle,
    ...(clientCert ? { clientCert } : {}),
    insecureSkipVerify: tls.insecureSkipVerify,
    ...(tls.expiryWarning ? { expiryWarningMs: parseDuration(tls.expiryWarning) } : {}),
  };
}
