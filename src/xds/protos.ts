/**
 * The Envoy v3 xDS protos, loaded from the files @grpc/grpc-js-xds ships
 * (never copied into this repository): the ADS service and every message
 * Roster sends inside a google.protobuf.Any. Loaded once, lazily.
 *
 * Field names keep their proto spelling (snake_case), so resources are
 * written as in Envoy's documentation; an Any is an object with "@type" and
 * the message's fields, which protobufjs encodes with the named type.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { loadPackageDefinition, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";

export const TYPE = {
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoints: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
} as const;
export type TypeUrl = (typeof TYPE)[keyof typeof TYPE];
export const TYPE_URLS: readonly TypeUrl[] = Object.values(TYPE);

const FILES = [
  "envoy/service/discovery/v3/ads.proto",
  "envoy/config/listener/v3/listener.proto",
  "envoy/config/route/v3/route.proto",
  "envoy/config/cluster/v3/cluster.proto",
  "envoy/config/endpoint/v3/endpoint.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto",
  "envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto",
  "envoy/extensions/load_balancing_policies/random/v3/random.proto",
  "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto",
  "envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto",
];

let loaded: PackageDefinition | undefined;
let ads: ServiceDefinition | undefined;

function protoDirs(): string[] {
  const root = dirname(createRequire(import.meta.url).resolve("@grpc/grpc-js-xds/package.json"));
  return ["envoy-api", "googleapis", "protoc-gen-validate", "xds"].map((d) => join(root, "deps", d));
}

export function xdsPackageDefinition(): PackageDefinition {
  loaded ??= loadSync(FILES, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
    json: true,
    includeDirs: protoDirs(),
  });
  return loaded;
}

/** The AggregatedDiscoveryService definition for grpc-js Server.addService. */
export function adsServiceDefinition(): ServiceDefinition {
  if (ads) return ads;
  const grpcObject = loadPackageDefinition(xdsPackageDefinition()) as unknown as {
    envoy: {
      service: { discovery: { v3: { AggregatedDiscoveryService: { service: ServiceDefinition } } } };
    };
  };
  ads = grpcObject.envoy.service.discovery.v3.AggregatedDiscoveryService.service;
  return ads;
}

/** A resource already encoded as a google.protobuf.Any: encoded once, sent to every client as bytes. */
export interface EncodedAny {
  type_url: string;
  value: Buffer;
}

function readVarint(buf: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[at++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, at];
    shift += 7;
  }
}

/**
 * Encodes one resource (proto JSON with "@type") to an Any. proto-loader
 * exposes serializers per RPC message only, so the resource is serialized
 * as the single field of a DiscoveryResponse (field 2, `resources`) and the
 * Any's two fields (type_url = 1, value = 2) are read back from those bytes.
 */
export function encodeAny(resource: { "@type": string }): EncodedAny {
  const bytes = adsServiceDefinition().StreamAggregatedResources!.responseSerialize({
    resources: [resource],
  });
  let [, at] = readVarint(bytes, 1); // skip tag 0x12 and the Any's length
  let typeUrl = "";
  let value = Buffer.alloc(0);
  while (at < bytes.length) {
    const tag = bytes[at++]!;
    const [len, start] = readVarint(bytes, at);
    const field = bytes.subarray(start, start + len);
    if (tag === 0x0a) typeUrl = field.toString("utf8");
    else if (tag === 0x12) value = Buffer.from(field);
    at = start + len;
  }
  return { type_url: typeUrl, value };
}
