/**
 * The ServiceInstance reconciler: keeps the probe engine's target for each
 * instance in line with its effective health check, writes the instance's
 * status when it changes, records Events when the recorded verdict flips, and
 * deletes instances that stayed unhealthy longer than `deregisterAfter`.
 *
 * Level-triggered: it reads the instance, its policy, the Service in the way
 * (if any) and the current verdict from caches, and converges; it is woken by
 * instance/policy/Service changes and by verdict changes.
 */
import {
  type DiscoveryPolicy,
  type HealthCheck,
  type ServiceInstance,
  validateServiceInstance,
} from "../api/index.ts";
import { type DnsCache, dnsCache, systemResolver } from "../health/dns.ts";
import type { Target } from "../health/index.ts";
import { isNotFound, type Reconciler, semanticEqual, writeStatus } from "../kube/index.ts";
import { isManagedByRoster } from "../publish/index.ts";
import {
  byService,
  type InstanceObject,
  type OperatorContext,
  type PolicyObject,
  rosterResources,
} from "./context.ts";
import {
  effectiveSettings,
  instanceTarget,
  rankPolicies,
  type SecretLookup,
  serviceKey,
} from "./effective.ts";
import { type Blocker, instanceStatus } from "./status.ts";
import type { InstanceVerdict } from "./verdicts.ts";

/** What the publisher needs to know about an instance besides its spec. */
export interface InstanceRuntime {
  /** Addresses to publish with their verdicts. */
  addresses: { address: string; verdict: InstanceVerdict["verdict"] }[];
  /** Set when the instance must not be published (invalid, refused, missing Secret). */
  blocker?: Blocker;
  /** The probe host, when it is not the instance address. */
  hostOverride?: string;
}

export interface InstanceReconciler {
  reconcile: Reconciler;
  /** The runtime view of an instance, as of its last reconcile. */
  runtime(key: string): InstanceRuntime | undefined;
  /** When this process started probing (its first reconcile since start or reset). */
  probingSince(): number | undefined;
  /** Drops every target (on stop, or when losing leadership). */
  reset(): void;
}

/** How often an instance whose probe names a missing Secret looks for it again. */
export const SECRET_RETRY_MS = 10_000;

export type DeregisterDecision =
  | { action: "keep" }
  | { action: "wait"; afterMs: number }
  | { action: "delete" };

export interface DeregisterInput {
  /** The policy's deregisterAfter; undefined: off. */
  deregisterAfterMs: number | undefined;
  /** status.healthy as just computed. */
  healthy: boolean | undefined;
  /** status.lastTransitionTime: when `healthy` last changed. */
  lastTransitionTime: string | undefined;
  /** This process's verdict for the instance (undefined or Unknown: not probed yet). */
  verdict: InstanceVerdict["verdict"] | undefined;
  /** The instance cannot be probed (invalid, missing Secret): a configuration problem, not a failure. */
  blocked: boolean;
  now: number;
}

/**
 * deregisterAfter (Consul's deregister_critical_service_after): delete an
 * instance that has stayed unhealthy that long. The time counts from the
 * recorded status.lastTransitionTime, which survives operator restarts, but
 * the deletion needs a fresh Unhealthy verdict from this process: a verdict
 * recorded before a restart (or a long outage of the operator) is no evidence
 * that the instance is still failing. `wait` says when to look again.
 */
export function deregisterDecision(input: DeregisterInput): DeregisterDecision {
  const { deregisterAfterMs, now } = input;
  if (deregisterAfterMs === undefined || input.blocked || input.healthy !== false) return { action: "keep" };
  // No fresh verdict yet: the next verdict transition wakes the reconciler.
  if (input.verdict !== "Unhealthy") return { action: "keep" };
  const since = Date.parse(input.lastTransitionTime ?? "");
  const left = (Number.isNaN(since) ? now : since) + deregisterAfterMs - now;
  return left <= 0 ? { action: "delete" } : { action: "wait", afterMs: left };
}

