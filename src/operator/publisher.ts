/**
 * The service publisher: for one (namespace, service) it gathers the
 * instances (through the instance view, instance-view.ts), their governing policy and what
 * is published from the caches, computes the publication plan (pure, in
 * publish-plan.ts), applies it with the plan executor (src/kube/executor.ts)
 * and records the outcome in the policies' status (policyStatus() in
 * status.ts) and Events. Nothing is written when nothing changed.
 *
 * Safety rules:
 * - Objects Roster does not manage are never modified (the executor's
 *   guarantees): a create that meets one becomes a Conflict condition.
 * - Start-up hold: right after the process starts probing, a service is not
 *   published until each of its instances was probed once (or
 *   `startupHoldMs` passed), so a restart never empties or flaps a set.
 * - Unknown verdicts (no probe yet) fall back to the verdict recorded in the
 *   instance's status.
 */
import { configMapName, type DiscoveryPolicyStatus } from "../api/index.ts";
import {
  type ExecuteResult,
  isConflict,
  planExecutor,
  type Reconciler,
  resources,
  splitKey,
  writeStatus,
  writeTracker,
} from "../kube/index.ts";
import { isManagedByRoster } from "../publish/index.ts";
import { configMapClaimIn } from "./claims.ts";
import {
  byService,
  type InstanceObject,
  type OperatorContext,
  type PolicyObject,
  rosterResources,
  type ServiceObject,
} from "./context.ts";
import { effectiveSettings, governingPolicy } from "./effective.ts";
import type { InstanceView } from "./instance-view.ts";
import {
  type PublicationInput,
  planConfigMapPublication,
  planServicePublication,
  planSlicePublication,
  planUnpublish,
} from "./publish-plan.ts";
import { type PublicationOutcome, policyStatus } from "./status.ts";
import { UNMANAGED_RECHECK_MS } from "./unmanaged.ts";

