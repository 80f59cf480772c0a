/**
 * Envoy v3 xDS resources for one published service: a pure function of the
 * published document (src/api/published.ts), which the publisher builds from
 * the desired model (src/publish/desired.ts). Every decision (state, panic,
 * weight, strategy) is Roster's and is taken there; this module only says it
 * in xDS.
 *
 * Names: everything is named `<service>.<namespace>`, the host a proxyless
 * gRPC client dials (`xds:///web.shop`): the Listener, its
 * RouteConfiguration, the Cluster and its ClusterLoadAssignment.
 *
 * Endpoints: the port named `grpc` if the endpoint has one, else its first
 * port (ports are sorted by name). Localities are zones (no zone: the empty
 * locality). health_status: Ready and Panic are HEALTHY (in panic Roster
 * already decided to fail open, so Envoy's own panic threshold is set to 0),
 * Draining is DRAINING, Unhealthy and Pending are UNHEALTHY. Weight 0 endpoints
 * are left out (xDS weights are >= 1, and weight 0 takes no traffic).
 *
 * Strategies (clients take the first policy of load_balancing_policy they
 * support, gRFC A52):
 * - RoundRobin, WeightedRoundRobin: ROUND_ROBIN. Envoy weighs endpoints by
 *   load_balancing_weight. gRPC's round_robin ignores endpoint weights (it
 *   weighs localities), so for WeightedRoundRobin gRPC clients get ring_hash
 *   without a hash policy: a random hash per RPC, i.e. weighted random.
 * - LeastConnections: LEAST_REQUEST (Envoy weighted, gRPC unweighted).
 * - Random: Envoy `random` (weighted); gRPC falls back to ring_hash with a
 *   random hash per RPC (weighted).
 * - ConsistentHash Ring: RING_HASH (xxHash, minimum_ring_size = tableSize);
 *   Maglev: Envoy `maglev` (table_size), gRPC falls back to ring_hash. The
 *   route's hash_policy comes from the key source: Header (Envoy and gRPC),
 *   Cookie, QueryParameter, SourceIP (Envoy only). Caller keys have no xDS
 *   equivalent: no hash policy, so each RPC hashes at random.
 *   xDS clients hash with their own function (xxHash), so a key maps to
 *   possibly another endpoint than the TypeScript client picks; each family
 *   is consistent with itself.
 */
import type { EndpointState, PublishedEndpoint, PublishedEndpoints } from "../api/published.ts";
import { TYPE, type TypeUrl } from "./protos.ts";

/** Which client family a resource set is for: only WeightedRoundRobin clusters differ. */
export type ClientFamily = "envoy" | "grpc";

/** A resource in proto JSON form ("@type" + fields in proto spelling), ready to encode. */
export type XdsResource = { "@type": TypeUrl; name?: string; cluster_name?: string } & Record<
  string,
  unknown
>;

export interface ServiceResources {
  /** `<service>.<namespace>`, the name of all four resources. */
  name: string;
  namespace: string;
  listener: XdsResource;
  route: XdsResource;
  /** The Cluster per client family (equal objects for most strategies). */
  cluster: Record<ClientFamily, XdsResource>;
  endpoints: XdsResource;
}

const ANY = "type.googleapis.com/";
const ADS_SOURCE = { ads: {}, resource_api_version: "V3" };
/** gRPC's and Envoy's upper bound for ring sizes. */
const MAX_RING = 8_388_608;

export function resourceName(namespace: string, service: string): string {
  return `${service}.${namespace}`;
}

/** Splits `<service>.<namespace>`; undefined for a name that is not one. */
export function parseResourceName(name: string): { service: string; namespace: string } | undefined {
  const dot = name.indexOf(".");
  if (dot <= 0 || dot === name.length - 1 || name.indexOf(".", dot + 1) !== -1) return undefined;
  return { service: name.slice(0, dot), namespace: name.slice(dot + 1) };
}

export function healthStatus(state: EndpointState): "HEALTHY" | "UNHEALTHY" | "DRAINING" {
  if (state === "Ready" || state === "Panic") return "HEALTHY";
  return state === "Draining" ? "DRAINING" : "UNHEALTHY";
}

function servingPort(ep: PublishedEndpoint): number {
  return (ep.ports.find((p) => p.name === "grpc") ?? ep.ports[0]!).port;
}

function hashPolicy(doc: PublishedEndpoints): Record<string, unknown>[] {
  const ch = doc.loadBalancing.strategy === "ConsistentHash" ? doc.loadBalancing.consistentHash : undefined;
  if (!ch) return [];
  switch (ch.key.source) {
    case "Header":
      return [{ header: { header_name: ch.key.name!.toLowerCase() } }];
    case "Cookie":
      return [{ cookie: { name: ch.key.name } }];
    case "QueryParameter":
      return [{ query_parameter: { name: ch.key.name } }];
    case "SourceIP":
      return [{ connection_properties: { source_ip: true } }];
    case "Caller":
      return [];
  }
}

