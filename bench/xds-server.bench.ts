/**
 * The xDS server alone (no operator, no API server): a published change (one endpoint's verdict flips in a
 * service of 1,000 or 10,000 endpoints) until each of 100 connected ADS
 * clients has received the ClusterLoadAssignment carrying it. The clients
 * are real grpc-js ADS streams on loopback in this process, each on its own
 * HTTP/2 connection; they read only version_info (no decoding), so the
 * figure is the server's; the change enters the server the way the
 * operator's ConfigMap cache feeds it. The whole path from the verdict,
 * 10,000 endpoints included (split ConfigMaps, format 2), is
 * bench/xds.bench.ts; this one isolates the server's share (cache to
 * pushed).
 *
 *   node bench/xds-server.bench.ts [--clients 100] [--rounds 20]
 */
import { parseArgs } from "node:util";
import { type ClientDuplexStream, credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { Registry } from "prom-client";
import {
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoint,
  type PublishedEndpoints,
} from "../src/api/published.ts";
import { createLogger } from "../src/kube/log.ts";
import { systemClock } from "../src/util/clock.ts";
import { adsServiceDefinition, TYPE } from "../src/xds/protos.ts";
import { createXdsServer } from "../src/xds/server.ts";
import { type Figure, percentile, report, rssMiB } from "./report.ts";

const { values } = parseArgs({
  options: { clients: { type: "string", default: "100" }, rounds: { type: "string", default: "20" } },
});
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);

function doc(n: number, flipped: number, revision: number): PublishedEndpoints {
  const endpoints: PublishedEndpoint[] = Array.from({ length: n }, (_, i) => {
    const down = i === flipped;
    return {
      instance: `api-${String(i).padStart(5, "0")}`,
      address: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`,
      family: "IPv4",
      ports: [{ name: "grpc", port: 9000, protocol: "TCP" }],
      weight: 100,
      zone: `zone-${i % 3}`,
      tags: [],
      metadata: {},
      state: down ? "Unhealthy" : "Ready",
      ready: !down,
      healthy: !down,
    };
  });
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision,
    namespace: "bench",
    service: "api",
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints,
  };
}

interface Response {
  version_info: string;
}

const server = createXdsServer({
  port: 0,
  bindAddress: "127.0.0.1",
  clock: systemClock,
  logger: createLogger({ level: "silent" }),
  registry: new Registry(),
});
const port = await server.start();
// The real request serializer; responses stay bytes and only version_info
// (field 1) is read.
const ads = adsServiceDefinition().StreamAggregatedResources!;
const Ads = makeGenericClientConstructor(
  {
    StreamAggregatedResources: {
      ...ads,
      responseDeserialize: (b: Buffer): Response => ({ version_info: versionOf(b) }),
    },
  },
  "ADS",
);

function versionOf(b: Buffer): string {
  // DiscoveryResponse field 1 (version_info) is written first: tag 0x0a, a length, the string.
  if (b[0] !== 0x0a) return "";
  return b.subarray(2, 2 + b[1]!).toString("utf8");
}
const seen = new Map<number, (version: number) => void>();
const streams: ClientDuplexStream<unknown, Response>[] = [];
for (let c = 0; c < CLIENTS; c++) {
  const client = new Ads(`127.0.0.1:${port}`, credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    // A connection per client, as 100 real clients have: grpc-js otherwise
    // multiplexes every channel to one address over a single HTTP/2
    // connection, whose flow control paces all the streams together.
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as { StreamAggregatedResources(): ClientDuplexStream<unknown, Response> };
  const call = client.StreamAggregatedResources();
  call.on("data", (r: Response) => seen.get(c)?.(Number(r.version_info)));
  call.on("error", () => {});
  streams.push(call);
}

const figures: Figure[] = [];
const details: Record<string, unknown> = { clients: CLIENTS, rounds: ROUNDS };
let revision = 0;
for (const n of [1000, 10_000]) {
  /** Resolves when every client has seen a version >= `version`; records the time each did. */
  const allSee = (version: number, t0: number, into: number[]) =>
    new Promise<void>((resolve) => {
      let left = CLIENTS;
      for (let c = 0; c < CLIENTS; c++) {
        seen.set(c, (v) => {
          if (v < version) return;
          seen.delete(c);
          into.push(performance.now() - t0);
          if (--left === 0) resolve();
        });
      }
    });
  server.update("bench", "api", doc(n, -1, ++revision));
  const warm = allSee(server.stats().version, performance.now(), []);
  for (const s of streams) {
    s.write({ node: { id: "bench" }, type_url: TYPE.endpoints, resource_names: ["api.bench"] });
  }
  await warm;
  const latencies: number[] = [];
  const start = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    const round = allSee(server.stats().version + 1, t0, latencies);
    server.update("bench", "api", doc(n, r % n, ++revision), systemClock.now());
    await round;
  }
  const elapsed = performance.now() - start;
  latencies.sort((a, b) => a - b);
  figures.push(
    {
      name: `${n} endpoints, ${CLIENTS} clients: cache to push seen p50`,
      value: percentile(latencies, 50),
      unit: "ms",
    },
    {
      name: `${n} endpoints, ${CLIENTS} clients: cache to push seen p99`,
      value: percentile(latencies, 99),
      unit: "ms",
    },
    {
      name: `${n} endpoints, ${CLIENTS} clients: changes per second (all clients served)`,
      value: (ROUNDS * 1000) / elapsed,
      unit: "/s",
    },
  );
  // Unsubscribe before the next size so its first push is a fresh subscription.
  for (const s of streams)
    s.write({ node: { id: "bench" }, type_url: TYPE.endpoints, resource_names: ["none.bench"] });
}
figures.push({ name: "rss after the run", value: rssMiB(), unit: "MiB" });
details.stats = server.stats();
report("xds-server", figures, details);
for (const s of streams) s.cancel();
await server.stop();
process.exit(0);
