/**
 * The service publisher: for one (namespace, service) it computes the desired
 * publication from the instances, their verdicts and the governing policy,
 * then converges the selector-less Service, the EndpointSlices (through the
 * pure planner in src/publish) and the ConfigMap, and writes the policy's
 * status. Nothing is written when nothing changed.
 *
 * Safety rules:
 * - Objects Roster does not manage are never modified: creates use POST (an
 *   AlreadyExists becomes a Conflict condition), updates carry the cached
 *   resourceVersion, deletes the cached UID.
 * - Start-up hold: right after the process starts probing, a service is not
 *   published until each of its instances was probed once (or
 *   `startupHoldMs` passed), so a restart never empties or flaps a set.
 * - Unknown verdicts (no probe yet) fall back to the verdict recorded in the
 *   instance's status.
 */
import { createHash } from "node:crypto";
import type { V1ObjectMeta, V1Service } from "@kubernetes/client-node";
import {
  ConditionTypes,
  configMapName,
  type DiscoveryPolicyStatus,
  type LoadBalancing,
} from "../api/index.ts";
import type { LoadBalancing as PublishedLoadBalancing } from "../api/published.ts";
import {
  apiVersionOf,
  type Condition,
  type Informer,
  isAlreadyExists,
  isConflict,
  type KubeObject,
  type Reconciler,
  type ResourceType,
  resourcePath,
  resources,
  setCondition,
  splitKey,
  writeStatus,
  writeTracker,
} from "../kube/index.ts";
import {
  buildPublishedContent,
  buildService,
  computeDesired,
  type DesiredPublication,
  type InstanceInput,
  isManagedByRoster,
  overBudgetMessage,
  planConfigMap,
  planEndpointSlices,
  serviceNeedsReplace,
  serviceOwnerReference,
} from "../publish/index.ts";
import { configMapClaimIn } from "./claims.ts";
import {
  byService,
  type ConfigMapObject,
  type InstanceObject,
  type OperatorContext,
  type PolicyObject,
  rosterResources,
  type ServiceObject,
  type SliceObject,
} from "./context.ts";
import { type EffectivePublish, effectiveSettings, governingPolicy } from "./effective.ts";
import { blockerReasons, instanceHealthy, truncate } from "./status.ts";
import type { ProbeTargets } from "./targets.ts";
import { UNMANAGED_RECHECK_MS } from "./unmanaged.ts";

const APPLIED_HASH = "roster.dev/applied-hash";
const CONFLICT = "Conflict";
const PANIC = "Panic";
const READY = "Ready";

interface Outcome {
  desired?: DesiredPublication;
  revision?: number;
  conflict?: string;
  /** The Conflict condition's reason (default UnmanagedObject). */
  conflictReason?: string;
  /** A create met our own object that the cache has not shown yet: reconcile again shortly. */
  behind?: boolean;
  /** Publishing failed with this message (the reconcile is retried). */
  failed?: string;
  /** The ConfigMap was published stale (over budget), with this message; the rest is published. */
  stale?: string;
}

interface InstanceView {
  /** Not published at all (invalid, missing Secret...), or not looked at yet. */
  blocked: boolean;
  /** Probed at least once (or blocked): the start-up hold need not wait for it. */
  settled: boolean;
  verdict: InstanceInput["verdict"];
  addresses: string[];
}

