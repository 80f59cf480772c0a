/**
 * Publication policy: which addresses Roster may publish as endpoints. A
 * probe `host` override lets an instance be probed at one address and
 * published at another; without this check an instance could publish the
 * cloud metadata address, a denied range, or another namespace's pods and
 * Services as ready endpoints of a Service (the EndpointSlice write power
 * Kubernetes took from namespace editors after CVE-2021-25740).
 *
 * An address is published only if (1) the destination policy (the probe
 * SSRF guard, src/health/policy.ts) allows it, and (2) it is outside the
 * cluster's pod and Service networks, unless the namespace is allowed that
 * range (`publishing.addresses.allow`).
 */
import { type DestinationPolicy, destinationPolicy, type PolicyDecision } from "../health/policy.ts";

export interface PublicationConfig {
  /** The cluster's pod and Service CIDRs: not published by default. */
  clusterNetworks: readonly string[];
  /** Per namespace: CIDRs inside the cluster networks it may publish anyway. */
  allow: Readonly<Record<string, readonly string[]>>;
}

export type PublicationDecision = PolicyDecision & {
  /** Which rule refused: the destination policy, or the cluster networks. */
  rule?: "destination" | "cluster";
};

export interface PublicationPolicy {
  check(namespace: string, ip: string): PublicationDecision;
}

export function publicationPolicy(
  destinations: DestinationPolicy,
  config: PublicationConfig,
): PublicationPolicy {
  // The destination policy's range matching, reused: a deny list of the cluster networks.
  const cluster = destinationPolicy({ deny: [...config.clusterNetworks], allowLoopback: true });
  const allowed = new Map(
    Object.entries(config.allow)
      .filter(([, cidrs]) => cidrs.length > 0)
      .map(([ns, cidrs]) => [ns, destinationPolicy({ deny: [], allow: [...cidrs], allowLoopback: true })]),
  );
  return {
    check(namespace, ip) {
      const d = destinations.check(ip);
      if (!d.allowed)
        return { allowed: false, rule: "destination", message: `${d.message} (destination policy)` };
      const c = cluster.check(ip);
      if (c.allowed || allowed.get(namespace)?.check(ip).allowed) return { allowed: true };
      return {
        allowed: false,
        rule: "cluster",
        message: `${ip} is inside the cluster network (${c.message.replace(/^.* in denied range /, "")}); Roster does not publish pod or Service addresses unless publishing.addresses.allow lists them for namespace ${namespace}`,
      };
    },
  };
}
