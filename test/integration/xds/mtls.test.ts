// The xDS server under mTLS against real grpc-js ADS clients on loopback
// (documents fed directly): a CA and tenant client certificates made here,
// access rules by certificate SAN. Tenant A's certificate reads A's clusters
// and not B's (also when it claims B's node id), a client without a
// certificate is refused at the handshake, and hidden names are counted.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type ChannelCredentials,
  type ClientDuplexStream,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { Registry } from "prom-client";
import {
  isRoutableState,
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoints,
} from "../../../src/api/published.ts";
import { createLogger } from "../../../src/kube/log.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { adsServiceDefinition, TYPE } from "../../../src/xds/protos.ts";
import { createXdsServer, type XdsServer } from "../../../src/xds/server.ts";
import { eventually } from "../../support/cluster.ts";
import { testPki } from "../../support/servers.ts";

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
  /** Absent when empty (proto3 repeated field, as decoded). */
  resources?: Record<string, unknown>[];
}
type Request = { node: { id: string }; type_url: string; resource_names?: string[] };

const Ads = makeGenericClientConstructor(adsServiceDefinition(), "ADS");

const SPIFFE_A = "spiffe://roster.test/ns/a/sa/consumer";
const SPIFFE_B = "spiffe://roster.test/ns/b/sa/consumer";

function doc(namespace: string, service: string): PublishedEndpoints {
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision: 1,
    namespace,
    service,
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints: [
      {
        instance: `${service}-0`,
        address: "198.18.0.1",
        family: "IPv4",
        ports: [{ name: "grpc", port: 9000, protocol: "TCP" }],
        weight: 100,
        tags: [],
        metadata: {},
        state: "Ready",
        ready: isRoutableState("Ready"),
        healthy: true,
      },
    ],
  };
}

/** One ADS stream; resolves the first response, or the stream's error. */
function firstResponse(port: number, creds: ChannelCredentials, req: Request): Promise<Response> {
  const client = new Ads(`localhost:${port}`, creds);
  const call = (
    client as unknown as { StreamAggregatedResources(): ClientDuplexStream<Request, Response> }
  ).StreamAggregatedResources();
  return new Promise<Response>((resolve, reject) => {
    call.on("data", (r: Response) => {
      resolve(r);
      call.cancel();
    });
    call.on("error", (e: ServiceError) => reject(e));
    call.write(req);
  }).finally(() => client.close());
}

describe("xDS server under mTLS: access by client certificate", () => {
  let server: XdsServer;
  let port: number;
  let dir: string;
  const registry = new Registry();
  const pki = testPki([
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
    { cn: "consumer-a", san: `URI:${SPIFFE_A}` },
    { cn: "consumer-b", san: `URI:${SPIFFE_B},DNS:consumer.b.svc` },
  ]);
  const [serverPair, certA, certB] = pki.leaves as [
    (typeof pki.leaves)[0],
    (typeof pki.leaves)[0],
    (typeof pki.leaves)[0],
  ];
  const ca = Buffer.from(pki.ca);
  const withCert = (c: { cert: string; key: string }) =>
    credentials.createSsl(ca, Buffer.from(c.key), Buffer.from(c.cert));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "roster-xds-mtls-"));
    // As the chart mounts a kubernetes.io/tls Secret plus a CA bundle.
    writeFileSync(join(dir, "tls.crt"), serverPair.cert);
    writeFileSync(join(dir, "tls.key"), serverPair.key);
    writeFileSync(join(dir, "ca.crt"), pki.ca);
    server = createXdsServer({
      port: 0,
      bindAddress: "127.0.0.1",
      tls: {
        certFile: join(dir, "tls.crt"),
        keyFile: join(dir, "tls.key"),
        clientCaFile: join(dir, "ca.crt"),
      },
      access: [
        { clientCertificate: { uri: SPIFFE_A }, namespaces: ["a"] },
        // Node id and certificate: B's node id prefix without B's certificate grants nothing.
        { nodeIdPrefix: "tenant-b/", clientCertificate: { dns: "consumer.b.svc" }, namespaces: ["b"] },
      ],
      clock: fakeClock(1000),
      logger: createLogger({ level: "silent" }),
      registry,
    });
    port = await server.start();
    server.update("a", "orders", doc("a", "orders"));
    server.update("a", "cart", doc("a", "cart"));
    server.update("b", "orders", doc("b", "orders"));
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const clusters = async (creds: ChannelCredentials, nodeId: string) => {
    const r = await firstResponse(port, creds, { node: { id: nodeId }, type_url: TYPE.cluster });
    return (r.resources ?? []).map((c) => c.name as string).sort();
  };

  test("tenant A's certificate reads A's clusters and not B's, whatever node id it claims", async () => {
    assert.deepEqual(await clusters(withCert(certA), "tenant-a/1"), ["cart.a", "orders.a"]);
    assert.deepEqual(await clusters(withCert(certA), "tenant-b/spoofed"), ["cart.a", "orders.a"]);
  });

  test("tenant B's certificate reads B's with B's node id prefix, nothing with another", async () => {
    assert.deepEqual(await clusters(withCert(certB), "tenant-b/1"), ["orders.b"]);
    assert.deepEqual(await clusters(withCert(certB), "tenant-a/1"), []);
  });

  test("a name in a namespace not granted is answered as absent and counted", async () => {
    const count = async () =>
      (await registry.getSingleMetric("roster_xds_access_denied_total")?.get())?.values.find(
        (v) => v.labels.type === "ClusterLoadAssignment",
      )?.value ?? 0;
    const before = await count();
    const r = await firstResponse(port, withCert(certA), {
      node: { id: "tenant-a/1" },
      type_url: TYPE.endpoints,
      resource_names: ["orders.b", "orders.a"],
    });
    assert.deepEqual(
      (r.resources ?? []).map((e) => e.cluster_name),
      ["orders.a"],
    );
    await eventually(async () => ((await count()) === before + 1 ? true : undefined), {
      what: "the hidden name counted",
    });
  });

  test("without a client certificate the stream is refused; the server goes on serving", async () => {
    const err = await firstResponse(port, credentials.createSsl(ca), {
      node: { id: "tenant-a/1" },
      type_url: TYPE.cluster,
    }).then(
      () => assert.fail("a client without a certificate was served"),
      (e: ServiceError) => e,
    );
    assert.equal(err.code, status.UNAVAILABLE);
    const plain = await firstResponse(port, credentials.createInsecure(), {
      node: { id: "tenant-a/1" },
      type_url: TYPE.cluster,
    }).then(
      () => assert.fail("a plaintext client was served"),
      (e: ServiceError) => e,
    );
    assert.equal(plain.code, status.UNAVAILABLE);
    assert.deepEqual(await clusters(withCert(certA), "tenant-a/2"), ["cart.a", "orders.a"]);
  });

  test("a certificate from another CA is refused", async () => {
    const other = testPki([{ cn: "intruder", san: `URI:${SPIFFE_A}` }]).leaves[0]!;
    const err = await clusters(withCert(other), "tenant-a/1").then(
      () => assert.fail("a certificate of another CA was served"),
      (e: ServiceError) => e,
    );
    assert.equal(err.code, status.UNAVAILABLE);
  });
});
