/**
 * The probe-target reconciler: keeps the probe engine's target for each
 * instance this replica owns in line with its effective health check, and
 * remembers what the status writer and the publisher need besides the
 * verdict (why an instance cannot be probed, the probe host override, the
 * resolved addresses). It writes nothing to the API server, so a start over
 * thousands of instances registers every target within a second or two
 * instead of waiting behind thousands of status writes.
 *
 * Level-triggered: it reads the instance, its policy and the shard
 * assignment from caches and converges; it is woken by instance changes,
 * policy spec changes, membership changes and its own requeues (missing
 * Secrets, Secret rotation, DNS refresh for host-override instances).
 */
import {
  addressKind,
  type EffectiveHealthCheck,
  type HealthCheck,
  type ServiceInstance,
  validateServiceInstance,
} from "../api/index.ts";
import { type DnsCache, dnsCache, systemResolver } from "../health/dns.ts";
import type { Target } from "../health/index.ts";
import { isForbidden, isNotFound, type Reconciler, semanticEqual } from "../kube/index.ts";
import { byService, type InstanceObject, type OperatorContext, type PolicyObject } from "./context.ts";
import {
  effectiveHealthCheckStatus,
  effectiveSettings,
  governingPolicy,
  instanceTarget,
  type SecretLookup,
  serviceKey,
} from "./effective.ts";
import type { Blocker } from "./status.ts";
import type { AddressVerdict, InstanceVerdict } from "./verdicts.ts";

/** What the status writer and the publisher need to know about an owned instance besides its verdict. */
export interface InstanceRuntime {
  /** metadata.generation this runtime was computed for. */
  generation: number | undefined;
  /** Set when the instance must not be probed or published (invalid, missing Secret...). */
  blocker?: Blocker;
  /** The probe host, when it is not the instance address. */
  hostOverride?: string;
  /** With a host override: what the instance address resolved to (published at the overall verdict). */
  resolved?: string[];
  deregisterAfterMs?: number;
  /** The health check it is probed with, for status.effectiveHealthCheck. */
  healthCheck?: EffectiveHealthCheck;
}

export interface ProbeTargets {
  reconcile: Reconciler;
  /** The runtime view of an owned instance, as of its last reconcile. */
  runtime(key: string): InstanceRuntime | undefined;
  /** The addresses to publish for an owned instance, each with its verdict. */
  addresses(key: string, verdict: InstanceVerdict | undefined): AddressVerdict[];
  /** When this process started probing (its first reconcile since start or reset). */
  probingSince(): number | undefined;
  /** Drops every target (on stop, or when losing leadership). */
  reset(): void;
}

/** How often an instance whose probe names a missing or forbidden Secret looks for it again. */
export const SECRET_RETRY_MS = 10_000;
/** How often Secret-backed header values are read again (Secrets are read by name, not watched). */
export const SECRET_REFRESH_MS = 60_000;
/** How often a host-override instance's DNS name is resolved again. */
const DNS_REFRESH_MS = 30_000;

/**
 * `onChange(key)` runs whenever an instance's runtime changes or is dropped,
 * so the status writer and the publisher look at it again.
 */
