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
import type { LoadBalancing as PublishedLoadBalancing } from "../api/published.ts";
import { type KubeObject, resources, type WriteStep, withVersion } from "../kube/index.ts";
import {
  buildPublishedContent,
  buildService,
  computeDesired,
  type DesiredPublication,
  type InstanceInput,
  type InstancePort,
  isManagedByRoster,
  overBudgetMessage,
  planConfigMap,
  planEndpointSlices,
  serviceNeedsReplace,
  serviceOwnerReference,
} from "../publish/index.ts";
import type { ConfigMapObject, ServiceObject, SliceObject } from "./context.ts";
import type { EffectivePublish } from "./effective.ts";

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
  /** The largest ConfigMap document (default PUBLISHED_MAX_BYTES). */
  configMapBudgetBytes?: number;
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
}

export function planServicePublication(input: PublicationInput): ServicePlan {
  const { namespace, service, publish } = input;
  const desired = computeDesired(namespace, service, input.instances, {
    panicThreshold: publish.panicThreshold,
    trafficDistribution: publish.trafficDistribution,
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
  return { desired, replace, steps };
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
 */
export function planConfigMapPublication(
  input: PublicationInput,
  desired: DesiredPublication,
  owner: ServiceObject | undefined,
): { steps: WriteStep[]; revision?: number; stale?: string } {
  const { namespace, service, publish } = input;
  const type = resources.configMaps;
  const name = configMapName(service, publish);
  const previous = input.configMap;
  const steps: WriteStep[] = [];
  let revision: number | undefined;
  let stale: string | undefined;
  if (publish.configMap.enabled) {
    const plan = planConfigMap(
      {
        namespace,
        name,
        content: buildPublishedContent(desired, publishedHints(input.loadBalancing, publish)),
        previous,
        owner: owner?.metadata.uid ? serviceOwnerReference(owner) : undefined,
      },
      input.configMapBudgetBytes,
    );
    revision = plan.revision;
    if (plan.overBudget) stale = overBudgetMessage(name, plan.overBudget);
    if (plan.changed) {
      const body = plan.configMap as unknown as KubeObject;
      steps.push(
        previous ? { op: "apply", type, body: withVersion(body, previous) } : { op: "create", type, body },
      );
    }
  } else if (previous) {
    steps.push({ op: "delete", type, namespace, name, uid: previous.metadata.uid });
  }
  // A renamed ConfigMap (publish.configMap.name changed): the old one would
  // stay behind, frozen, for clients still reading it.
  for (const cm of input.configMaps) {
    if (cm.metadata.name !== name)
      steps.push({ op: "delete", type, namespace, name: cm.metadata.name!, uid: cm.metadata.uid });
  }
  return { steps, revision, stale };
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
