/**
 * The publication plan of one (namespace, service), as pure functions of
 * what the publisher gathered from its caches: the desired endpoint model,
 * then the writes (for the plan executor in src/kube/executor.ts) that
 * converge the selector-less Service, the EndpointSlices and the ConfigMap.
 *
 * The plan comes in three parts because each needs what the previous one
 * wrote: the slices and the ConfigMap are owned by the Service (garbage
 * collection removes them with it), so they are planned once the Service
 * as written (its UID) is known; the ConfigMap last, so that a document
 * that cannot be built (over the size limit) still leaves the slices
 * published.
 */
import { configMapName, type LoadBalancing } from "../api/index.ts";
import { PUBLISHED_MAX_BYTES, type LoadBalancing as PublishedLoadBalancing } from "../api/published.ts";
import { PUBLISHED_MAX_PARTS } from "../api/published-parts.ts";
import { type KubeObject, resources, type WriteStep, withVersion } from "../kube/index.ts";
import {
  buildPublishedContent,
  buildService,
  computeDesired,
  type DesiredPublication,
  type InstanceInput,
  type InstancePort,
  isHead,
  isManagedByRoster,
  isPartOf,
  overBudgetMessage,
  planConfigMap,
  planEndpointSlices,
  planPartedConfigMaps,
  serviceNeedsReplace,
  serviceOwnerReference,
} from "../publish/index.ts";
import type { ConfigMapObject, ServiceObject, SliceObject } from "./context.ts";
import type { EffectivePublish, EffectiveSlowStart } from "./effective.ts";

/** What the publisher read for one service. */
export interface PublicationInput {
  namespace: string;
  service: string;
  /** The instances to publish (blocked ones left out), as the instance view sees them. */
  instances: readonly InstanceInput[];
  /** Every instance's ports, blocked ones included: the Service's ports must not flap with health. */
  servicePorts: readonly { name: string; ports: readonly InstancePort[] }[];
  publish: EffectivePublish;
  loadBalancing: LoadBalancing;
  /** Slow start (effectiveSlowStart()); undefined: off. */
  slowStart?: EffectiveSlowStart;
  /** The time slow start windows are measured at (ms). */
  now?: number;
  /** The largest ConfigMap document (default PUBLISHED_MAX_BYTES); also each part's budget. */
  configMapBudgetBytes?: number;
  /** The most parts of a split document (default PUBLISHED_MAX_PARTS); 1 keeps format 1 only. */
  configMapMaxParts?: number;
  /** The Service of that name, managed or not. */
  existing: ServiceObject | undefined;
  /** The service's slices Roster manages. */
  slices: readonly SliceObject[];
  /** The service's ConfigMaps Roster manages (current and renamed ones). */
  configMaps: readonly ConfigMapObject[];
  /** The ConfigMap at the configured name, managed or not (the claim check ran before). */
  configMap: ConfigMapObject | undefined;
}

export interface ServicePlan {
  desired: DesiredPublication;
  /**
   * Delete the Service first: publish.headless changed, and clusterIP
   * cannot. Its slices and ConfigMap go with it (owner references); the
   * slice and ConfigMap plans write them again for the new one.
   */
  replace?: WriteStep;
  /** Create or update the Service (empty: nothing to write, or no port to publish yet). */
  steps: WriteStep[];
  /** publish.role: the instances left out for good, their check having no postgres or redis probe (sorted). */
  noRoleProbe: string[];
}