export function probeTargets(ctx: OperatorContext, onChange: (key: string) => void): ProbeTargets {
  const targets = new Map<string, Target>();
  const runtimes = new Map<string, InstanceRuntime>();
  let since: number | undefined;
  // Resolves instance addresses when probes go to another host (host override).
  const dns: DnsCache = dnsCache({
    resolver: ctx.resolver ?? systemResolver,
    clock: ctx.clock,
    refreshMs: DNS_REFRESH_MS,
    negativeTtlMs: 5_000,
    timeoutMs: 5_000,
  });

  function drop(key: string): void {
    if (targets.delete(key)) ctx.engine.remove(key);
    if (runtimes.delete(key)) onChange(key);
  }

  /** Header values from the Secrets a health check names, read from the instance's namespace only. */
  async function readSecrets(
    namespace: string,
    hc: HealthCheck,
    signal: AbortSignal,
  ): Promise<{ lookup: SecretLookup; names: string[]; configMaps: boolean; forbidden: string[] }> {
    const values = new Map<string, string>();
    const tlsOf = (p: HealthCheck["probes"][number]) =>
      p.type === "http" ? p.http.tls : p.type === "grpc" ? p.grpc.tls : undefined;
    const names = [
      ...new Set(
        hc.probes.flatMap((p) => {
          const headers =
            p.type === "http"
              ? (p.http.headers ?? []).flatMap((h) => h.valueFrom?.secretKeyRef.name ?? [])
              : [];
          const tls = tlsOf(p);
          const refs = [tls?.caBundleFrom?.secretKeyRef?.name, tls?.clientCertificate?.secretName];
          return [...headers, ...refs.filter((n): n is string => n !== undefined)];
        }),
      ),
    ];
    // CA bundles in ConfigMaps are not secret: read whether or not probe Secrets are enabled.
    const configMaps = [
      ...new Set(hc.probes.flatMap((p) => tlsOf(p)?.caBundleFrom?.configMapKeyRef?.name ?? [])),
    ];
    for (const name of configMaps) {
      try {
        const cm = await ctx.client.request<{ data?: Record<string, string> }>({
          method: "GET",
          path: `/api/v1/namespaces/${namespace}/configmaps/${name}`,
          signal,
        });
        for (const [k, v] of Object.entries(cm.data ?? {})) values.set(`ConfigMap/${name}/${k}`, v);
      } catch (err) {
        if (!isNotFound(err) && !isForbidden(err)) throw err;
      }
    }
    const forbidden: string[] = [];
    for (const name of ctx.settings().probeSecrets ? names : []) {
      try {
        const secret = await ctx.client.request<{ data?: Record<string, string> }>({
          method: "GET",
          path: `/api/v1/namespaces/${namespace}/secrets/${name}`,
          signal,
        });
        for (const [k, v] of Object.entries(secret.data ?? {})) {
          values.set(`${name}/${k}`, Buffer.from(v, "base64").toString("utf8"));
        }
      } catch (err) {
        if (isForbidden(err)) forbidden.push(name);
        else if (!isNotFound(err)) throw err;
      }
    }
    return {
      lookup: (name, key, kind) =>
        values.get(kind === "ConfigMap" ? `ConfigMap/${name}/${key}` : `${name}/${key}`),
      names: [...names, ...configMaps],
      configMaps: configMaps.length > 0,
      forbidden,
    };
  }

  /** `probed`: the engine applies the destination policy itself (and reports DestinationDenied). */
  function refusedAddress(
    namespace: string,
    addresses: readonly string[],
    probed: boolean,
  ): string | undefined {
    const policy = ctx.publication();
    for (const a of addresses) {
      const d = policy.check(namespace, a);
      if (!d.allowed && !(probed && d.rule === "destination")) return `not published: ${d.message}`;
    }
    return undefined;
  }

  function policyFor(instance: ServiceInstance) {
    const key = serviceKey(instance.metadata.namespace!, instance.spec.service);
    // Validated: an invalid policy's probes and Secret names are never used.
    return governingPolicy(ctx.policies.byIndex(byService, key) as PolicyObject[]).policy;
  }

  const reconcile: Reconciler = async (key, rc) => {
    const obj = ctx.instances.get(key) as InstanceObject | undefined;
    if (!obj || !ctx.shards.owns(key)) {
      drop(key);
      return;
    }
    since ??= ctx.clock.now();
    const next: InstanceRuntime = { generation: obj.metadata.generation };
    let requeueAfterMs: number | undefined;
    const parsed = validateServiceInstance(obj);
    if (!parsed.ok) {
      // Admission should have caught this; whatever slipped past lands here.
      next.blocker = {
        reason: "InvalidSpec",
        message: parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; "),
      };
    } else {
      const instance: ServiceInstance = { ...parsed.value, metadata: obj.metadata, status: obj.status };
      const effective = effectiveSettings(policyFor(instance), ctx.settings().defaults, instance);
      next.deregisterAfterMs = effective.deregisterAfterMs;
      const secrets = await readSecrets(obj.metadata.namespace!, effective.healthCheck, rc.signal);
      const t = instanceTarget(instance, effective.healthCheck, secrets.lookup);
      next.healthCheck = effectiveHealthCheckStatus(effective);
      if (effective.healthCheckError) {
        next.blocker = {
          reason: "InvalidHealthCheck",
          message: `spec.healthCheck merged over the ${effective.policy ? `policy ${effective.policy.metadata.name}` : "operator default"}'s: ${effective.healthCheckError}`,
        };
      } else if (secrets.forbidden.length > 0) {
        next.blocker = {
          reason: "SecretForbidden",
          message: `Roster may not read Secret ${secrets.forbidden.join(", ")} in namespace ${obj.metadata.namespace} (RBAC: enable probe Secrets for this namespace in the chart)`,
        };
      } else if (!t.ok) {
        next.blocker = { reason: t.reason, message: t.message };
      } else {
        if (!semanticEqual(targets.get(key), t.target)) {
          targets.set(key, t.target);
          ctx.engine.set(t.target);
        }
        if (t.hostOverride) {
          next.hostOverride = t.hostOverride;
          const resolution = await dns.resolve(instance.spec.address);
          next.resolved = resolution.ok ? resolution.addresses : [];
          if (addressKind(instance.spec.address) === "DNS") requeueAfterMs = DNS_REFRESH_MS;
        }
      }
      // What is published must pass the publication policy: with a host
      // override the published addresses are never probed, so the
      // destination policy is applied here too; an IP literal is checked
      // before it is ever probed.
      const probed = next.hostOverride === undefined;
      const published = !probed
        ? (next.resolved ?? [])
        : addressKind(instance.spec.address) === "DNS"
          ? []
          : [instance.spec.address];
      const refused = !next.blocker && refusedAddress(obj.metadata.namespace!, published, probed);
      if (refused) next.blocker = { reason: "AddressNotPermitted", message: refused };
      // A rotated Secret value reaches the probe within SECRET_REFRESH_MS.
      if (secrets.names.length > 0 && (ctx.settings().probeSecrets || secrets.configMaps)) {
        requeueAfterMs = SECRET_REFRESH_MS;
      }
    }
    if (next.blocker && targets.delete(key)) ctx.engine.remove(key);
    if (["SecretNotFound", "SecretForbidden", "ConfigMapNotFound"].includes(next.blocker?.reason ?? "")) {
      requeueAfterMs = SECRET_RETRY_MS;
    }
    if (!semanticEqual(runtimes.get(key), next)) {
      runtimes.set(key, next);
      onChange(key);
    }
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  };

  return {
    reconcile,
    runtime: (key) => runtimes.get(key),
    addresses(key, verdict) {
      const rt = runtimes.get(key);
      if (!rt || rt.blocker) return [];
      if (!rt.hostOverride) {
        // A name the engine resolved: drop what may not be published (pod/Service
        // networks). A denied destination stays: the engine never probes it and
        // reports it DestinationDenied, so it is listed but never published ready.
        const ns = key.slice(0, key.indexOf("/"));
        const policy = ctx.publication();
        return (verdict?.addresses ?? []).filter((a) => {
          const d = policy.check(ns, a.address);
          return d.allowed || d.rule === "destination";
        });
      }
      const overall = verdict?.verdict ?? "Unknown";
      return (rt.resolved ?? []).map((address) => ({ address, verdict: overall }));
    },
    probingSince: () => since,
    reset() {
      since = undefined;
      for (const key of targets.keys()) ctx.engine.remove(key);
      targets.clear();
      runtimes.clear();
    },
  };
}
