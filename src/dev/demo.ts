/**
 * The demo behind `make run` / `roster dev`: real backends and the
 * manifests that register them, in one of two places:
 *
 * - on the data plane (`startDataPlaneDemoBackends`, as root): each backend
 *   is a test host at a real address of 198.18.0.0/15 (src/dev/testhosts.ts),
 *   registered and probed at that address; consumers in the node namespace
 *   reach them through CoreDNS and kube-proxy;
 * - on loopback (`startDemoBackends`, without root or network namespaces):
 *   the instances are published at documentation-range addresses
 *   (192.0.2.0/24: EndpointSlices refuse loopback) and probed at their
 *   loopback backends through the probe `host` override, the way a sidecar
 *   or tunnel in front of an instance would be. Nothing can route to them.
 *
 * Either way:
 * - service `shop`: five HTTP backends across zones a and b with weights;
 *   shop-4 fails (503), shop-5 flaps (healthy 8 s, failing 8 s); a policy
 *   with WeightedRoundRobin, trafficDistribution PreferSameZone (zone
 *   hints) and a 30% panic threshold;
 * - service `inventory`: a gRPC backend (grpc.health.v1) and a drained one.
 *
 * On the data plane the shop's backends also serve gRPC (grpc.health.v1) on
 * port `grpc` (9000), which the xDS consumer beside the DNS one calls
 * (an xDS endpoint takes the port named grpc, src/xds/resources.ts); its
 * health check stays the HTTP one.
 */
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  Server as GrpcServer,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { healthServiceDefinition, servingStatus } from "../health/grpc-probe.ts";
import type { KubeObject } from "../kube/index.ts";
import type { TestHosts } from "./testhosts.ts";

export const demoNamespace = "roster-demo";
/** The port of the shop's HTTP backends on the data plane (the Service's port). */
export const shopPort = 8080;
/** The port of the inventory's gRPC backends on the data plane. */
const inventoryPort = 9000;
/** The port of the shop's gRPC side on the data plane (the xDS consumer's). */
export const shopGrpcPort = 9000;
/** How long shop-5 stays healthy, then failing. */
const flapMs = 8000;

export interface DemoBackends {
  /** Manifests (ServiceInstance and DiscoveryPolicy objects) for the demo namespace. */
  manifests: KubeObject[];
  stop(): Promise<void>;
}

type Mode = "healthy" | "failing" | "flapping";

