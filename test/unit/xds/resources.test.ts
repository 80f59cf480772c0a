/** The pure xDS resource builder: names, localities, health, weights and the strategy mapping. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  isRoutableState,
  type LoadBalancing,
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoint,
  type PublishedEndpoints,
} from "../../../src/api/published.ts";
import { adsServiceDefinition, TYPE } from "../../../src/xds/protos.ts";
import {
  buildServiceResources,
  healthStatus,
  parseResourceName,
  resourceName,
} from "../../../src/xds/resources.ts";

function ep(
  instance: string,
  address: string,
  extra: Partial<PublishedEndpoint> & { state?: PublishedEndpoint["state"] } = {},
): PublishedEndpoint {
  const state = extra.state ?? "Ready";
  return {
    instance,
    address,
    family: address.includes(":") ? "IPv6" : "IPv4",
    ports: [
      { name: "grpc", port: 9000, protocol: "TCP" },
      { name: "http", port: 8080, protocol: "TCP" },
    ],
    weight: 100,
    tags: [],
    metadata: {},
    ready: isRoutableState(state),
    healthy: state === "Ready",
    ...extra,
    state,
  };
}

function doc(
  loadBalancing: LoadBalancing,
  endpoints: PublishedEndpoint[],
  panic = false,
): PublishedEndpoints {
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision: 3,
    namespace: "shop",
    service: "cart",
    panic,
    loadBalancing,
    endpoints,
  };
}

const RR: LoadBalancing = { strategy: "RoundRobin", zoneAware: false };
type Obj = Record<string, unknown>;
const at = (o: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], o);

describe("xDS resources", () => {
  test("names are <service>.<namespace>, parsed back; other names are refused", () => {
    assert.equal(resourceName("shop", "cart"), "cart.shop");
    assert.deepEqual(parseResourceName("cart.shop"), { service: "cart", namespace: "shop" });
    for (const bad of ["cart", ".shop", "cart.", "a.b.c", ""])
      assert.equal(parseResourceName(bad), undefined);
    const r = buildServiceResources(doc(RR, [ep("a", "198.18.0.1")]));
    assert.equal(r.listener.name, "cart.shop");
    assert.equal(r.route.name, "cart.shop");
    assert.equal(r.cluster.grpc.name, "cart.shop");
    assert.equal(r.endpoints.grpc.cluster_name, "cart.shop");
    assert.equal(at(r.listener, "api_listener", "api_listener", "rds", "route_config_name"), "cart.shop");
    assert.equal(at(r.route, "virtual_hosts", 0, "routes", 0, "route", "cluster"), "cart.shop");
    assert.equal(at(r.cluster.grpc, "eds_cluster_config", "service_name"), "cart.shop");
    assert.deepEqual(at(r.cluster.grpc, "common_lb_config"), { healthy_panic_threshold: { value: 0 } });
  });

  test("health_status follows the published state; panic endpoints are HEALTHY", () => {
    assert.equal(healthStatus("Ready"), "HEALTHY");
    assert.equal(healthStatus("Panic"), "HEALTHY");
    assert.equal(healthStatus("Draining"), "DRAINING");
    assert.equal(healthStatus("Unhealthy"), "UNHEALTHY");
    assert.equal(healthStatus("Pending"), "UNHEALTHY");
    const r = buildServiceResources(
      doc(RR, [ep("a", "198.18.0.1", { state: "Panic", healthy: false }), ep("b", "198.18.0.2")], true),
    );
    const lbs = at(r.endpoints.grpc, "endpoints", 0, "lb_endpoints") as Obj[];
    assert.deepEqual(
      lbs.map((l) => l.health_status),
      ["HEALTHY", "HEALTHY"],
    );
  });

  test("localities by zone with the ready weight; endpoint weights; weight 0 left out; the grpc port", () => {
    const r = buildServiceResources(
      doc(RR, [
        ep("a", "198.18.0.1", { zone: "z1", weight: 300 }),
        ep("b", "198.18.0.2", { zone: "z1", weight: 100, state: "Draining", healthy: true }),
        ep("c", "198.18.0.3", { zone: "z2", state: "Unhealthy", healthy: false }),
        ep("d", "fd00::4", { weight: 0 }),
        ep("e", "198.18.0.5", { ports: [{ name: "http", port: 8080, protocol: "TCP" }] }),
      ]),
    );
    const localities = at(r.endpoints.grpc, "endpoints") as Obj[];
    assert.deepEqual(
      localities.map((l) => [l.locality, l.load_balancing_weight]),
      [
        [{ zone: "z1" }, { value: 300 }],
        [{ zone: "z2" }, { value: 1 }],
        [{}, { value: 100 }],
      ],
    );
    const z1 = localities[0]!.lb_endpoints as Obj[];
    assert.deepEqual(
      z1.map((l) => [
        at(l, "endpoint", "address", "socket_address"),
        l.health_status,
        l.load_balancing_weight,
      ]),
      [
        [{ address: "198.18.0.1", port_value: 9000 }, "HEALTHY", { value: 300 }],
        [{ address: "198.18.0.2", port_value: 9000 }, "DRAINING", { value: 100 }],
      ],
    );
    assert.equal(at(localities[1], "lb_endpoints", 0, "health_status"), "UNHEALTHY");
    // No grpc port: the first port.
    assert.equal(
      at(localities[2], "lb_endpoints", 0, "endpoint", "address", "socket_address", "port_value"),
      8080,
    );
    assert.ok(!JSON.stringify(r.endpoints.grpc).includes("fd00::4"), "weight 0 is not published over xDS");
  });

  test("strategy mapping", () => {
    const policies = (c: unknown) =>
      ((at(c, "load_balancing_policy", "policies") as Obj[] | undefined) ?? []).map((p) =>
        String(at(p, "typed_extension_config", "typed_config", "@type"))
          .split(".")
          .at(-1),
      );
    const rr = buildServiceResources(doc(RR, [])).cluster;
    assert.equal(rr.grpc.lb_policy, "ROUND_ROBIN");
    assert.equal(rr.envoy, rr.grpc, "one object when both families agree");

    const wrr = buildServiceResources(doc({ strategy: "WeightedRoundRobin", zoneAware: false }, [])).cluster;
    assert.equal(wrr.envoy.lb_policy, "ROUND_ROBIN");
    assert.equal(wrr.grpc.lb_policy, "RING_HASH", "gRPC gets weighted random through ring_hash");
    assert.deepEqual(policies(wrr.grpc), []);

    const lc = buildServiceResources(doc({ strategy: "LeastConnections", zoneAware: false }, [])).cluster;
    assert.equal(lc.envoy.lb_policy, "LEAST_REQUEST");
    assert.deepEqual(policies(lc.envoy), []);
    assert.deepEqual(policies(lc.grpc), ["LeastRequest", "RoundRobin"], "grpc-js falls back to round_robin");

    const random = buildServiceResources(doc({ strategy: "Random", zoneAware: false }, [])).cluster;
    assert.deepEqual(policies(random.envoy), ["Random"]);
    assert.equal(random.grpc.lb_policy, "RING_HASH");

    const ring = buildServiceResources(
      doc(
        {
          strategy: "ConsistentHash",
          zoneAware: false,
          consistentHash: { algorithm: "Ring", tableSize: 4096, key: { source: "Header", name: "X-User" } },
        },
        [],
      ),
    );
    assert.equal(ring.cluster.grpc.lb_policy, "RING_HASH");
    assert.equal(ring.cluster.envoy, ring.cluster.grpc);
    assert.deepEqual(at(ring.cluster.grpc, "ring_hash_lb_config"), {
      hash_function: "XX_HASH",
      minimum_ring_size: { value: "4096" },
    });
    assert.deepEqual(at(ring.route, "virtual_hosts", 0, "routes", 0, "route", "hash_policy"), [
      { header: { header_name: "x-user" } },
    ]);

    const maglev = buildServiceResources(
      doc(
        {
          strategy: "ConsistentHash",
          zoneAware: false,
          consistentHash: { algorithm: "Maglev", tableSize: 65537, key: { source: "Cookie", name: "sid" } },
        },
        [],
      ),
    );
    assert.equal(maglev.cluster.grpc.lb_policy, "RING_HASH", "gRPC has no Maglev");
    assert.deepEqual(policies(maglev.cluster.envoy), ["Maglev"]);
    assert.deepEqual(at(maglev.route, "virtual_hosts", 0, "routes", 0, "route", "hash_policy"), [
      { cookie: { name: "sid" } },
    ]);
    const caller = buildServiceResources(
      doc(
        {
          strategy: "ConsistentHash",
          zoneAware: false,
          consistentHash: { algorithm: "Ring", tableSize: 1024, key: { source: "Caller" } },
        },
        [],
      ),
    );
    assert.equal(at(caller.route, "virtual_hosts", 0, "routes", 0, "route", "hash_policy"), undefined);
  });

  test("every resource encodes with the shipped Envoy protos and decodes back", () => {
    const r = buildServiceResources(
      doc(
        {
          strategy: "ConsistentHash",
          zoneAware: true,
          consistentHash: {
            algorithm: "Maglev",
            tableSize: 65537,
            key: { source: "Header", name: "x-user" },
          },
        },
        [ep("a", "198.18.0.1", { zone: "z1" }), ep("b", "2001:db8::2", { state: "Draining" })],
      ),
    );
    const method = adsServiceDefinition().StreamAggregatedResources!;
    const resources = [r.listener, r.route, r.cluster.envoy, r.endpoints.envoy];
    const bytes = method.responseSerialize({
      version_info: "1",
      type_url: TYPE.cluster,
      nonce: "1",
      resources,
    });
    const back = method.responseDeserialize(bytes) as { resources: Obj[] };
    assert.deepEqual(
      back.resources.map((x) => x["@type"]),
      [TYPE.listener, TYPE.route, TYPE.cluster, TYPE.endpoints],
    );
    assert.equal(
      at(
        back.resources[2],
        "load_balancing_policy",
        "policies",
        0,
        "typed_extension_config",
        "typed_config",
        "table_size",
        "value",
      ),
      "65537",
    );
    assert.equal(at(back.resources[3], "endpoints", 1, "lb_endpoints", 0, "health_status"), "DRAINING");
  });
});
