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
import type { V1ObjectMeta } from "@kubernetes/client-node";
import {
  configMapName,
  type DiscoveryPolicyStatus,
  type LoadBalancing,
  type Publish,
  validateDiscoveryPolicy,
} from "../api/index.ts";
import type { LoadBalancing as PublishedLoadBalancing } from "../api/published.ts";
import {
  apiVersionOf,
  type Condition,
  isAlreadyExists,
  type KubeObject,
  type Reconciler,
  type ResourceType,
  resourcePath,
  resources,
  setCondition,
  splitKey,
  writeStatus,
} from "../kube/index.ts";
import {
  buildPublishedContent,
  buildService,
  computeDesired,
  type DesiredPublication,
  type InstanceInput,
  isManagedByRoster,
  planConfigMap,
  planEndpointSlices,
  serviceOwnerReference,
} from "../publish/index.ts";
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
import { effectiveSettings, rankPolicies } from "./effective.ts";
import type { InstanceReconciler } from "./instances.ts";
import { truncate } from "./status.ts";

const APPLIED_HASH = "roster.dev/applied-hash";
const CONFLICT = "Conflict";
const PANIC = "Panic";
const READY = "Ready";

interface Outcome {
  desired?: DesiredPublication;
  revision?: number;
  conflict?: string;
  /** A create met our own object that the cache has not shown yet: reconcile again shortly. */
  behind?: boolean;
}

export function servicePublisher(
  ctx: OperatorContext,
  instances: InstanceReconciler,
): { reconcile: Reconciler } {
  const reconcile: Reconciler = async (key, rc) => {
    const { namespace = "", name: service } = splitKey(key);
    const siObjs = ctx.instances.byIndex(byService, key) as InstanceObject[];
    const ranked = rankPolicies(ctx.policies.byIndex(byService, key) as PolicyObject[]);
    const validated = ranked[0] && validateDiscoveryPolicy(ranked[0]);
    const policy = validated?.ok ? { ...validated.value, metadata: ranked[0]!.metadata } : undefined;
    const settings = effectiveSettings(policy, ctx.settings().defaults);
    const existing = ctx.services.get(key) as ServiceObject | undefined;

    if (siObjs.length === 0 && ranked.length === 0) {
      await cleanup(namespace, service, existing, rc.signal);
      return;
    }

    const hold = startupHoldLeft(siObjs);
    if (hold > 0) return { requeueAfterMs: Math.min(hold, 250) };

    const outcome: Outcome = {};
    if (existing && !isManagedByRoster(existing.metadata)) {
      outcome.conflict = `Service ${service} exists and is not managed by Roster; Roster publishes nothing for this service until it is removed`;
    } else {
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
    }
    await writePolicyStatuses(
      ranked,
      validated && !validated.ok ? validated.errors : undefined,
      outcome,
      rc.signal,
    );
    return;
  };

  function startupHoldLeft(siObjs: readonly InstanceObject[]): number {
    const now = ctx.clock.now();
    const left = (instances.probingSince() ?? now) + ctx.settings().startupHoldMs - now;
    if (left <= 0) return 0;
    const waiting = siObjs.some((si) => {
      const rt = instances.runtime(`${si.metadata.namespace}/${si.metadata.name}`);
      if (rt?.blocker) return false;
      return !ctx.verdicts.get(`${si.metadata.namespace}/${si.metadata.name}`)?.probed;
    });
    return waiting ? left : 0;
  }

  function inputs(siObjs: readonly InstanceObject[]): InstanceInput[] {
    const out: InstanceInput[] = [];
    for (const si of siObjs) {
      const rt = instances.runtime(`${si.metadata.namespace}/${si.metadata.name}`);
      if (!rt || rt.blocker) continue;
      const verdict = ctx.verdicts.get(`${si.metadata.namespace}/${si.metadata.name}`)?.verdict ?? "Unknown";
      const effective =
        verdict === "Healthy"
          ? "healthy"
          : verdict === "Unhealthy"
            ? "unhealthy"
            : si.status?.healthy === true
              ? "healthy"
              : si.status?.healthy === false
                ? "unhealthy"
                : "unknown";
      // A healthy name that resolves to several IPs publishes the IPs that pass.
      const passing = rt.addresses.filter((a) => a.verdict === "Healthy").map((a) => a.address);
      const addresses =
        effective === "healthy" && passing.length > 0 ? passing : rt.addresses.map((a) => a.address);
      out.push({
        name: si.metadata.name!,
        uid: si.metadata.uid,
        addresses,
        ports: si.spec.ports,
        weight: si.spec.weight,
        zone: si.spec.zone,
        drain: si.spec.drain,
        verdict: effective,
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
    publish: Publish,
    loadBalancing: LoadBalancing,
    existing: ServiceObject | undefined,
    outcome: Outcome,
    signal: AbortSignal,
  ): Promise<void> {
    const desired = computeDesired(namespace, service, inputs(siObjs), {
      panicThreshold: publish.panicThreshold,
      zoneHints: publish.zoneHints,
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
        zoneHints: publish.zoneHints,
      });
      if (built.service) {
        owner = await upsert(
          resources.services,
          built.service as unknown as KubeObject,
          existing,
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
        await create(sliceType, slice as unknown as KubeObject, signal, outcome);
      }
      for (const slice of plan.update) {
        await ctx.applier.apply(sliceType, slice as unknown as KubeObject, {
          force: true,
          precondition: true,
          signal,
        });
      }
      for (const slice of plan.delete) {
        await ctx.applier.delete(sliceType, namespace, slice.metadata!.name!, {
          uid: slice.metadata!.uid,
          signal,
        });
      }
    } else {
      for (const slice of current) {
        await ctx.applier.delete(sliceType, namespace, slice.metadata.name!, {
          uid: slice.metadata.uid,
          signal,
        });
      }
    }

    const cmName = configMapName(service, publish);
    const previous = ctx.configMaps.get(`${namespace}/${cmName}`) as ConfigMapObject | undefined;
    if (publish.configMap.enabled) {
      const plan = planConfigMap({
        namespace,
        name: cmName,
        content: buildPublishedContent(desired, publishedHints(loadBalancing, publish)),
        previous,
        owner: owner?.metadata.uid ? serviceOwnerReference(owner) : undefined,
      });
      outcome.revision = plan.revision;
      if (plan.changed) {
        const body = plan.configMap as unknown as KubeObject;
        if (previous) {
          await ctx.applier.apply(resources.configMaps, withVersion(body, previous), {
            force: true,
            precondition: true,
            signal,
          });
        } else {
          await create(resources.configMaps, body, signal, outcome);
        }
      }
    } else if (previous) {
      await ctx.applier.delete(resources.configMaps, namespace, cmName, {
        uid: previous.metadata.uid,
        signal,
      });
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
  ): Promise<void> {
    const now = ctx.clock.now();
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
        set(CONFLICT, "True", "UnmanagedObject", outcome.conflict);
        set(READY, "False", "Conflict", outcome.conflict);
      } else {
        const d = outcome.desired;
        if (conditions.some((c) => c.type === CONFLICT)) set(CONFLICT, "False", "NoConflict", "");
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
      await writeStatus(ctx.applier, rosterResources.discoveryPolicies, policy, status, { signal });
    }
  }

  return { reconcile };
}

/** The load-balancing hints as published (format v1). */
export function publishedHints(lb: LoadBalancing, publish: Publish): PublishedLoadBalancing {
  const hints: PublishedLoadBalancing = { strategy: lb.strategy, zoneAware: publish.zoneHints };
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