async function httpBackend(host: string, mode: Mode): Promise<{ server: HttpServer; port: number }> {
  const started = Date.now();
  const server = createServer((req, res) => {
    const up =
      mode === "healthy" || (mode === "flapping" && Math.floor((Date.now() - started) / flapMs) % 2 === 0);
    res.statusCode = req.url === "/healthz" && !up ? 503 : 200;
    res.end(up ? "ok\n" : "failing\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

async function grpcBackend(host: string): Promise<{ server: GrpcServer; port: number }> {
  const server = new GrpcServer();
  server.addService(healthServiceDefinition, {
    Check(_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<{ status: number }>) {
      callback(null, { status: servingStatus.SERVING });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port };
}

const manifest = (kind: string, name: string, spec: Record<string, unknown>): KubeObject =>
  ({
    apiVersion: "roster.dev/v1alpha1",
    kind,
    metadata: { name, namespace: demoNamespace },
    spec,
  }) as KubeObject;

const shop: { name: string; mode: Mode; zone: string; weight: number }[] = [
  { name: "shop-1", mode: "healthy", zone: "zone-a", weight: 300 },
  { name: "shop-2", mode: "healthy", zone: "zone-a", weight: 100 },
  { name: "shop-3", mode: "healthy", zone: "zone-b", weight: 100 },
  { name: "shop-4", mode: "failing", zone: "zone-b", weight: 100 },
  { name: "shop-5", mode: "flapping", zone: "zone-b", weight: 100 },
];
const inventory = ["inventory-1", "inventory-2"];

/** Where a demo backend listens: its published address and port, and the probe host override on loopback. */
interface Placement {
  address: string;
  port: number;
  probeHost?: string;
  /** The backend also serves gRPC here (published as port `grpc`). */
  grpcPort?: number;
}

/** The demo's DiscoveryPolicy and ServiceInstances, with the backends at these places (shop's, then inventory's). */
function demoManifests(shopAt: readonly Placement[], inventoryAt: readonly Placement[]): KubeObject[] {
  const manifests: KubeObject[] = [
    manifest("DiscoveryPolicy", "shop", {
      service: "shop",
      healthCheck: {
        probes: [{ type: "http", http: { port: "http", path: "/healthz" } }],
        interval: "2s",
        timeout: "500ms",
        failureThreshold: 2,
      },
      loadBalancing: { strategy: "WeightedRoundRobin" },
      publish: { trafficDistribution: "PreferSameZone", panicThreshold: 30 },
    }),
  ];
  for (const [i, b] of shop.entries()) {
    const at = shopAt[i]!;
    manifests.push(
      manifest("ServiceInstance", b.name, {
        service: "shop",
        address: at.address,
        ports: [
          { name: "http", port: at.port, appProtocol: "http" },
          ...(at.grpcPort ? [{ name: "grpc", port: at.grpcPort, appProtocol: "grpc" }] : []),
        ],
        zone: b.zone,
        weight: b.weight,
        tags: [b.mode === "healthy" ? "stable" : b.mode],
        // Merged over the policy's check: only the host differs.
        ...(at.probeHost
          ? { healthCheck: { probes: [{ type: "http", http: { host: at.probeHost } }] } }
          : {}),
      }),
    );
  }
  for (const [i, name] of inventory.entries()) {
    const at = inventoryAt[i]!;
    manifests.push(
      manifest("ServiceInstance", name, {
        service: "inventory",
        address: at.address,
        ports: [{ name: "grpc", port: at.port, appProtocol: "grpc" }],
        zone: i === 0 ? "zone-a" : "zone-b",
        drain: i === 1,
        healthCheck: {
          probes: [{ type: "grpc", grpc: { ...(at.probeHost ? { host: at.probeHost } : {}), port: "grpc" } }],
          interval: "2s",
          timeout: "500ms",
        },
      }),
    );
  }
  return manifests;
}

/** The loopback demo: servers on 127.0.0.x, published at 192.0.2.x, probed through the `host` override. */
export async function startDemoBackends(): Promise<DemoBackends> {
  const https: HttpServer[] = [];
  const shopAt: Placement[] = [];
  for (const [i, b] of shop.entries()) {
    const host = `127.0.0.${10 + i}`;
    const { server, port } = await httpBackend(host, b.mode);
    https.push(server);
    shopAt.push({ address: `192.0.2.${10 + i}`, port, probeHost: host });
  }
  const grpcs: GrpcServer[] = [];
  const inventoryAt: Placement[] = [];
  for (const i of inventory.keys()) {
    const host = `127.0.0.${20 + i}`;
    const { server, port } = await grpcBackend(host);
    grpcs.push(server);
    inventoryAt.push({ address: `192.0.2.${20 + i}`, port, probeHost: host });
  }
  return {
    manifests: demoManifests(shopAt, inventoryAt),
    async stop() {
      for (const s of https) s.closeAllConnections();
      await Promise.all(https.map((s) => new Promise((r) => s.close(r))));
      for (const s of grpcs) s.forceShutdown();
    },
  };
}

/**
 * The data-plane demo: one test host per backend (src/dev/backend.ts at
 * 198.18.x.y), registered and probed at its own address. The hosts are the
 * caller's: `hosts.close()` stops the backends and removes their namespaces.
 */
export async function startDataPlaneDemoBackends(hosts: TestHosts): Promise<DemoBackends> {
  const shopAt: Placement[] = [];
  for (const b of shop) {
    const host = await hosts.host();
    const backend = await host.start({ id: b.name, http: [shopPort], grpc: shopGrpcPort });
    if (b.mode === "failing") backend.setHealth("failing");
    if (b.mode === "flapping") backend.flap(flapMs);
    shopAt.push({ address: host.ipv4, port: shopPort, grpcPort: shopGrpcPort });
  }
  const inventoryAt: Placement[] = [];
  for (const name of inventory) {
    const host = await hosts.host();
    await host.start({ id: name, grpc: inventoryPort });
    inventoryAt.push({ address: host.ipv4, port: inventoryPort });
  }
  return { manifests: demoManifests(shopAt, inventoryAt), stop: () => hosts.close() };
}
