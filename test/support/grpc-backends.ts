/**
 * Real gRPC backends for the xDS tests: grpc-js servers implementing
 * grpc.health.v1.Health, one per 127.0.0.N address. The operator's grpc probe
 * asks them about the whole server (service ""); xDS clients ask about
 * CLIENT_SERVICE, which each backend counts, so a test sees which backends
 * really answered. `healthy` switches SERVING / NOT_SERVING for both.
 */
import type { TestContext } from "node:test";
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  healthServiceDefinition,
  servingStatus,
} from "../../src/health/grpc-probe.ts";

/** The health service name the xDS test clients send (bin/roster-xds-client's default). */
export const CLIENT_SERVICE = "roster.xds-client";

export interface GrpcBackend {
  host: string;
  port: number;
  /** `host:port`, as the client reports the peer. */
  address: string;
  healthy: boolean;
  /** Client RPCs answered. */
  served: number;
}

export async function grpcBackends(t: TestContext, count: number, firstHost = 11): Promise<GrpcBackend[]> {
  const out: GrpcBackend[] = [];
  for (let i = 0; i < count; i++) {
    const host = `127.0.0.${firstHost + i}`;
    const backend: GrpcBackend = { host, port: 0, address: "", healthy: true, served: 0 };
    const server = new Server();
    server.addService(healthServiceDefinition, {
      Check(
        call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
        cb: sendUnaryData<HealthCheckResponse>,
      ) {
        if (call.request.service === CLIENT_SERVICE) backend.served++;
        cb(null, { status: backend.healthy ? servingStatus.SERVING : servingStatus.NOT_SERVING });
      },
    });
    backend.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:0`, ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    backend.address = `${host}:${backend.port}`;
    t.after(() => server.forceShutdown());
    out.push(backend);
  }
  return out;
}