const policy = (type: string, config: Record<string, unknown> = {}) => ({
  typed_extension_config: { name: type, typed_config: { "@type": `${ANY}${type}`, ...config } },
});
const RING_HASH = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
const ringHash = (minimum: number) =>
  policy(RING_HASH, { hash_function: "XX_HASH", minimum_ring_size: { value: String(minimum) } });

/** The load-balancing part of a Cluster. */
function clusterPolicy(doc: PublishedEndpoints, family: ClientFamily): Record<string, unknown> {
  const lb = doc.loadBalancing;
  switch (lb.strategy) {
    case "RoundRobin":
      return { lb_policy: "ROUND_ROBIN" };
    case "WeightedRoundRobin":
      return family === "envoy"
        ? { lb_policy: "ROUND_ROBIN" }
        : { lb_policy: "RING_HASH", load_balancing_policy: { policies: [ringHash(1024)] } };
    case "LeastConnections":
      return { lb_policy: "LEAST_REQUEST" };
    case "Random":
      return {
        load_balancing_policy: {
          policies: [policy("envoy.extensions.load_balancing_policies.random.v3.Random"), ringHash(1024)],
        },
      };
    case "ConsistentHash": {
      const ch = lb.consistentHash!;
      const minimum = Math.min(ch.tableSize, MAX_RING);
      if (ch.algorithm === "Ring") {
        return {
          lb_policy: "RING_HASH",
          ring_hash_lb_config: { hash_function: "XX_HASH", minimum_ring_size: { value: String(minimum) } },
        };
      }
      // lb_policy must be one gRPC knows even when load_balancing_policy
      // overrides it (gRPC refuses a Cluster with MAGLEV there).
      return {
        lb_policy: "RING_HASH",
        ring_hash_lb_config: { hash_function: "XX_HASH", minimum_ring_size: { value: String(minimum) } },
        load_balancing_policy: {
          policies: [
            policy("envoy.extensions.load_balancing_policies.maglev.v3.Maglev", {
              table_size: { value: String(ch.tableSize) },
            }),
            ringHash(minimum),
          ],
        },
      };
    }
  }
}

export function buildServiceResources(doc: PublishedEndpoints): ServiceResources {
  const name = resourceName(doc.namespace, doc.service);
  const listener: XdsResource = {
    "@type": TYPE.listener,
    name,
    api_listener: {
      api_listener: {
        "@type": `${ANY}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
        stat_prefix: name,
        rds: { config_source: ADS_SOURCE, route_config_name: name },
        http_filters: [
          {
            name: "envoy.filters.http.router",
            typed_config: { "@type": `${ANY}envoy.extensions.filters.http.router.v3.Router` },
          },
        ],
      },
    },
  };
  const hash = hashPolicy(doc);
  const route: XdsResource = {
    "@type": TYPE.route,
    name,
    virtual_hosts: [
      {
        name,
        domains: ["*"],
        routes: [
          {
            match: { prefix: "" },
            route: { cluster: name, ...(hash.length ? { hash_policy: hash } : {}) },
          },
        ],
      },
    ],
  };
  const cluster = (family: ClientFamily): XdsResource => ({
    "@type": TYPE.cluster,
    name,
    type: "EDS",
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: name },
    connect_timeout: { seconds: "5" },
    // Roster decides panic (Panic endpoints are published HEALTHY).
    common_lb_config: { healthy_panic_threshold: { value: 0 } },
    ...clusterPolicy(doc, family),
  });

  const zones = new Map<string, PublishedEndpoint[]>();
  for (const ep of doc.endpoints) {
    if (ep.weight === 0) continue;
    const zone = ep.zone ?? "";
    const list = zones.get(zone);
    if (list) list.push(ep);
    else zones.set(zone, [ep]);
  }
  const endpoints: XdsResource = {
    "@type": TYPE.endpoints,
    cluster_name: name,
    endpoints: [...zones].map(([zone, eps]) => ({
      locality: zone ? { zone } : {},
      // The zone's routable capacity; at least 1 (xDS requires it) so that
      // its draining and unhealthy endpoints stay visible.
      load_balancing_weight: {
        value: Math.max(
          1,
          eps.reduce((s, e) => s + (e.ready ? e.weight : 0), 0),
        ),
      },
      lb_endpoints: eps.map((ep) => ({
        endpoint: { address: { socket_address: { address: ep.address, port_value: servingPort(ep) } } },
        health_status: healthStatus(ep.state),
        load_balancing_weight: { value: ep.weight },
        metadata: {
          filter_metadata: { "roster.dev": { fields: { instance: { string_value: ep.instance } } } },
        },
      })),
    })),
  };
  const grpcCluster = cluster("grpc");
  return {
    name,
    namespace: doc.namespace,
    listener,
    route,
    cluster: {
      grpc: grpcCluster,
      envoy: doc.loadBalancing.strategy === "WeightedRoundRobin" ? cluster("envoy") : grpcCluster,
    },
    endpoints,
  };
}
