/**
 * The ServiceInstance status writer: writes the status of each instance this
 * replica owns when it changes, records Events when the recorded verdict
 * flips, and deletes instances that stayed unhealthy longer than
 * `deregisterAfter`. Probe targets are kept by src/operator/targets.ts; this
 * reconciler reads their runtime view, the verdict and the Service in the
 * way (if any) from caches, and converges.
 *
 * Level-triggered: woken by instance and Service changes, verdict changes
 * and runtime changes of the probe-target reconciler.
 */
import { configMapName, type ServiceInstance, validateServiceInstance } from "../api/index.ts";
import { type Reconciler, writeStatus } from "../kube/index.ts";
import { isManagedByRoster, staleReasonOf } from "../publish/index.ts";
import { configMapClaimIn } from "./claims.ts";
import {
  byService,
  type InstanceObject,
  type OperatorContext,
  type PolicyObject,
  rosterResources,
} from "./context.ts";
import { effectiveSettings, governingPolicy, serviceKey } from "./effective.ts";
import { type ConfigMapStale, instanceEvents, instanceStatus } from "./status.ts";
import type { ProbeTargets } from "./targets.ts";
import type { InstanceVerdict } from "./verdicts.ts";

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

export function instanceReconciler(ctx: OperatorContext, targets: ProbeTargets): { reconcile: Reconciler } {
  /** The object our last status write returned, while the cache still shows the version it replaced. */
  const written = new Map<string, { over: string | undefined; object: InstanceObject }>();
  // Forget a write as soon as the cache moves past the version it replaced:
  // kept until the next reconcile, every status write response would stay in
  // memory next to the cache (50,000 of them after a start-up).
  ctx.instances.addHandler({
    onUpdate: (_, n) => {
      const key = `${n.metadata.namespace}/${n.metadata.name}`;
      if (written.get(key)?.over !== n.metadata.resourceVersion) written.delete(key);
    },
    onDelete: (o) => written.delete(`${o.metadata.namespace}/${o.metadata.name}`),
  });

  const reconcile: Reconciler = async (key, rc) => {
    const cached = ctx.instances.get(key) as InstanceObject | undefined;
    const rt = targets.runtime(key);
    // Not owned (another replica writes it), gone, or the probe-target
    // reconciler has not caught up with this generation yet (it wakes this
    // key when it has).
    if (!cached || !ctx.shards.owns(key) || !rt || rt.generation !== cached.metadata.generation) {
      if (!cached || !ctx.shards.owns(key)) written.delete(key);
      return;
    }
    // Until the cache shows our last status write, start from what that
    // write returned: a reconcile in between (another instance of the service
    // changed the policy's status, say) would otherwise see the old status,
    // write the same status again and record the same Event twice.
    const mine = written.get(key);
    if (mine && mine.over !== cached.metadata.resourceVersion) written.delete(key);
    const obj = mine && mine.over === cached.metadata.resourceVersion ? mine.object : cached;
    const now = ctx.clock.now();
    const parsed = validateServiceInstance(obj);
    const instance: ServiceInstance = parsed.ok
      ? { ...parsed.value, metadata: obj.metadata, status: obj.status }
      : obj;
    const blocker = rt.blocker;
    const verdict = blocker ? undefined : ctx.verdicts.get(key);
    const addresses = targets.addresses(key, verdict).map((a) => a.address);

    const svcKey = serviceKey(obj.metadata.namespace!, instance.spec.service);
    const taken = await ctx.unmanaged.isUnmanaged(svcKey, rc.signal);
    const { policy } = governingPolicy(ctx.policies.byIndex(byService, svcKey) as PolicyObject[]);
    const claim = configMapClaimIn(ctx.policies, policy);
    const configMapStale = staleConfigMap(obj.metadata.namespace!, instance.spec.service, policy);
    const conflict = taken
      ? {
          reason: "Conflict",
          message: `Service ${instance.spec.service} exists and is not managed by Roster; Roster leaves it alone`,
        }
      : claim?.lost
        ? { reason: "Conflict", message: claim.message }
        : undefined;

    const status = instanceStatus({
      instance,
      verdict,
      addresses,
      blocker,
      conflict,
      configMapStale,
      healthCheck: rt.healthCheck,
      now,
    });
    const previous = obj.status;
    const write = await writeStatus(ctx.applier, rosterResources.serviceInstances, obj, status, {
      signal: rc.signal,
    });
    // (Unless the watch already delivered it while the write returned.)
    const stale = ctx.instances.get(key)?.metadata.resourceVersion === cached.metadata.resourceVersion;
    if (write.written && stale)
      written.set(key, { over: cached.metadata.resourceVersion, object: write.object });
    if (write.written) {
      for (const e of instanceEvents(previous, status)) ctx.events.event(obj, e.type, e.reason, e.note);
    }

    const deregister = deregisterDecision({
      deregisterAfterMs: rt.deregisterAfterMs,
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
        `unhealthy for longer than deregisterAfter (${Math.round(rt.deregisterAfterMs! / 1000)}s): deleting the instance`,
      );
      await ctx.applier.delete(rosterResources.serviceInstances, obj.metadata.namespace, obj.metadata.name!, {
        uid: obj.metadata.uid,
        signal: rc.signal,
      });
      written.delete(key);
    }
    return;
  };

  /**
   * The service's published ConfigMap when the publisher marked it stale
   * (over budget): read from the ConfigMap itself, where the publisher's
   * decision is recorded, so instance conditions say what readers see.
   */
  function staleConfigMap(
    namespace: string,
    service: string,
    policy: PolicyObject | undefined,
  ): ConfigMapStale | undefined {
    const publish = effectiveSettings(policy, ctx.settings().defaults).publish;
    if (!publish.configMap.enabled) return undefined;
    const name = configMapName(service, publish);
    const cm = ctx.configMaps.get(`${namespace}/${name}`);
    const reason = cm && isManagedByRoster(cm.metadata) ? staleReasonOf(cm) : undefined;
    return reason ? { configMap: name, reason, endpointSlices: publish.endpointSlices } : undefined;
  }

  return { reconcile };
}
