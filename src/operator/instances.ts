/**
 * The ServiceInstance status writer: writes the status of each instance this
 * replica owns when it changes, records Events when the recorded verdict
 * flips, and deletes instances that stayed unhealthy longer than
 * `deregisterAfter`. It records the instance view (instance-view.ts: the
 * runtime the probe-target controller stored, the verdict, the addresses)
 * and the Service in the way (if any) from caches, and converges.
 *
 * Level-triggered: woken by instance and Service changes, verdict changes
 * and runtime changes of the probe-target reconciler.
 */
import { configMapName, type ServiceInstance, validateServiceInstance } from "../api/index.ts";
import { forObjects, type Reconciler, writeStatus, writeTracker } from "../kube/index.ts";
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
import type { InstanceView } from "./instance-view.ts";
import { type ConfigMapStale, instanceEvents, instanceStatus } from "./status.ts";
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

export function instanceReconciler(ctx: OperatorContext, view: InstanceView): { reconcile: Reconciler } {
  /**
   * Read-your-writes for status writes. Entries settle as soon as the watch
   * shows them (a start-up's 50,000 status write responses must not stay in
   * memory next to the cache); the age limit only bounds entries whose
   * event a relist skipped: a status is never served once the cache moved on.
   */
  const tracker = writeTracker(ctx.clock, 60_000);
  tracker.observe(ctx.instances);

  const reconcile = forObjects(ctx.instances, async (cached, rc) => {
    const { key } = rc;
    const probed = view.probed(key);
    const rt = probed?.runtime;
    // Not owned (another replica writes it), gone, or the probe-target
    // reconciler has not caught up with this generation yet (it wakes this
    // key when it has).
    if (!cached || !ctx.shards.owns(key) || !rt || rt.generation !== cached.metadata.generation) return;
    // Until the cache shows our last status write, start from what that
    // write returned: a reconcile in between (another instance of the service
    // changed the policy's status, say) would otherwise see the old status,
    // write the same status again and record the same Event twice.
    const obj = tracker.written<InstanceObject>(key) ?? cached;
    const now = ctx.clock.now();
    const parsed = validateServiceInstance(obj);
    const instance: ServiceInstance = parsed.ok
      ? { ...parsed.value, metadata: obj.metadata, status: obj.status }
      : obj;
    const blocker = rt.blocker;
    const { verdict, addresses, role } = probed;

    const svcKey = serviceKey(obj.metadata.namespace!, instance.spec.service);
    const taken = await ctx.unmanaged.isUnmanaged(svcKey, rc.signal);
    const { policy } = governingPolicy(ctx.policies.byIndex(byService, svcKey));
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
      role,
      blocker,
      conflict,
      configMapStale,
      healthCheck: rt.healthCheck,
      now,
    });
    const previous = obj.status;
    // Similar Events of one service's instances are combined under a storm
    // (src/kube/event-correlator.ts) into one about the Service.
    const group = {
      key: `service/${svcKey}`,
      regarding: {
        apiVersion: "v1",
        kind: "Service",
        metadata: {
          namespace: obj.metadata.namespace,
          name: instance.spec.service,
          uid: ctx.services.get(svcKey)?.metadata.uid,
        },
      },
    };
    const write = await writeStatus(ctx.applier, rosterResources.serviceInstances, obj, status, {
      signal: rc.signal,
    });
    if (write.written) {
      tracker.wrote(key, write.object, cached.metadata.resourceVersion);
      for (const e of instanceEvents(previous, status))
        ctx.events.event(obj, e.type, e.reason, e.note, { group });
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
        { group },
      );
      await ctx.applier.delete(rosterResources.serviceInstances, obj.metadata.namespace, obj.metadata.name!, {
        uid: obj.metadata.uid,
        signal: rc.signal,
      });
    }
    return;
  });

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