export function servicePublisher(ctx: OperatorContext, targets: ProbeTargets): { reconcile: Reconciler } {
  /** When each policy's status was last written (for policyStatusDelay); pruned as policies go. */
  const policyWrites = new Map<string, number>();
  /** Slice and ConfigMap writes the caches have not shown yet, by service. */
  const tracker = writeTracker(ctx.clock);
  tracker.observe(ctx.slices as unknown as Informer<KubeObject>);
  tracker.observe(ctx.configMaps as unknown as Informer<KubeObject>);
  const reconcile: Reconciler = async (key, rc) => {
    const { namespace = "", name: service } = splitKey(key);
    const siObjs = ctx.instances.byIndex(byService, key) as InstanceObject[];
    const { ranked, policy, invalid } = governingPolicy(
      ctx.policies.byIndex(byService, key) as PolicyObject[],
    );
    const settings = effectiveSettings(policy, ctx.settings().defaults);
    const existing = ctx.services.get(key) as ServiceObject | undefined;

    if (siObjs.length === 0 && ranked.length === 0) {
      await cleanup(namespace, service, existing, rc.signal);
      return;
    }

    const hold = startupHoldLeft(siObjs);
    if (hold > 0) return { requeueAfterMs: Math.min(hold, 250) };

    // Our last writes for this service are not in the cache yet: planning
    // now would start from old versions (and fail their preconditions). The
    // watch event that shows them reconciles the service again.
    if (tracker.behind(key)) return { requeueAfterMs: 50 };

    const outcome: Outcome = {};
    let failure: unknown;
    const claim = configMapClaimIn(ctx.policies, policy);
    if (await ctx.unmanaged.isUnmanaged(key, rc.signal)) {
      outcome.conflict = `Service ${service} exists and is not managed by Roster; Roster publishes nothing for this service until it is removed`;
    } else if (claim?.lost) {
      // Writes nothing at all: what was published before stays until the name is fixed.
      outcome.conflict = claim.message;
      outcome.conflictReason = "ConfigMapClaimed";
    } else {
      try {
        await publish(
          namespace,
          service,
          siObjs,
          settings.publish,
          settings.loadBalancing,
          existing,
          outcome,
          rc.signal,
        );
      } catch (err) {
        // Say why in the policy's status, then let the controller retry with backoff.
        if (rc.signal.aborted) throw err;
        failure = err;
        outcome.failed = err instanceof Error ? err.message : String(err);
      }
    }
    const again = await writePolicyStatuses(ranked, invalid, outcome, rc.signal);
    if (failure) throw failure;
    if (outcome.behind) return { requeueAfterMs: 100 };
    // Unmanaged objects are not cached, so no event says when one in the way is
    // gone: look again soon (one GET of that name, see unmanaged.ts).
    const recheck = outcome.conflict && !outcome.conflictReason ? UNMANAGED_RECHECK_MS : undefined;
    const next = again === undefined ? recheck : Math.min(again, recheck ?? again);
    return next === undefined ? undefined : { requeueAfterMs: next };
  };

  function startupHoldLeft(siObjs: readonly InstanceObject[]): number {
    const now = ctx.clock.now();
    const left = (targets.probingSince() ?? now) + ctx.settings().startupHoldMs - now;
    if (left <= 0) return 0;
    return siObjs.some((si) => !view(si).settled) ? left : 0;
  }

  /**
   * How an instance is to be published. An instance this replica probes is
   * judged by its fresh verdict (falling back to the recorded status while
   * it has none); one another replica probes (sharding) by the status that
   * replica wrote, its addresses at the recorded verdict.
   */
  function view(si: InstanceObject): InstanceView {
    const key = `${si.metadata.namespace}/${si.metadata.name}`;
    if (!ctx.shards.owns(key)) {
      const recorded = asVerdict(si.status?.healthy);
      const ready = si.status?.conditions?.find((c) => c.type === ConditionTypes.Ready);
      const blocked = ready?.status === "False" && blockerReasons.has(ready.reason);
      const addresses = si.status?.addresses ?? [];
      return { blocked, settled: blocked || recorded !== "unknown", verdict: recorded, addresses };
    }
    const rt = targets.runtime(key);
    if (!rt || rt.blocker)
      return { blocked: true, settled: rt !== undefined, verdict: "unknown", addresses: [] };
    const verdict = ctx.verdicts.get(key);
    // The status writer's rule: the fresh verdict, else the recorded one.
    const effective = asVerdict(instanceHealthy(si.status, verdict));
    const all = targets.addresses(key, verdict);
    // A healthy name that resolves to several IPs publishes the IPs that pass.
    const passing = all.filter((a) => a.verdict === "Healthy").map((a) => a.address);
    const addresses = effective === "healthy" && passing.length > 0 ? passing : all.map((a) => a.address);
    return { blocked: false, settled: verdict?.probed === true, verdict: effective, addresses };
  }

  function inputs(siObjs: readonly InstanceObject[]): InstanceInput[] {
    const out: InstanceInput[] = [];
    for (const si of siObjs) {
      const v = view(si);
      if (v.blocked) continue;
      out.push({
        name: si.metadata.name!,
        uid: si.metadata.uid,
        addresses: v.addresses,
        ports: si.spec.ports,
        weight: si.spec.weight,
        zone: si.spec.zone,
        drain: si.spec.drain,
        verdict: v.verdict,
        tags: si.spec.tags,
        metadata: si.spec.metadata,
      });
    }
    return out;
  }

  async function publish(
    namespace: string,
    service: string,
    siObjs: readonly InstanceObject[],
    publish: EffectivePublish,
    loadBalancing: LoadBalancing,
    existing: ServiceObject | undefined,
    outcome: Outcome,
    signal: AbortSignal,
  ): Promise<void> {
    const group = `${namespace}/${service}`;
    const track = (written: KubeObject | undefined) => written && tracker.wrote(group, written);
    const remove = async (type: ResourceType, name: string, uid: string | undefined) => {
      if (await ctx.applier.delete(type, namespace, name, { uid, signal }))
        tracker.deleted(group, `${namespace}/${name}`);
    };
    const desired = computeDesired(namespace, service, inputs(siObjs), {
      panicThreshold: publish.panicThreshold,
      trafficDistribution: publish.trafficDistribution,
    });
    outcome.desired = desired;
    ctx.logger.debug(
      { service: `${namespace}/${service}`, counts: desired.counts, panic: desired.panic },
      "desired publication",
    );

    // The Service owns the slices and the ConfigMap, so garbage collection
    // removes them with it.
    let owner = existing;
    if (publish.service || publish.endpointSlices) {
      const built = buildService({
        namespace,
        service,
        instances: siObjs.map((si) => ({ name: si.metadata.name!, ports: si.spec.ports })),
        // The policy's setting, not desired.zoneHints (which also needs every
        // ready endpoint to have a zone): the Service must not be rewritten
        // when health or membership changes.
        trafficDistribution: publish.trafficDistribution,
        headless: publish.headless,
      });
      if (built.service) {
        let live = existing;
        if (live && serviceNeedsReplace(live as V1Service, built.service)) {
          // publish.headless changed: clusterIP cannot. The old Service's
          // slices and ConfigMap go with it (owner references); the plans
          // below write them again for the new one.
          try {
            await remove(resources.services, service, live.metadata.uid);
          } catch (err) {
            if (!isConflict(err)) throw err;
            // The uid precondition failed: the cache still shows a Service
            // already replaced. Look again once it has caught up.
            outcome.behind = true;
            return;
          }
          live = undefined;
        }
        owner = await upsert(
          resources.services,
          built.service as unknown as KubeObject,
          live,
          signal,
          outcome,
        );
      }
    }
    if (outcome.conflict) return;

    const sliceType = resources.endpointSlices;
    const current = (ctx.slices.byIndex(byService, `${namespace}/${service}`) as SliceObject[]).filter((s) =>
      isManagedByRoster(s.metadata),
    );
    if (publish.endpointSlices && owner?.metadata.uid) {
      const plan = planEndpointSlices(desired.slices, current, {
        namespace,
        service,
        owner: serviceOwnerReference(owner),
        maxEndpointsPerSlice: publish.maxEndpointsPerSlice,
      });
      ctx.logger.debug(
        {
          create: plan.create.length,
          update: plan.update.length,
          delete: plan.delete.length,
          stats: plan.stats,
          current: current.length,
        },
        "slice plan",
      );
      for (const slice of plan.create) {
        track(await create(sliceType, slice as unknown as KubeObject, signal, outcome));
      }
      for (const slice of plan.update) {
        track(
          await ctx.applier.apply(sliceType, slice as unknown as KubeObject, {
            force: true,
            precondition: true,
            signal,
          }),
        );
      }
      for (const slice of plan.delete) await remove(sliceType, slice.metadata!.name!, slice.metadata!.uid);
    } else {
      for (const slice of current) await remove(sliceType, slice.metadata.name!, slice.metadata.uid);
    }

    const cmName = configMapName(service, publish);
    const previous = ctx.configMaps.get(`${namespace}/${cmName}`) as ConfigMapObject | undefined;
    if (publish.configMap.enabled) {
      const plan = planConfigMap(
        {
          namespace,
          name: cmName,
          content: buildPublishedContent(desired, publishedHints(loadBalancing, publish)),
          previous,
          owner: owner?.metadata.uid ? serviceOwnerReference(owner) : undefined,
        },
        ctx.settings().configMapBudgetBytes,
      );
      outcome.revision = plan.revision;
      if (plan.overBudget) outcome.stale = overBudgetMessage(cmName, plan.overBudget);
      if (plan.changed) {
        const body = plan.configMap as unknown as KubeObject;
        track(
          previous
            ? await ctx.applier.apply(resources.configMaps, withVersion(body, previous), {
                force: true,
                precondition: true,
                signal,
              })
            : await create(resources.configMaps, body, signal, outcome),
        );
      }
    } else if (previous) {
      await remove(resources.configMaps, cmName, previous.metadata.uid);
    }
    // A renamed ConfigMap (publish.configMap.name changed): the old one would
    // stay behind, frozen, for clients still reading it.
    for (const cm of ctx.configMaps.byIndex(byService, group) as ConfigMapObject[]) {
      if (cm.metadata.name !== cmName && isManagedByRoster(cm.metadata)) {
        await remove(resources.configMaps, cm.metadata.name!, cm.metadata.uid);
      }
    }
  }

  /** Creates or updates a Roster-managed object; skips the write when the applied content is unchanged. */
  async function upsert<T extends KubeObject>(
    type: ResourceType,
    desired: KubeObject,
    existing: T | undefined,
    signal: AbortSignal,
    outcome: Outcome,
  ): Promise<T | undefined> {
    const hash = contentHash(desired);
    desired.metadata.annotations = { ...desired.metadata.annotations, [APPLIED_HASH]: hash };
    if (!existing) return (await create(type, desired, signal, outcome)) as T | undefined;
    if (existing.metadata.annotations?.[APPLIED_HASH] === hash) return existing;
    const current = await ownAsApplied(type, existing, signal);
    return ctx.applier.apply<T>(type, withVersion(desired, current) as T, {
      force: true,
      precondition: true,
      signal,
    });
  }

  /**
   * A create (POST, so that Roster never takes over an existing object)
   * records Roster's fields under an `Update` entry of managedFields, and a
   * later server-side apply can never remove fields owned there: a
   * renumbered Service port stayed next to the new one (the Service became
   * invalid: duplicate port name) and trafficDistribution could not be
   * turned off. Before the first apply to such an object, re-label that
   * entry as Roster's `Apply` entry (as kubectl's client-side to server-side
   * apply upgrade does); the resourceVersion in the patch makes it apply to
   * the object as read only. One GET and no write for objects already
   * converted.
   */
  async function ownAsApplied(type: ResourceType, cached: KubeObject, signal: AbortSignal) {
    const manager = ctx.applier.fieldManager;
    const path = resourcePath(type, { namespace: cached.metadata.namespace, name: cached.metadata.name });
    // Caches drop managedFields: read them (a Service is written rarely).
    const live = await ctx.client.request<KubeObject>({ method: "GET", path, signal });
    if (live.metadata.uid !== cached.metadata.uid) return cached; // replaced: the apply's precondition fails
    const entries = (live.metadata.managedFields ?? []) as ManagedFieldsEntry[];
    const created = entries.find((e) => e.manager === manager && e.operation === "Update");
    if (!created) return live;
    // An object applied to before (by an older Roster) also has an Apply
    // entry: merge the two (managedFields allows one entry per manager and operation).
    const applied = entries.find((e) => e.manager === manager && e.operation === "Apply");
    const managedFields = entries
      .filter((e) => e !== created)
      .map((e) => (e === applied ? { ...e, fieldsV1: mergeFields(e.fieldsV1, created.fieldsV1) } : e));
    if (!applied) managedFields.push({ ...created, operation: "Apply" });
    return ctx.client.request<KubeObject>({
      method: "PATCH",
      path,
      contentType: "application/merge-patch+json",
      body: { metadata: { resourceVersion: live.metadata.resourceVersion, managedFields } },
      signal,
    });
  }

  async function create(
    type: ResourceType,
    body: KubeObject,
    signal: AbortSignal,
    outcome: Outcome,
  ): Promise<KubeObject | undefined> {
    try {
      return await ctx.client.request<KubeObject>({
        method: "POST",
        path: resourcePath(type, { namespace: body.metadata.namespace }),
        query: { fieldManager: ctx.applier.fieldManager },
        body: { ...body, apiVersion: body.apiVersion ?? apiVersionOf(type), kind: body.kind ?? type.kind },
        signal,
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      // Not in our cache: either our own write the cache has not shown yet,
      // or an object Roster does not manage, which it never takes over.
      const live = await ctx.client.request<KubeObject>({
        method: "GET",
        path: resourcePath(type, { namespace: body.metadata.namespace, name: body.metadata.name }),
        signal,
      });
      if (isManagedByRoster(live.metadata as V1ObjectMeta)) {
        outcome.behind = true;
        return live;
      }
      outcome.conflict = `${type.kind} ${body.metadata.name} already exists and is not managed by Roster; Roster does not take it over`;
      return undefined;
    }
  }

  async function cleanup(
    namespace: string,
    service: string,
    existing: ServiceObject | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    // Deleting the Service garbage-collects what it owns; delete the rest
    // explicitly too, in case it was published without an owner.
    if (existing && isManagedByRoster(existing.metadata)) {
      await ctx.applier.delete(resources.services, namespace, service, {
        uid: existing.metadata.uid,
        signal,
      });
    }
    for (const s of ctx.slices.byIndex(byService, `${namespace}/${service}`) as SliceObject[]) {
      if (isManagedByRoster(s.metadata))
        await ctx.applier.delete(resources.endpointSlices, namespace, s.metadata.name!, {
          uid: s.metadata.uid,
          signal,
        });
    }
    for (const cm of ctx.configMaps.byIndex(byService, `${namespace}/${service}`) as ConfigMapObject[]) {
      if (isManagedByRoster(cm.metadata))
        await ctx.applier.delete(resources.configMaps, namespace, cm.metadata.name!, {
          uid: cm.metadata.uid,
          signal,
        });
    }
  }

  async function writePolicyStatuses(
    ranked: readonly PolicyObject[],
    invalid: readonly { path: string; message: string }[] | undefined,
    outcome: Outcome,
    signal: AbortSignal,
  ): Promise<number | undefined> {
    const now = ctx.clock.now();
    let again: number | undefined;
    for (const [i, policy] of ranked.entries()) {
      const gen = policy.metadata.generation;
      let conditions = (policy.status?.conditions ?? []) as Condition[];
      const set = (type: string, status: "True" | "False", reason: string, message: string) => {
        conditions = setCondition(
          conditions,
          { type, status, reason, message: truncate(message), observedGeneration: gen },
          now,
        );
      };
      const status: DiscoveryPolicyStatus = {};
      if (i > 0) {
        const winner = ranked[0]!.metadata.name;
        set(
          CONFLICT,
          "True",
          "DuplicatePolicy",
          `DiscoveryPolicy ${winner} already governs service ${policy.spec.service}`,
        );
        set(READY, "False", "DuplicatePolicy", `ignored: DiscoveryPolicy ${winner} governs this service`);
      } else if (invalid) {
        set(READY, "False", "InvalidSpec", invalid.map((e) => `${e.path}: ${e.message}`).join("; "));
      } else if (outcome.conflict) {
        set(CONFLICT, "True", outcome.conflictReason ?? "UnmanagedObject", outcome.conflict);
        set(READY, "False", "Conflict", outcome.conflict);
      } else if (outcome.failed) {
        set(READY, "False", "PublishFailed", `publishing failed, retrying: ${outcome.failed}`);
        const { panic, totalInstances, healthyInstances, drainingInstances, publishedRevision } =
          policy.status ?? {};
        Object.assign(status, {
          panic,
          totalInstances,
          healthyInstances,
          drainingInstances,
          publishedRevision,
        });
      } else {
        const d = outcome.desired;
        if (conditions.some((c) => c.type === CONFLICT)) set(CONFLICT, "False", "NoConflict", "");
        if (outcome.stale) set(READY, "False", "PublishFailed", outcome.stale);
        else
          set(
            READY,
            "True",
            "Published",
            `${d?.counts.ready ?? 0} of ${d?.counts.total ?? 0} instances published as ready`,
          );
        const panic = d?.panic ?? false;
        if (panic || conditions.some((c) => c.type === PANIC)) {
          set(
            PANIC,
            panic ? "True" : "False",
            panic ? "BelowPanicThreshold" : "AboveThreshold",
            panic
              ? `${d?.counts.healthy} of ${d?.counts.total} healthy is below publish.panicThreshold: every non-drained instance is published`
              : "enough instances are healthy",
          );
        }
        if (panic !== (policy.status?.panic ?? false)) {
          ctx.events.event(
            policy,
            panic ? "Warning" : "Normal",
            panic ? "PanicEntered" : "PanicLeft",
            panic
              ? "too few healthy instances: publishing all non-drained instances"
              : "enough instances are healthy again",
          );
        }
        status.panic = panic;
        status.totalInstances = d?.counts.total ?? 0;
        status.healthyInstances = d?.counts.healthy ?? 0;
        status.drainingInstances = d?.counts.draining ?? 0;
        if (outcome.revision !== undefined) status.publishedRevision = outcome.revision;
      }
      status.conditions = conditions as DiscoveryPolicyStatus["conditions"];
      if (gen !== undefined) status.observedGeneration = gen;
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

function asVerdict(healthy: boolean | undefined): InstanceInput["verdict"] {
  return healthy === true ? "healthy" : healthy === false ? "unhealthy" : "unknown";
}

/** The load-balancing hints as published (format v1). */
export function publishedHints(lb: LoadBalancing, publish: EffectivePublish): PublishedLoadBalancing {
  const hints: PublishedLoadBalancing = {
    strategy: lb.strategy,
    zoneAware: publish.trafficDistribution !== undefined,
  };
  if (lb.strategy === "ConsistentHash") {
    const ch = lb.consistentHash;
    const algorithm = ch?.algorithm ?? "Ring";
    hints.consistentHash = {
      algorithm,
      tableSize: ch?.tableSize ?? (algorithm === "Maglev" ? 65537 : 1024),
      key: ch?.key ?? { source: "SourceIP" },
    };
  }
  return hints;
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  fieldsV1?: unknown;
}

/** The union of two FieldsV1 sets (nested objects whose leaves are `{}`). */
function mergeFields(a: unknown, b: unknown): unknown {
  if (typeof a !== "object" || a === null) return b;
  if (typeof b !== "object" || b === null) return a;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = mergeFields(out[k], v);
  return out;
}

function contentHash(obj: KubeObject): string {
  return createHash("sha256").update(JSON.stringify(obj)).digest("hex").slice(0, 16);
}

function withVersion(body: KubeObject, existing: KubeObject): KubeObject {
  return { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } };
}