export function planServicePublication(input: PublicationInput): ServicePlan {
  const { namespace, service, publish } = input;
  // publish.role: the instances with another role or an unknown one are left
  // out, as blocked instances are (not listed as not ready): the endpoint
  // states have no value for "healthy but the other role" (a new one would be
  // a new major format version), and panic must never fail open to a replica.
  const instances = publish.role ? input.instances.filter((i) => i.role === publish.role) : input.instances;
  // Those whose check cannot learn a role would be left out silently, for
  // ever: named, for the policy's status (RoleUnknown).
  const noRoleProbe = publish.role
    ? input.instances
        .filter((i) => i.noRoleProbe)
        .map((i) => i.name)
        .sort()
    : [];
  const desired = computeDesired(namespace, service, instances, {
    panicThreshold: publish.panicThreshold,
    trafficDistribution: publish.trafficDistribution,
    slowStart: input.slowStart,
    now: input.now,
    degradedWeightPercent: publish.degradedWeightPercent,
  });
  const steps: WriteStep[] = [];
  let replace: WriteStep | undefined;
  if (publish.service || publish.endpointSlices) {
    const built = buildService({
      namespace,
      service,
      instances: input.servicePorts,
      // The policy's setting, not desired.zoneHints (which also needs every
      // ready endpoint to have a zone): the Service must not be rewritten
      // when health or membership changes.
      trafficDistribution: publish.trafficDistribution,
      headless: publish.headless,
    });
    if (built.service) {
      let live = input.existing;
      if (live && serviceNeedsReplace(live, built.service)) {
        replace = {
          op: "delete",
          type: resources.services,
          namespace,
          name: service,
          uid: live.metadata.uid,
        };
        live = undefined;
      }
      steps.push({
        op: "upsert",
        type: resources.services,
        body: built.service as unknown as KubeObject,
        existing: live,
      });
    }
  }
  return { desired, replace, steps, noRoleProbe };
}

/** The slice writes (creates, then updates, then deletes); all deletes without an owner Service. */
export function planSlicePublication(
  input: PublicationInput,
  desired: DesiredPublication,
  owner: ServiceObject | undefined,
): { steps: WriteStep[]; stats?: unknown } {
  const { namespace, service, publish } = input;
  const type = resources.endpointSlices;
  const remove = (s: { metadata?: { name?: string; uid?: string } }): WriteStep => ({
    op: "delete",
    type,
    namespace,
    name: s.metadata!.name!,
    uid: s.metadata!.uid,
  });
  if (!publish.endpointSlices || !owner?.metadata.uid) return { steps: input.slices.map(remove) };
  const plan = planEndpointSlices(desired.slices, input.slices, {
    namespace,
    service,
    owner: serviceOwnerReference(owner),
    maxEndpointsPerSlice: publish.maxEndpointsPerSlice,
  });
  return {
    steps: [
      ...plan.create.map((s): WriteStep => ({ op: "create", type, body: s as unknown as KubeObject })),
      ...plan.update.map((s): WriteStep => ({ op: "apply", type, body: s as unknown as KubeObject })),
      ...plan.delete.map(remove),
    ],
    stats: plan.stats,
  };
}

/**
 * The ConfigMap writes, the revision published and, over budget, why the
 * document published is stale. Throws what planConfigMap throws (content
 * that breaks the format).
 *
 * Format 1 (one ConfigMap) while the document fits the budget; over it, the
 * split format 2 (planPartedConfigMaps): `steps` then writes the parts and
 * `commit` the head and the deletions of parts it no longer lists, to run
 * only once every part is written (the head is the readers' commit point: a
 * part that could not be written must not be listed). Over even
 * `configMapMaxParts` parts, the stale format-1 document as before.
 */
