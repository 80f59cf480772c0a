/**
 * DiscoveryPolicy: how the instances of one logical service are probed,
 * balanced and published. One policy per (namespace, service); sections
 * left out (healthCheck, loadBalancing, publish) come from the operator's
 * default policy, and so do all of them for a service without a policy.
 */
import { z } from "zod";
import {
  API_VERSION,
  Conditions,
  type CustomResourceType,
  Dns1035Label,
  deepFreeze,
  durationBetween,
  GROUP,
  HTTP_TOKEN,
  ObjectMeta,
  ObjectName,
  VERSION,
} from "./common.ts";
import { DatabaseRole, HealthCheck } from "./health.ts";
import { withRules } from "./rules.ts";

/** Kind, plural and short name of DiscoveryPolicy. */
export const DiscoveryPolicyResource: CustomResourceType = {
  group: GROUP,
  version: VERSION,
  namespaced: true,
  kind: "DiscoveryPolicy",
  plural: "discoverypolicies",
  singular: "discoverypolicy",
  shortNames: ["dp"],
};

// --- load balancing ------------------------------------------------------------

/** The load-balancing strategies the client library implements. */
export const LoadBalancingStrategy = z.enum([
  "RoundRobin",
  "WeightedRoundRobin",
  "LeastConnections",
  "Random",
  "ConsistentHash",
]);
export type LoadBalancingStrategy = z.output<typeof LoadBalancingStrategy>;

/** Where a consistent-hash key comes from. */
export const HashKeySource = z.enum(["Header", "Cookie", "QueryParameter", "SourceIP"]);
export type HashKeySource = z.output<typeof HashKeySource>;

/** The request attribute hashed by ConsistentHash. */
export const HashKey = withRules(
  z.strictObject({
    source: HashKeySource.describe("Header, Cookie, QueryParameter or SourceIP."),
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(
        HTTP_TOKEN,
        "must be a header, cookie or query parameter name (letters, digits and !#$%&'*+-.^_`|~)",
      )
      .optional()
      .describe(
        "Name of the header, cookie or query parameter; required for those sources, not allowed for SourceIP.",
      ),
  }),
  [
    {
      rule: "self.source == 'SourceIP' ? !has(self.name) : has(self.name)",
      message: "name is required for Header, Cookie and QueryParameter keys and not allowed for SourceIP",
      fieldPath: ".name",
      check: (k) => (k.source === "SourceIP" ? k.name === undefined : k.name !== undefined),
    },
  ],
).describe("What is hashed, e.g. {source: Header, name: x-user-id}.");
export type HashKey = z.output<typeof HashKey>;

/** Consistent-hash algorithms. */
export const HashAlgorithm = z.enum(["Ring", "Maglev"]);
export type HashAlgorithm = z.output<typeof HashAlgorithm>;

/** Options of the ConsistentHash strategy. */
export const ConsistentHash = z
  .strictObject({
    key: HashKey.prefault({ source: "SourceIP" }).describe("What is hashed; default the client's source IP."),
    algorithm: HashAlgorithm.default("Ring").describe(
      "Ring (ketama-style hash ring) or Maglev (lookup table).",
    ),
    tableSize: z
      .int()
      .min(16)
      .max(1048576)
      .optional()
      .describe(
        "Ring: minimum number of ring entries (default 1024). Maglev: lookup table size, rounded up to a prime (default 65537).",
      ),
  })
  .describe("Options of the ConsistentHash strategy.");
export type ConsistentHash = z.output<typeof ConsistentHash>;

/**
 * Slow start, as Envoy's slow_start_config: an instance that turns healthy
 * takes weight × max(minWeightPercent/100, (max(t, 1 s) / window)^(1/aggression))
 * for `window` after it turned healthy (t: the time since), then its whole
 * weight. Published once with the time the ramp started (endpoints.json
 * `slowStartSince`); clients compute the weight at pick time
 * (slowStartWeight in src/api/published.ts).
 */
export const SlowStart = z
  .strictObject({
    window: durationBetween("1s", "24h").describe(
      "How long an instance that turned healthy ramps up to its full weight (1s to 24h), like Envoy's slow_start_window.",
    ),
    aggression: z
      .number()
      .gt(0)
      .max(100)
      .default(1)
      .describe(
        "Shape of the ramp (greater than 0, at most 100; default 1, linear): the weight grows as (t/window)^(1/aggression), so above 1 it rises fast early, below 1 slowly. As Envoy's aggression.",
      ),
    minWeightPercent: z
      .number()
      .min(0)
      .max(100)
      .default(10)
      .describe(
        "The floor of the ramp, in percent of the weight (0-100, default 10, as Envoy's min_weight_percent).",
      ),
  })
  .describe("Ramp the weight of an instance that turns healthy over a window (Envoy's slow start).");
export type SlowStart = z.output<typeof SlowStart>;