export function instanceReconciler(ctx: OperatorContext): InstanceReconciler {
  const targets = new Map<string, Target>();
  let since: number | undefined;
  const runtimes = new Map<string, InstanceRuntime>();
  /** The object our last status write returned, while the cache still shows the version it replaced. */
  const written = new Map<string, { over: string | undefined; object: InstanceObject }>();
  // Resolves instance addresses when probes go to another host (host override).
  const dns: DnsCache = dnsCache({
    resolver: systemResolver,
    clock: ctx.clock,
    refreshMs: 30_000,
    negativeTtlMs: 5_000,
    timeoutMs: 5_000,
  });

  function drop(key: string): void {
    if (targets.delete(key)) ctx.engine.remove(key);
    runtimes.delete(key);
    written.delete(key);
  }

  /** Header values from the Secrets a health check names, read from the instance's namespace only. */
  async function readSecrets(namespace: string, hc: HealthCheck, enabled: boolean): Promise<SecretLookup> {
    const values = new Map<string, string>();
    const names = new Set(
      hc.probes.flatMap((p) =>
        p.type === "http" ? (p.http.headers ?? []).flatMap((h) => h.valueFrom?.secretKeyRef.name ?? []) : [],
      ),
    );
    for (const name of enabled ? names : []) {
      try {
        const secret = await ctx.client.request<{ data?: Record<string, string> }>({
          method: "GET",
          path: `/api/v1/namespaces/${namespace}/secrets/${name}`,
        });
        for (const [k, v] of Object.entries(secret.data ?? {})) {
          values.set(`${name}/${k}`, Buffer.from(v, "base64").toString("utf8"));
        }
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return (name, key) => values.get(`${name}/${key}`);
  }

  function policyFor(instance: ServiceInstance): DiscoveryPolicy | undefined {
    const key = serviceKey(instance.metadata.namespace!, instance.spec.service);
    return rankPolicies(ctx.policies.byIndex(byService, key) as PolicyObject[])[0];
  }

  async function publishedAddresses(
    instance: ServiceInstance,
    verdict: InstanceVerdict | undefined,
    hostOverride: string | undefined,
  ): Promise<InstanceRuntime["addresses"]> {
    if (!hostOverride) return verdict?.addresses ?? [];
    const overall = verdict?.verdict ?? "Unknown";
    const resolution = await dns.resolve(instance.spec.address);
    return resolution.ok ? resolution.addresses.map((address) => ({ address, verdict: overall })) : [];
  }

  const reconcile: Reconciler = async (key, rc) => {
    const cached = ctx.instances.get(key) as InstanceObject | undefined;
    if (!cached) {
      drop(key);
      return;
    }
    // Until the cache shows our last status write, start from what that
    // write returned: a reconcile in between (another instance of the service
    // changed the policy's status, say) would otherwise see the old status,
    // write the same status again and record the same Event twice.
    const mine = written.get(key);
    if (mine && mine.over !== cached.metadata.resourceVersion) written.delete(key);
    const obj = mine && mine.over === cached.metadata.resourceVersion ? mine.object : cached;
    const settings = ctx.settings();
    const now = ctx.clock.now();
    since ??= now;
    const parsed = validateServiceInstance(obj);
    let instance: ServiceInstance;
    let blocker: Blocker | undefined;
    let hostOverride: string | undefined;
    let deregisterAfterMs: number | undefined;
    if (!parsed.ok) {
      // Admission should have caught this; whatever slipped past lands here.
      instance = obj;
      blocker = {
        reason: "InvalidSpec",
        message: parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; "),
      };
    } else {
      instance = { ...parsed.value, metadata: obj.metadata, status: obj.status };
      const effective = effectiveSettings(policyFor(instance), settings.defaults, instance);
      deregisterAfterMs = effective.deregisterAfterMs;
      const secrets = await readSecrets(
        obj.metadata.namespace!,
        effective.healthCheck,
        settings.probeSecrets,
      );
      const t = instanceTarget(instance, effective.healthCheck, secrets);
      if (!t.ok) {
        blocker = { reason: t.reason, message: t.message };
      } else {
        hostOverride = t.hostOverride;
        if (!semanticEqual(targets.get(key), t.target)) {
          targets.set(key, t.target);
          ctx.engine.set(t.target);
        }
      }
    }
    if (blocker) {
      if (targets.delete(key)) ctx.engine.remove(key);
    }

    const verdict = blocker ? undefined : ctx.verdicts.get(key);
    const addresses = blocker ? [] : await publishedAddresses(instance, verdict, hostOverride);
    runtimes.set(key, { addresses, blocker, hostOverride });

    const existing = ctx.services.get(serviceKey(instance.metadata.namespace!, instance.spec.service));
    const conflict: Blocker | undefined =
      existing && !isManagedByRoster(existing.metadata)
        ? {
            reason: "Conflict",
            message: `Service ${instance.spec.service} exists and is not managed by Roster; Roster leaves it alone`,
          }
        : undefined;

    const status = instanceStatus({
      instance,
      verdict,
      addresses: addresses.map((a) => a.address),
      blocker,
      conflict,
      now,
    });
    const previous = obj.status?.healthy;
    const write = await writeStatus(ctx.applier, rosterResources.serviceInstances, obj, status, {
      signal: rc.signal,
    });
    if (write.written) written.set(key, { over: cached.metadata.resourceVersion, object: write.object });
    if (
      write.written &&
      status.healthy !== undefined &&
      previous !== undefined &&
      previous !== status.healthy
    ) {
      const reason = status.healthy ? "BecameHealthy" : "BecameUnhealthy";
      const detail = verdict ? `${verdict.reason}: ${verdict.message}` : (blocker?.message ?? "");
      ctx.events.event(obj, status.healthy ? "Normal" : "Warning", reason, detail);
    }

    // Secrets are read by name on demand (no watch: RBAC grants `get` only),
    // so nothing wakes this instance when the missing Secret is created.
    if (blocker?.reason === "SecretNotFound") return { requeueAfterMs: SECRET_RETRY_MS };

    const deregister = deregisterDecision({
      deregisterAfterMs,
      healthy: status.healthy,
      lastTransitionTime: status.lastTransitionTime,
      verdict: verdict?.verdict,
      blocked: blocker !== undefined,
      now,
    });
    if (deregister.action === "wait") return { requeueAfterMs: deregister.afterMs };
    if (deregister.action === "delete") {
      ctx.events.event(
        obj,
        "Warning",
        "Deregistered",
        `unhealthy for longer than deregisterAfter (${Math.round(deregisterAfterMs! / 1000)}s): deleting the instance`,
      );
      await ctx.applier.delete(rosterResources.serviceInstances, obj.metadata.namespace, obj.metadata.name!, {
        uid: obj.metadata.uid,
        signal: rc.signal,
      });
      drop(key);
      return;
    }
    return;
  };

  return {
    reconcile,
    runtime: (key) => runtimes.get(key),
    probingSince: () => since,
    reset() {
      since = undefined;
      for (const key of targets.keys()) ctx.engine.remove(key);
      targets.clear();
      runtimes.clear();
      written.clear();
    },
  };
}