export function planConfigMapPublication(
  input: PublicationInput,
  desired: DesiredPublication,
  owner: ServiceObject | undefined,
): { steps: WriteStep[]; commit?: WriteStep[]; revision?: number; stale?: string; parts?: number } {
  const { namespace, service, publish } = input;
  const type = resources.configMaps;
  const name = configMapName(service, publish);
  const previous = input.configMap;
  const steps: WriteStep[] = [];
  const late: WriteStep[] = [];
  const remove = (cm: { metadata?: { name?: string; uid?: string } }): WriteStep => ({
    op: "delete",
    type,
    namespace,
    name: cm.metadata!.name!,
    uid: cm.metadata!.uid,
  });
  const write = (cm: ConfigMapObject, live: ConfigMapObject | undefined): WriteStep => {
    const body = cm as unknown as KubeObject;
    return live ? { op: "apply", type, body: withVersion(body, live) } : { op: "create", type, body };
  };
  const ownParts = input.configMaps.filter((cm) => isPartOf(cm, name));
  let revision: number | undefined;
  let stale: string | undefined;
  let commit: WriteStep[] | undefined;
  let parts: number | undefined;
  if (publish.configMap.enabled) {
    const planInput = {
      namespace,
      name,
      content: buildPublishedContent(desired, publishedHints(input.loadBalancing, publish, input.slowStart)),
      previous,
      owner: owner?.metadata.uid ? serviceOwnerReference(owner) : undefined,
    };
    const budget = input.configMapBudgetBytes ?? PUBLISHED_MAX_BYTES;
    const maxParts = input.configMapMaxParts ?? PUBLISHED_MAX_PARTS;
    const planSplit = () =>
      maxParts > 1
        ? planPartedConfigMaps({ ...planInput, previousParts: ownParts, maxParts }, budget)
        : undefined;
    // Already split: the steady state of a large service. Unchanged, or
    // still over the budget, it makes no format-1 attempt.
    let split = isHead(previous) ? planSplit() : undefined;
    const unchanged = split && !split.headChanged && split.writeParts.length + split.deleteParts.length === 0;
    // Its lines alone over the budget: format 1 cannot fit, so it is not rendered again.
    const tooLarge = split !== undefined && split.lineBytes > budget;
    const plan = unchanged || tooLarge ? undefined : planConfigMap(planInput, budget);
    if (plan && !plan.overBudget) split = undefined;
    else if (plan?.overBudget && !split) split = planSplit();
    if (split) {
      const live = new Map(ownParts.map((cm) => [cm.metadata.name!, cm]));
      for (const p of split.writeParts) steps.push(write(p as ConfigMapObject, live.get(p.metadata!.name!)));
      commit = [];
      if (split.headChanged) commit.push(write(split.head as ConfigMapObject, previous));
      for (const cm of split.deleteParts) commit.push(remove(cm));
      revision = split.revision;
      parts = split.parts.length;
    } else if (plan) {
      if (plan.overBudget) stale = overBudgetMessage(name, plan.overBudget);
      revision = plan.revision;
      if (plan.changed) steps.push(write(plan.configMap as ConfigMapObject, previous));
      // Back to one ConfigMap: the parts go once the format-1 head is written.
      for (const cm of ownParts) late.push(remove(cm));
    }
  } else {
    if (previous) steps.push(remove(previous));
    for (const cm of ownParts) steps.push(remove(cm));
  }
  // A renamed ConfigMap (publish.configMap.name changed): the old one (and
  // its parts) would stay behind, frozen, for clients still reading it.
  for (const cm of input.configMaps) {
    if (cm.metadata.name !== name && !isPartOf(cm, name)) late.push(remove(cm));
  }
  if (commit) commit.push(...late);
  else steps.push(...late);
  return { steps, commit, revision, stale, parts };
}

/**
 * Everything Roster published for a service it no longer publishes (no
 * instance, no policy). Deleting the Service garbage-collects what it owns;
 * the rest is deleted explicitly too, in case it was published without an owner.
 */
export function planUnpublish(
  namespace: string,
  existing: ServiceObject | undefined,
  slices: readonly SliceObject[],
  configMaps: readonly ConfigMapObject[],
): WriteStep[] {
  const steps: WriteStep[] = [];
  const del = (type: WriteStep["type"], o: KubeObject): WriteStep => ({
    op: "delete",
    type,
    namespace,
    name: o.metadata.name!,
    uid: o.metadata.uid,
  });
  if (existing && isManagedByRoster(existing.metadata)) steps.push(del(resources.services, existing));
  for (const s of slices) steps.push(del(resources.endpointSlices, s));
  for (const cm of configMaps) steps.push(del(resources.configMaps, cm));
  return steps;
}

/** The load-balancing hints as published (format v1). */
export function publishedHints(
  lb: LoadBalancing,
  publish: EffectivePublish,
  slowStart?: EffectiveSlowStart,
): PublishedLoadBalancing {
  const hints: PublishedLoadBalancing = {
    strategy: lb.strategy,
    zoneAware: publish.trafficDistribution !== undefined,
  };
  if (slowStart) {
    const { windowMs, aggression, minWeightPercent } = slowStart;
    hints.slowStart = { windowMs, aggression, minWeightPercent };
  }
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