/** The load-balancing hints published for clients. */
export const LoadBalancing = withRules(
  z.strictObject({
    strategy: LoadBalancingStrategy.default("RoundRobin").describe(
      "RoundRobin, WeightedRoundRobin (by spec.weight), LeastConnections, Random or ConsistentHash.",
    ),
    consistentHash: ConsistentHash.optional().describe(
      "Options of ConsistentHash; only with that strategy (defaults apply when absent).",
    ),
    slowStart: SlowStart.optional().describe(
      "Ramp up instances that turn healthy over a window (not with ConsistentHash: a changing weight would move keys). Off when absent.",
    ),
  }),
  [
    {
      rule: "!has(self.consistentHash) || self.strategy == 'ConsistentHash'",
      message: "consistentHash is only allowed when strategy is ConsistentHash",
      fieldPath: ".consistentHash",
      check: (lb) => lb.consistentHash === undefined || lb.strategy === "ConsistentHash",
    },
    {
      rule: "!has(self.slowStart) || self.strategy != 'ConsistentHash'",
      message:
        "slowStart does not apply to ConsistentHash (a ramping weight would move keys between instances)",
      fieldPath: ".slowStart",
      check: (lb) => lb.slowStart === undefined || lb.strategy !== "ConsistentHash",
    },
  ],
).describe("Load-balancing hints published for clients (the Roster client library applies them).");
export type LoadBalancing = z.output<typeof LoadBalancing>;

// --- publishing ----------------------------------------------------------------

/** The published ConfigMap. */
export const ConfigMapPublish = withRules(
  z.strictObject({
    enabled: z.boolean().default(true).describe("Publish the ConfigMap read by the Roster client library."),
    name: ObjectName.optional().describe(
      "ConfigMap name; default <service>-roster. Names ending in -part-<n> are reserved for the parts of a split document.",
    ),
  }),
  [
    {
      // A split document's parts are `<head>-part-<i>` (published-parts.ts): a
      // head of that shape would be another head's part, two writers on one object.
      rule: "!has(self.name) || !self.name.matches('-part-[0-9]+$')",
      message: "name must not end in -part-<n>: those names are the parts of a split ConfigMap document",
      fieldPath: ".name",
      check: (cm) => cm.name === undefined || !/-part-[0-9]+$/.test(cm.name),
    },
  ],
).describe("The ConfigMap with the endpoint set and load-balancing hints.");
export type ConfigMapPublish = z.output<typeof ConfigMapPublish>;

/**
 * Kubernetes' Service spec.trafficDistribution values that use zone hints.
 * PreferSameZone (GA in 1.35) is the newer name of PreferClose's behaviour;
 * both are passed through as written (the API server accepts both).
 */
export const TrafficDistribution = z.enum(["PreferSameZone", "PreferClose"]);
export type TrafficDistribution = z.output<typeof TrafficDistribution>;

/** What is published for the service. */
export const Publish = withRules(
  z.strictObject({
    service: z
      .boolean()
      .default(true)
      .describe(
        "Publish a selector-less Service named after the service. EndpointSlices belong to their Service, so it is published whenever endpointSlices is on.",
      ),
    endpointSlices: z
      .boolean()
      .default(true)
      .describe("Publish EndpointSlices holding the healthy endpoints."),
    configMap: ConfigMapPublish.prefault({}).describe("The ConfigMap for the Roster client library."),
    maxEndpointsPerSlice: z
      .int()
      .min(1)
      .max(1000)
      .default(100)
      .describe("Endpoints per EndpointSlice at most (1-1000)."),
    panicThreshold: z
      .int()
      .min(0)
      .max(100)
      .default(0)
      .describe(
        "Percent (0-100): when fewer than this share of the instances is healthy, publish all non-drained instances and set status.panic. 0 disables.",
      ),
    degradedWeightPercent: z
      .int()
      .min(0)
      .max(100)
      .default(50)
      .describe(
        "Percent (0-100) of its weight a degraded instance (healthy, but slow, rate-limited or with a certificate about to expire) is published with; it stays ready. 100 ignores degradation, 0 keeps it ready but takes it out of weighted traffic.",
      ),
    headless: z
      .boolean()
      .default(false)
      .describe(
        "Publish the Service headless (clusterIP: None): cluster DNS answers with the ready endpoint addresses instead of a ClusterIP, and kube-proxy does not route it. Changing it replaces the Service (a Service's clusterIP cannot change).",
      ),
    trafficDistribution: TrafficDistribution.optional().describe(
      "Sets the Service's spec.trafficDistribution and hints.forZones on ready endpoints (from spec.zone): PreferSameZone keeps traffic in the client's zone while the zone has ready endpoints; PreferClose is its older name. Hints are set only when every ready endpoint has a zone.",
    ),
    role: DatabaseRole.optional().describe(
      "Publish only the instances whose database server currently reports this role (primary or replica), as learnt by their postgres or redis probe (status.role). Instances with the other role or an unknown one (not probed yet, probe failing, no database probe) are left out of the EndpointSlices, the ConfigMap and xDS; a failover is followed within detection time. Absent: any role.",
    ),
    zoneHints: z
      .boolean()
      .optional()
      .describe(
        "Deprecated: use trafficDistribution. true means trafficDistribution PreferClose when trafficDistribution is not set.",
      ),
  }),
  [
    {
      rule: "!(has(self.zoneHints) && self.zoneHints) || self.endpointSlices",
      message: "zoneHints requires endpointSlices",
      fieldPath: ".zoneHints",
      check: (p) => !p.zoneHints || p.endpointSlices,
    },
    {
      rule: "!has(self.trafficDistribution) || self.endpointSlices",
      message: "trafficDistribution requires endpointSlices",
      fieldPath: ".trafficDistribution",
      check: (p) => p.trafficDistribution === undefined || p.endpointSlices,
    },
    {
      rule: "!self.headless || self.service || self.endpointSlices",
      message: "headless requires a published Service (service or endpointSlices)",
      fieldPath: ".headless",
      check: (p) => !p.headless || p.service || p.endpointSlices,
    },
  ],
).describe("What Roster publishes for the service.");
export type Publish = z.output<typeof Publish>;

