/**
 * The probe-target reconciler: keeps the probe engine's target for each
 * instance this replica owns in line with its effective health check, and
 * records in the runtime store (runtime.ts) what the status writer and the
 * publisher need besides the verdict (why an instance cannot be probed, the
 * probe host override, the resolved addresses). It writes nothing to the API server, so a start over
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
  type HealthCheck,
  probeSecretRefs,
  probeTls,
  type ServiceInstance,
  validateServiceInstance,
} from "../api/index.ts";
import { type DnsCache, dnsCache, systemResolver } from "../health/dns.ts";
import type { Target } from "../health/index.ts";
import { forObjects, isForbidden, isNotFound, type Reconciler } from "../kube/index.ts";
import { deepEqual } from "../util/equal.ts";
import { byService, type OperatorContext } from "./context.ts";
import {
  effectiveHealthCheckStatus,
  effectiveSettings,
  governingPolicy,
  instanceTarget,
  type SecretLookup,
  serviceKey,
} from "./effective.ts";
import type { InstanceRuntime, RuntimeStore } from "./runtime.ts";

export interface ProbeTargets {
  reconcile: Reconciler;
  /** Drops every target and runtime (on stop, or when losing leadership). */
  reset(): void;
}

/** How often an instance whose probe names a missing or forbidden Secret looks for it again. */
export const SECRET_RETRY_MS = 10_000;
/** How often Secret-backed header values are read again (Secrets are read by name, not watched). */
export const SECRET_REFRESH_MS = 60_000;
/** How often a host-override instance's DNS name is resolved again. */
const DNS_REFRESH_MS = 30_000;

/** Writes each owned instance's runtime to `runtimes` (whose subscribers hear of every change). */
export function probeTargets(ctx: OperatorContext, runtimes: RuntimeStore): ProbeTargets {
  const targets = new Map<string, Target>();
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
    runtimes.delete(key);
  }

  /** Header values and passwords from the Secrets a health check names, read from the instance's namespace only. */
  async function readSecrets(
    namespace: string,
    hc: HealthCheck,
    signal: AbortSignal,
  ): Promise<{ lookup: SecretLookup; names: string[]; configMaps: boolean; forbidden: string[] }> {
    const values = new Map<string, string>();
    const names = [...new Set(hc.probes.flatMap((p) => probeSecretRefs(p).map((r) => r.name)))];
    // CA bundles in ConfigMaps are not secret: read whether or not probe Secrets are enabled.
    const configMaps = [
      ...new Set(hc.probes.flatMap((p) => probeTls(p)?.caBundleFrom?.configMapKeyRef?.name ?? [])),
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
    return governingPolicy(ctx.policies.byIndex(byService, key)).policy;
  }

  const reconcile = forObjects(ctx.instances, async (obj, rc) => {
    const { key } = rc;
    if (!obj || !ctx.shards.owns(key)) {
      drop(key);
      return;
    }
    runtimes.probing(ctx.clock.now());
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
        if (!deepEqual(targets.get(key), t.target)) {
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
    runtimes.set(key, next);
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  });

  return {
    reconcile,
    reset() {
      for (const key of targets.keys()) ctx.engine.remove(key);
      targets.clear();
      runtimes.clear();
    },
  };
}
