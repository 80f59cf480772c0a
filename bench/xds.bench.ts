/**
 * Push latency (verdict to pushed), the whole path: an instance's health
 * check starts failing (or recovers); the probe that crosses the threshold
 * changes its verdict; the operator publishes the ConfigMap; every replica's
 * cache sees it; the xDS server pushes the ClusterLoadAssignment; each of
 * 100 connected ADS clients receives the one in which that endpoint's
 * health_status flipped. Latency = the client's Date.now() on receipt − the
 * engine's verdict time (`engine.summary(id).since`, the same clock), so
 * detection (threshold × interval) is not in it; it is the figure the
 * operator's `roster_xds_push_latency_seconds` histogram measures, seen from
 * the client.
 *
 * The operator runs in a process of its own (`bench/operator-child.ts`) with
 * xDS on; the sandbox, the HTTP probe targets and the clients are the
 * bench's. The clients are real grpc-js ADS streams on loopback that decode
 * every response with the real protos (their decoding shares the 2 cores
 * with the operator and the API server, so the figures are pessimistic).
 * Flips are sequential: one instance fails, every client sees it, it
 * recovers, every client sees it, then the next.
 *
 * Sizes: S services × M endpoints, every client subscribed to every
 * service's assignment: `--services 1 --instances 1000` (default) and
 * `--services 10 --instances 1000` (10,000 endpoints; one service of 10,000
 * does not fit the ConfigMap's 1 MB budget and is published stale, so the
 * xDS server alone at that size is bench/xds-server.bench.ts).
 *
 *   node bench/xds.bench.ts [--services 1] [--instances 1000] [--clients 100] [--flips 10]
 */
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { type ClientDuplexStream, credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { adsServiceDefinition, TYPE } from "../src/xds/protos.ts";
import {
  benchAddress,
  createNamespace,
  startCluster,
  startOperatorProcess,
  startTargets,
  until,
} from "./lib.ts";
import { type Figure, percentile, report } from "./report.ts";
import { createInstances, operatorDefaults } from "./setup.ts";

const { values } = parseArgs({
  options: {
    services: { type: "string", default: "1" },
    instances: { type: "string", default: "1000" },
    clients: { type: "string", default: "100" },
    flips: { type: "string", default: "10" },
  },
});
const S = Number(values.services);
const M = Number(values.instances);
const CLIENTS = Number(values.clients);
const FLIPS = Number(values.flips);
const NS = "bench";
const svc = (s: number) => `svc-${String(s).padStart(3, "0")}`;
const clusterName = (s: number) => `${svc(s)}.${NS}`;

interface Assignment {
  cluster_name?: string;
  endpoints?: {
    lb_endpoints?: {
      endpoint?: { address?: { socket_address?: { address?: string } } };
      health_status?: string;
    }[];
  }[];
}
interface Response {
  type_url: string;
  resources?: Assignment[];
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const cluster = await startCluster();
const targets = await startTargets(20, "127.0.2");
const op = await startOperatorProcess();
const streams: ClientDuplexStream<unknown, Response>[] = [];
try {
  await createNamespace(cluster.kc, NS);
  await createInstances(cluster.kc, NS, S * M, {
    service: (i) => svc(Math.floor(i / M)),
    targets,
    interval: "1s",
    timeout: "500ms",
    failureThreshold: 1,
    jitter: 10,
  });
  const xdsPort = await freePort();
  await op.start({
    ...operatorDefaults,
    kubeconfig: cluster.sandbox.kubeconfigPath,
    namespaces: [NS],
    xdsPort,
  });

  /** Per client: address -> (health_status, when it was last seen changed). */
  const health: Map<string, { status: string; at: number }>[] = [];
  const Ads = makeGenericClientConstructor(adsServiceDefinition(), "ADS");
  for (let c = 0; c < CLIENTS; c++) {
    const view = new Map<string, { status: string; at: number }>();
    health.push(view);
    const client = new Ads(`127.0.0.1:${xdsPort}`, credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
    }) as unknown as { StreamAggregatedResources(): ClientDuplexStream<unknown, Response> };
    const call = client.StreamAggregatedResources();
    call.on("data", (r: Response) => {
      const at = Date.now();
      for (const cla of r.resources ?? []) {
        for (const locality of cla.endpoints ?? []) {
          for (const lb of locality.lb_endpoints ?? []) {
            const address = lb.endpoint?.address?.socket_address?.address ?? "";
            const status = lb.health_status ?? "UNKNOWN";
            if (view.get(address)?.status !== status) view.set(address, { status, at });
          }
        }
      }
    });
    call.on("error", () => {});
    call.write({
      node: { id: `bench-${c}` },
      type_url: TYPE.endpoints,
      resource_names: Array.from({ length: S }, (_, s) => clusterName(s)),
    });
    streams.push(call);
  }
  const allSee = (address: string, status: string, after: number) =>
    health.every((v) => {
      const e = v.get(address);
      return e !== undefined && e.status === status && e.at >= after;
    });
  const startedAt = Date.now();
  await until("every endpoint healthy at every client", 600_000, () =>
    Array.from({ length: S * M }, (_, i) => i).every((i) => allSee(benchAddress(i), "HEALTHY", 0)),
  );
  console.log(
    `${S} × ${M} endpoints healthy at ${CLIENTS} clients ${(Date.now() - startedAt) / 1000} s after start`,
  );

  const latency: number[] = [];
  const detect: number[] = [];
  for (let k = 0; k < FLIPS; k++) {
    // Spread over the services and over each service's endpoints.
    const i = (k % S) * M + ((k * 97) % M);
    for (const [status, fail] of [
      ["UNHEALTHY", true],
      ["HEALTHY", false],
    ] as const) {
      const flipAt = Date.now();
      if (fail) targets.failing.add(i);
      else targets.failing.delete(i);
      await until(`i-${i} ${status} at every client`, 180_000, () => allSee(benchAddress(i), status, flipAt));
      const [since] = await op.since([`${NS}/i-${i}`]);
      detect.push(since! - flipAt);
      for (const v of health) latency.push(v.get(benchAddress(i))!.at - since!);
    }
  }
  latency.sort((a, b) => a - b);
  detect.sort((a, b) => a - b);
  const label = `${S * M} endpoints (${S} × ${M}), ${CLIENTS} clients`;
  const figures: Figure[] = [
    { name: `${label}: push latency (verdict to pushed) p50`, value: percentile(latency, 50), unit: "ms" },
    { name: `${label}: push latency (verdict to pushed) p99`, value: percentile(latency, 99), unit: "ms" },
    { name: `${label}: push latency (verdict to pushed) max`, value: latency.at(-1)!, unit: "ms" },
  ];
  report(`xds${S * M === 1000 ? "" : `-${S * M}`}`, figures, {
    services: S,
    instances: M,
    clients: CLIENTS,
    transitions: FLIPS * 2,
    samples: latency.length,
    "detection (flip to verdict) p50 ms": percentile(detect, 50),
    method:
      "latency = ADS client's Date.now() when the ClusterLoadAssignment with the flipped health_status arrives − engine summary `since` (the verdict time); probes every 1 s, failureThreshold 1",
  });
} finally {
  for (const s of streams) s.cancel();
  await op.stop().catch(() => {});
  await targets.close();
  await cluster.stop();
}
process.exit(0);