export function servicePublisher(ctx: OperatorContext, view: InstanceView): { reconcile: Reconciler } {
  /** When each policy's status was last written (for policyStatusDelay); pruned as policies go. */
  const policyWrites = new Map<string, number>();
  /** Slice and ConfigMap writes the caches have not shown yet, by service. */
  const tracker = writeTracker(ctx.clock);
  tracker.observe(ctx.slices);
  tracker.observe(ctx.configMaps);
  const executor = planExecutor({
    client: ctx.client,
    applier: ctx.applier,
    owned: isManagedByRoster,
    tracker,
    tracked: [resources.endpointSlices, resources.configMaps],
  });

  const reconcile: Reconciler = async (key, rc) => {
    const { signal } = rc;
    // Gather: everything comes from the caches (and the instance view).
    const { namespace = "", name: service } = splitKey(key);
    const siObjs = ctx.instances.byIndex(byService, key);
    const { ranked, policy, invalid } = governingPolicy(ctx.policies.byIndex(byService, key));
    const existing = ctx.services.get(key);
    const slices = ctx.slices.byIndex(byService, key).filter((s) => isManagedByRoster(s.metadata));
    const configMaps = ctx.configMaps.byIndex(byService, key).filter((c) => isManagedByRoster(c.metadata));
    if (siObjs.length === 0 && ranked.length === 0) {
      await executor.run(planUnpublish(namespace, existing, slices, configMaps), { signal });
      return;
    }
    const hold = startupHoldLeft(siObjs);
    if (hold > 0) return { requeueAfterMs: Math.min(hold, 250) };
    // Our last writes for this service are not in the cache yet: planning
    // now would start from old versions (and fail their preconditions). The
    // watch event that shows them reconciles the service again.
    if (tracker.behind(key)) return { requeueAfterMs: 50 };

    const outcome: PublicationOutcome = {};
    let failure: unknown;
    let behind = false;
    const claim = configMapClaimIn(ctx.policies, policy);
    if (await ctx.unmanaged.isUnmanaged(key, rc.signal)) {
      outcome.conflict = `Service ${service} exists and is not managed by Roster; Roster publishes nothing for this service until it is removed`;
    } else if (claim?.lost) {
      // Writes nothing at all: what was published before stays until the name is fixed.
      outcome.conflict = claim.message;
      outcome.conflictReason = "ConfigMapClaimed";
    } else {
      const { publish, loadBalancing, slowStart } = effectiveSettings(policy, ctx.settings().defaults);
      const { configMapBudgetBytes, configMapMaxParts } = ctx.settings();
      const input: PublicationInput = {
        ...{ namespace, service, publish, loadBalancing, configMapBudgetBytes, configMapMaxParts },
        ...{ existing, slices, configMaps },
        ...(slowStart ? { slowStart, now: ctx.clock.now() } : {}),
        instances: view.inputs(siObjs),
        servicePorts: siObjs.map((si) => ({ name: si.metadata.name!, ports: si.spec.ports })),
        configMap: ctx.configMaps.get(`${namespace}/${configMapName(service, publish)}`),
      };
      try {
        behind = await converge(input, outcome, signal);
      } catch (err) {
        // Say why in the policy's status, then let the controller retry with backoff.
        if (signal.aborted) throw err;
        failure = err;
        outcome.failed = err instanceof Error ? err.message : String(err);
      }
    }
    // Record.
    const again = await writePolicyStatuses(ranked, invalid, outcome, signal);
    if (failure) throw failure;
    if (behind) return { requeueAfterMs: 100 };
    // Unmanaged objects are not cached, so no event says when one in the way is
    // gone: look again soon (one GET of that name, see unmanaged.ts).
    const recheck = outcome.conflict && !outcome.conflictReason ? UNMANAGED_RECHECK_MS : undefined;
    const next = again === undefined ? recheck : Math.min(again, recheck ?? again);
    return next === undefined ? undefined : { requeueAfterMs: next };
  };

  /** Computes and applies the plan, part by part (each needs the Service as written); true when behind. */
  async function converge(input: PublicationInput, outcome: PublicationOutcome, signal: AbortSignal) {
    const key = `${input.namespace}/${input.service}`;
    const plan = planServicePublication(input);
    outcome.desired = plan.desired;
    if (plan.noRoleProbe.length > 0 && input.publish.role) {
      outcome.noRoleProbe = {
        role: input.publish.role,
        names: plan.noRoleProbe,
        total: input.instances.length,
      };
    }
    const { counts, panic } = plan.desired;
    ctx.logger.debug({ service: key, counts, panic }, "desired publication");
    if (plan.replace) {
      try {
        await executor.run([plan.replace], { signal });
      } catch (err) {
        if (!isConflict(err)) throw err;
        // The uid precondition failed: the cache still shows a Service
        // already replaced. Look again once it has caught up.
        return true;
      }
    }
    const wrote = await executor.run(plan.steps, { signal });
    if (wrote.conflict) {
      outcome.conflict = unmanaged(wrote.conflict);
      return wrote.behind;
    }
    const owner = (wrote.written[0] as ServiceObject | undefined) ?? input.existing;
    const slices = planSlicePublication(input, plan.desired, owner);
    ctx.logger.debug({ steps: slices.steps.length, stats: slices.stats }, "slice plan");
    const cm = planConfigMapPublication(input, plan.desired, owner);
    outcome.revision = cm.revision;
    outcome.stale = cm.stale;
    // Slices and ConfigMap are two independent renderings of one desired
    // model: written side by side, so the ConfigMap (what the client library
    // and every replica's xDS server read) does not wait behind the slice
    // writes (one after another, and first in the write gate).
    const writeConfigMap = async (): Promise<ExecuteResult> => {
      const published = await executor.run(cm.steps, { group: key, signal });
      // Format 2: the head (and the deletion of unlisted parts) only once every part is written.
      if (!cm.commit || published.conflict) return published;
      const committed = await executor.run(cm.commit, { group: key, signal });
      return { ...committed, behind: published.behind || committed.behind };
    };
    const [slicesDone, configMapDone] = await Promise.allSettled([
      executor.run(slices.steps, { group: key, signal }),
      writeConfigMap(),
    ]);
    if (slicesDone.status === "rejected") throw slicesDone.reason;
    if (configMapDone.status === "rejected") throw configMapDone.reason;
    const sliced = slicesDone.value;
    const published = configMapDone.value;
    const conflict = published.conflict ?? sliced.conflict;
    if (conflict) outcome.conflict = unmanaged(conflict);
    return wrote.behind || sliced.behind || published.behind;
  }

  function startupHoldLeft(siObjs: readonly InstanceObject[]): number {
    const now = ctx.clock.now();
    const left = (view.probingSince() ?? now) + ctx.settings().startupHoldMs - now;
    if (left <= 0) return 0;
    return siObjs.some((si) => !view.published(si).settled) ? left : 0;
  }

  async function writePolicyStatuses(
    ranked: readonly PolicyObject[],
    invalid: readonly { path: string; message: string }[] | undefined,
    outcome: PublicationOutcome,
    signal: AbortSignal,
  ): Promise<number | undefined> {
    const now = ctx.clock.now();
    let again: number | undefined;
    for (const [i, policy] of ranked.entries()) {
      const winner = i > 0 ? ranked[0]!.metadata.name : undefined;
      const { status, event } = policyStatus({
        policy,
        winner,
        invalid: i > 0 ? undefined : invalid,
        outcome,
        now,
      });
      if (event) ctx.events.event(policy, event.type, event.reason, event.note);
      const key = `${policy.metadata.namespace}/${policy.metadata.name}`;
      const wait = policyStatusDelay(key, policy.status, status, now);
      if (wait > 0) {
        again = Math.min(again ?? wait, wait);
        continue;
      }
      const write = await writeStatus(ctx.applier, rosterResources.discoveryPolicies, policy, status, {
        signal,
      });
      if (write.written) policyWrites.set(key, now);
    }
    if (policyWrites.size > 2 * ctx.policies.keys().length + 16) {
      for (const key of policyWrites.keys()) if (!ctx.policies.get(key)) policyWrites.delete(key);
    }
    return again;
  }

  /**
   * Counts and messages in a policy's status change with every transition of
   * one of its instances; written each time they would double the writes
   * per transition. A status that differs only in those is written at most
   * every `policyStatusIntervalMs` (the last one is never lost: the service
   * is reconciled again when the interval ends); a change of any condition's
   * status or reason, of panic or of the generation is written at once.
   */
  function policyStatusDelay(
    key: string,
    previous: DiscoveryPolicyStatus | undefined,
    next: DiscoveryPolicyStatus,
    now: number,
  ): number {
    const interval = ctx.settings().policyStatusIntervalMs;
    const last = policyWrites.get(key);
    if (interval <= 0 || last === undefined || now - last >= interval) return 0;
    const shape = (s: DiscoveryPolicyStatus | undefined) =>
      JSON.stringify([
        s?.observedGeneration,
        s?.panic ?? false,
        (s?.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.observedGeneration]).sort(),
      ]);
    return shape(previous) === shape(next) ? last + interval - now : 0;
  }

  return { reconcile };
}

function unmanaged(c: { kind: string; name: string }): string {
  return `${c.kind} ${c.name} already exists and is not managed by Roster; Roster does not take it over`;
}
