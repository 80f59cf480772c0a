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
 * Draining is DRAINING, Unhealthy and Pending are UNHEALTHY. A degraded Ready
 * endpoint is DEGRADED for Envoy (which sends it traffic only when too few
 * endpoints are HEALTHY) and HEALTHY for gRPC clients, which drop DEGRADED
 * endpoints (grpc-go keeps only HEALTHY and UNKNOWN); both get its weight,
 * already reduced by Roster. Weight 0 endpoints
 * are left out (xDS weights are >= 1, and weight 0 takes no traffic).
 * Filter metadata `roster.dev`: `instance`, and `role` when the endpoint's
 * database role is known.
 *
 * Strategies. Envoy and gRPC support different policies (grpc-go: round_robin,
 * ring_hash, least_request; grpc-js: round_robin and ring_hash only, no
 * least_request, no random, no maglev), so the Cluster is built per client
 * family (a node whose user_agent_name is "envoy" is Envoy, any other is
 * gRPC):
 * - RoundRobin: ROUND_ROBIN for both. Envoy weighs endpoints by
 *   load_balancing_weight; gRPC's round_robin weighs localities only.
 * - WeightedRoundRobin: Envoy ROUND_ROBIN (weighted). gRPC: RING_HASH, which
 *   honours endpoint weights; with no hash policy every RPC hashes at random,
 *   so the spread is weighted random.
 * - LeastConnections: LEAST_REQUEST. gRPC gets the load_balancing_policy list
 *   [least_request, round_robin]: grpc-go takes least_request (unweighted),
 *   grpc-js, lacking it, round_robin.
 * - Random: Envoy `random` (weighted); gRPC RING_HASH with random hashes
 *   (weighted random).
 * - ConsistentHash: Ring is RING_HASH (xxHash, minimum_ring_size =
 *   tableSize) for both; Maglev is Envoy `maglev` (table_size) and RING_HASH
 *   for gRPC. The route's hash_policy comes from the key source: Header
 *   (Envoy and gRPC), Cookie, QueryParameter, SourceIP (Envoy only). Caller
 *   keys have no xDS equivalent: no hash policy, so each RPC hashes at random.
 *   xDS clients hash with their own function (xxHash), so a key maps to
 *   possibly another endpoint than the TypeScript client picks; each family
 *   is consistent with itself.
 *
 * Slow start (loadBalancing.slowStart): the Envoy Cluster of a ROUND_ROBIN
 * (RoundRobin, WeightedRoundRobin) or LEAST_REQUEST (LeastConnections)
 * strategy gets the same slow_start_config; Envoy ramps each endpoint from
 * when it sees it join (its own clock, not the published slowStartSince,
 * which xDS has no field for). Envoy has no slow start for its random
 * policy, and proxyless gRPC clients have none at all: their Clusters carry
 * no slow start and their endpoints take their full weight at once.
 */
import type {
  EndpointState,
  PublishedEndpoint,
  PublishedEndpoints,
  PublishedSlowStart,
} from "../api/published.ts";
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
  /** The ClusterLoadAssignment per client family (equal objects unless an endpoint is degraded). */
  endpoints: Record<ClientFamily, XdsResource>;
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

export function healthStatus(
  state: EndpointState,
  degraded = false,
  family: ClientFamily = "envoy",
): "HEALTHY" | "UNHEALTHY" | "DRAINING" | "DEGRADED" {
  if (state === "Ready" && degraded && family === "envoy") return "DEGRADED";
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

const ringHashCluster = (minimum: number) => ({
  lb_policy: "RING_HASH",
  ring_hash_lb_config: { hash_function: "XX_HASH", minimum_ring_size: { value: String(minimum) } },
});

/** Envoy's Cluster.SlowStartConfig for the published slow start. */
function slowStartConfig(ss: PublishedSlowStart): Record<string, unknown> {
  const seconds = Math.floor(ss.windowMs / 1000);
  const nanos = (ss.windowMs % 1000) * 1_000_000;
  return {
    slow_start_window: { seconds: String(seconds), ...(nanos ? { nanos } : {}) },
    // runtime_key is required; no runtime sets it, so default_value applies.
    aggression: { default_value: ss.aggression, runtime_key: "roster.slow_start.aggression" },
    min_weight_percent: { value: ss.minWeightPercent },
  };
}

/** The load-balancing part of a Cluster, per client family. */
function clusterPolicy(doc: PublishedEndpoints, family: ClientFamily): Record<string, unknown> {
  const lb = doc.loadBalancing;
  const envoy = family === "envoy";
  const slowStart = envoy && lb.slowStart ? { slow_start_config: slowStartConfig(lb.slowStart) } : undefined;
  switch (lb.strategy) {
    case "RoundRobin":
      return slowStart
        ? { lb_policy: "ROUND_ROBIN", round_robin_lb_config: slowStart }
        : { lb_policy: "ROUND_ROBIN" };
    case "WeightedRoundRobin":
      if (!envoy) return ringHashCluster(1024);
      return slowStart
        ? { lb_policy: "ROUND_ROBIN", round_robin_lb_config: slowStart }
        : { lb_policy: "ROUND_ROBIN" };
    case "LeastConnections":
      // grpc-js has no least_request: it takes the list's round_robin.
      return envoy
        ? { lb_policy: "LEAST_REQUEST", ...(slowStart ? { least_request_lb_config: slowStart } : {}) }
        : {
            lb_policy: "LEAST_REQUEST",
            load_balancing_policy: {
              policies: [
                policy("envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"),
                policy("envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"),
              ],
            },
          };
    case "Random":
      return envoy
        ? {
            load_balancing_policy: {
              policies: [policy("envoy.extensions.load_balancing_policies.random.v3.Random")],
            },
          }
        : ringHashCluster(1024);
    case "ConsistentHash": {
      const ch = lb.consistentHash!;
      const minimum = Math.min(ch.tableSize, MAX_RING);
      if (ch.algorithm === "Ring" || !envoy) return ringHashCluster(minimum);
      return {
        load_balancing_policy: {
          policies: [
            policy("envoy.extensions.load_balancing_policies.maglev.v3.Maglev", {
              table_size: { value: String(ch.tableSize) },
            }),
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
  const assignment = (family: ClientFamily): XdsResource => ({
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
        health_status: healthStatus(ep.state, ep.degraded, family),
        load_balancing_weight: { value: ep.weight },
        metadata: {
          filter_metadata: {
            "roster.dev": {
              fields: {
                instance: { string_value: ep.instance },
                // The database role (publish.role, status.role), for route matching on metadata.
                ...(ep.role ? { role: { string_value: ep.role } } : {}),
              },
            },
          },
        },
      })),
    })),
  });
  const grpcEndpoints = assignment("grpc");
  const degraded = doc.endpoints.some((ep) => ep.degraded && ep.state === "Ready");
  const grpcCluster = cluster("grpc");
  const envoyCluster = cluster("envoy");
  return {
    name,
    namespace: doc.namespace,
    listener,
    route,
    // One object when they agree, so the server encodes it once.
    cluster: {
      grpc: grpcCluster,
      envoy: JSON.stringify(envoyCluster) === JSON.stringify(grpcCluster) ? grpcCluster : envoyCluster,
    },
    endpoints: { grpc: grpcEndpoints, envoy: degraded ? assignment("envoy") : grpcEndpoints },
  };
}
