/**
 * The demo behind `make run` / `roster dev`: real backends on loopback and
 * the manifests that register them. The instances are published at
 * documentation-range addresses (192.0.2.0/24: EndpointSlices refuse
 * loopback) and probed at their loopback backends through the probe `host`
 * override, the way a sidecar or tunnel in front of an instance would be.
 *
 * - service `shop`: five HTTP backends across zones a and b with weights;
 *   shop-4 fails (503), shop-5 flaps (healthy 8 s, failing 8 s); a policy
 *   with WeightedRoundRobin, zone hints and a 30% panic threshold;
 * - service `inventory`: a gRPC backend (grpc.health.v1) and a drained one.
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

export const demoNamespace = "roster-demo";

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
      mode === "healthy" || (mode === "flapping" && Math.floor((Date.now() - started) / 8000) % 2 === 0);
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

export async function startDemoBackends(): Promise<DemoBackends> {
  const shop: { name: string; mode: Mode; zone: string; weight: number }[] = [
    { name: "shop-1", mode: "healthy", zone: "zone-a", weight: 300 },
    { name: "shop-2", mode: "healthy", zone: "zone-a", weight: 100 },
    { name: "shop-3", mode: "healthy", zone: "zone-b", weight: 100 },
    { name: "shop-4", mode: "failing", zone: "zone-b", weight: 100 },
    { name: "shop-5", mode: "flapping", zone: "zone-b", weight: 100 },
  ];
  const https: HttpServer[] = [];
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
      publish: { zoneHints: true, panicThreshold: 30 },
    }),
  ];
  for (const [i, b] of shop.entries()) {
    const host = `127.0.0.${10 + i}`;
    const { server, port } = await httpBackend(host, b.mode);
    https.push(server);
    manifests.push(
      manifest("ServiceInstance", b.name, {
        service: "shop",
        address: `192.0.2.${10 + i}`,
        ports: [{ name: "http", port, appProtocol: "http" }],
        zone: b.zone,
        weight: b.weight,
        tags: [b.mode === "healthy" ? "stable" : b.mode],
        // Merged over the policy's check: only the host differs.
        healthCheck: { probes: [{ type: "http", http: { host } }] },
      }),
    );
  }
  const grpcs: GrpcServer[] = [];
  for (const [i, name] of ["inventory-1", "inventory-2"].entries()) {
    const host = `127.0.0.${20 + i}`;
    const { server, port } = await grpcBackend(host);
    grpcs.push(server);
    manifests.push(
      manifest("ServiceInstance", name, {
        service: "inventory",
        address: `192.0.2.${20 + i}`,
        ports: [{ name: "grpc", port, appProtocol: "grpc" }],
        zone: i === 0 ? "zone-a" : "zone-b",
        drain: i === 1,
        healthCheck: {
          probes: [{ type: "grpc", grpc: { host, port: "grpc" } }],
          interval: "2s",
          timeout: "500ms",
        },
      }),
    );
  }
  return {
    manifests,
    async stop() {
      for (const s of https) s.closeAllConnections();
      await Promise.all(https.map((s) => new Promise((r) => s.close(r))));
      for (const s of grpcs) s.forceShutdown();
    },
  };
}
