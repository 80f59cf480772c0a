/**
 * ConfigMap claims. `publish.configMap.name` lets a policy name any ConfigMap
 * of its namespace: two services' policies naming the same one overwrote
 * each other's document tens of times a second, both Ready. The oldest
 * governing policy that names it (creationTimestamp, then name: the
 * rankPolicies order) keeps it; a later one publishes nothing for its
 * service and reports Conflict, and so do its instances.
 */
import { configMapName, type DiscoveryPolicy } from "../api/index.ts";
import type { Informer, KubeObject } from "../kube/index.ts";
import { byService, type PolicyObject } from "./context.ts";
import { governingPolicy, rankPolicies, serviceKey } from "./effective.ts";

/** Informer index of policies by `namespace/<ConfigMap they publish>`. */
export const byConfigMap = "configMap";

interface RawPolicy extends KubeObject {
  spec?: { service?: string; publish?: { configMap?: { enabled?: boolean; name?: string } } };
}

/** The index function: the ConfigMap a policy asks for (none when its ConfigMap is disabled). */
export function configMapIndex(p: RawPolicy): string[] {
  const service = p.spec?.service;
  const cm = p.spec?.publish?.configMap;
  if (!service || cm?.enabled === false) return [];
  return [`${p.metadata.namespace ?? ""}/${cm?.name ?? `${service}-roster`}`];
}

export interface ConfigMapClaim {
  /** The policy keeping the ConfigMap. */
  winner: DiscoveryPolicy;
  /** The governing policy loses: it publishes nothing. */
  lost: boolean;
  message: string;
}

/**
 * Whether `policy` (the governing policy of its service) may publish its
 * ConfigMap. `claimants` are the policies naming the same ConfigMap (from
 * the index), `governs` says whether one governs its service (a duplicate or
 * invalid policy claims nothing). Undefined: no ConfigMap, or no rival.
 */
export function configMapClaim(
  policy: DiscoveryPolicy,
  claimants: readonly DiscoveryPolicy[],
  governs: (p: DiscoveryPolicy) => boolean,
): ConfigMapClaim | undefined {
  if (!policy.spec.publish?.configMap.enabled) return undefined;
  const rivals = claimants.filter((p) => p.metadata.uid !== policy.metadata.uid && governs(p));
  if (rivals.length === 0) return undefined;
  const winner = rankPolicies([policy, ...rivals])[0]!;
  const name = configMapName(policy.spec.service, policy.spec.publish);
  if (winner.metadata.uid === policy.metadata.uid) {
    return { winner, lost: false, message: `ConfigMap ${name} is also named by a newer DiscoveryPolicy` };
  }
  return {
    winner,
    lost: true,
    message: `ConfigMap ${name} is published by DiscoveryPolicy ${winner.metadata.name} (service ${winner.spec.service}), which is older; Roster publishes nothing for service ${policy.spec.service} until publish.configMap.name differs`,
  };
}

/** The claim of a service's governing policy on its ConfigMap, judged against the policies in the cache. */
export function configMapClaimIn(
  policies: Informer<PolicyObject>,
  policy: DiscoveryPolicy | undefined,
): ConfigMapClaim | undefined {
  if (!policy?.spec.publish?.configMap.enabled) return undefined;
  const ns = policy.metadata.namespace ?? "";
  const claimants = policies.byIndex(
    byConfigMap,
    `${ns}/${configMapName(policy.spec.service, policy.spec.publish)}`,
  );
  if (claimants.length < 2) return undefined;
  const governs = (p: DiscoveryPolicy) =>
    governingPolicy(policies.byIndex(byService, serviceKey(ns, p.spec.service))).policy?.metadata.uid ===
    p.metadata.uid;
  return configMapClaim(policy, claimants, governs);
}

/**
 * The services whose claim may change with this policy: when it shares its
 * ConfigMap name with another policy, every claimant's service (its own too).
 */
export function rivalServices(policies: Informer<PolicyObject>, p: RawPolicy): string[] {
  const [cm] = configMapIndex(p);
  if (!cm) return [];
  const claimants = policies.byIndex(byConfigMap, cm);
  if (!claimants.some((c) => c.metadata.uid !== p.metadata.uid)) return [];
  const ns = p.metadata.namespace ?? "";
  return [
    ...new Set([p, ...claimants].flatMap((c) => (c.spec?.service ? [serviceKey(ns, c.spec.service)] : []))),
  ];
}