/** The ConfigMap name used when publish.configMap.name is not set. */
export function configMapName(service: string, publish?: Pick<Publish, "configMap">): string {
  return publish?.configMap.name ?? `${service}-roster`;
}

// --- the policy ----------------------------------------------------------------

/** Desired state of a DiscoveryPolicy. */
export const DiscoveryPolicySpec = z
  .strictObject({
    service: Dns1035Label.describe(
      "The logical service this policy governs (DNS-1035 label). One policy per service and namespace; a second one gets a Conflict condition.",
    ),
    healthCheck: HealthCheck.optional().describe(
      "How instances are probed; the operator default when absent.",
    ),
    loadBalancing: LoadBalancing.optional().describe(
      "Load-balancing hints; the operator default when absent.",
    ),
    publish: Publish.optional().describe("What is published; the operator default when absent."),
    deregisterAfter: durationBetween("1m", "8760h")
      .optional()
      .describe(
        "Delete instances that stay unhealthy this long (1m to 8760h), like Consul's deregister_critical_service_after. Off when absent.",
      ),
  })
  .describe("Desired state of the policy.");
export type DiscoveryPolicySpec = z.output<typeof DiscoveryPolicySpec>;
/** A spec as written by a user (defaults not yet applied). */
export type DiscoveryPolicySpecInput = z.input<typeof DiscoveryPolicySpec>;

/** Observed state of a DiscoveryPolicy, written by Roster. */
export const DiscoveryPolicyStatus = z
  .strictObject({
    conditions: Conditions.optional().describe("Conditions: Ready, Conflict, ... (a map keyed by type)."),
    observedGeneration: z
      .int()
      .min(0)
      .meta({ format: "int64" })
      .optional()
      .describe("metadata.generation that this status describes."),
    totalInstances: z
      .int()
      .min(0)
      .max(2147483647)
      .optional()
      .describe("ServiceInstances of the service in this namespace."),
    healthyInstances: z.int().min(0).max(2147483647).optional().describe("Instances that are healthy."),
    drainingInstances: z.int().min(0).max(2147483647).optional().describe("Instances with spec.drain set."),
    publishedRevision: z
      .int()
      .min(0)
      .meta({ format: "int64" })
      .optional()
      .describe(
        "Revision of the last published endpoint set (the ConfigMap's revision); increases on every change.",
      ),
    panic: z
      .boolean()
      .optional()
      .describe(
        "True while fewer than publish.panicThreshold percent are healthy and all instances are published.",
      ),
  })
  .describe("Observed state of the policy, written by Roster.");
export type DiscoveryPolicyStatus = z.output<typeof DiscoveryPolicyStatus>;

/** A whole DiscoveryPolicy object. */
export const DiscoveryPolicy = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(DiscoveryPolicyResource.kind),
  metadata: ObjectMeta,
  spec: DiscoveryPolicySpec,
  status: DiscoveryPolicyStatus.optional(),
});
export type DiscoveryPolicy = z.output<typeof DiscoveryPolicy>;
/** A DiscoveryPolicy as written by a user (defaults not yet applied). */
export type DiscoveryPolicyInput = z.input<typeof DiscoveryPolicy>;

/** The load-balancing section with every default applied (RoundRobin). */
export const DEFAULT_LOAD_BALANCING: LoadBalancing = deepFreeze(LoadBalancing.parse({}));
/** The publish section with every default applied. */
export const DEFAULT_PUBLISH: Publish = deepFreeze(Publish.parse({}));
