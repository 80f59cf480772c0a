// Certificate rotation on the xDS server under mTLS, with real grpc-js ADS
// clients on loopback: the server starts with certificate A from a directory
// laid out as the kubelet mounts a Secret; the files are swapped as the
// kubelet does (a new directory, the `..data` symlink renamed onto it). A new
// client then sees certificate B (its serial, read from the handshake), an
// ADS stream opened under A keeps receiving updates, and a bad swap (a key
// that is not the certificate's) keeps B and is counted.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { PeerCertificate } from "node:tls";
import { type ClientDuplexStream, credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { type Counter, Registry } from "prom-client";
import {
  isRoutableState,
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoints,
} from "../../../src/api/published.ts";
import { createLogger } from "../../../src/kube/log.ts";
import { systemClock } from "../../../src/util/clock.ts";
import { adsServiceDefinition, TYPE } from "../../../src/xds/protos.ts";
import { resourceName } from "../../../src/xds/resources.ts";
import { createXdsServer, type XdsServer } from "../../../src/xds/server.ts";
import { eventually } from "../../support/cluster.ts";
import { secretVolume, testPki } from "../../support/servers.ts";

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
  resources?: Record<string, unknown>[];
}
type Request = {
  node: { id: string };
  type_url: string;
  resource_names?: string[];
  version_info?: string;
  response_nonce?: string;
};

const Ads = makeGenericClientConstructor(adsServiceDefinition(), "ADS");
type AdsClient = InstanceType<typeof Ads> & {
  StreamAggregatedResources(): ClientDuplexStream<Request, Response>;
};

function doc(weight: number): PublishedEndpoints {
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision: weight,
    namespace: "a",
    service: "orders",
    panic: false,
    loadBalancing: { strategy: "WeightedRoundRobin", zoneAware: false },
    endpoints: [
      {
        instance: "orders-0",
        address: "198.18.0.1",
        family: "IPv4",
        ports: [{ name: "grpc", port: 9000, protocol: "TCP" }],
        weight,
        tags: [],
        metadata: {},
        state: "Ready",
        ready: isRoutableState("Ready"),
        healthy: true,
      },
    ],
  };
}

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
const EDS = TYPE.endpoints;
const NAME = resourceName("a", "orders");

describe("xDS server: certificates rotated like the kubelet swaps a Secret", () => {
  const pki = testPki([
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
    { cn: "consumer", san: "URI:spiffe://roster.test/ns/a/sa/consumer" },
  ]);
  const [a, b, c, client] = pki.leaves as [
    { cert: string; key: string },
    { cert: string; key: string },
    { cert: string; key: string },
    { cert: string; key: string },
  ];
  const volume = secretVolume({ "tls.crt": a.cert, "tls.key": a.key, "ca.crt": pki.ca });
  const registry = new Registry();
  let server: XdsServer;
  let port: number;
  const clients: AdsClient[] = [];

  /** A client of its own (no shared connection); `served` is the server certificate its handshake saw. */
  function newClient(): { client: AdsClient; served: () => string | undefined } {
    let served: string | undefined;
    const creds = credentials.createSsl(
      Buffer.from(pki.ca),
      Buffer.from(client.key),
      Buffer.from(client.cert),
      {
        checkServerIdentity: (_host: string, cert: PeerCertificate) => {
          served = cert.serialNumber;
          return undefined;
        },
      },
    );
    const ads = new Ads(`localhost:${port}`, creds, { "grpc.use_local_subchannel_pool": 1 }) as AdsClient;
    clients.push(ads);
    return { client: ads, served: () => served };
  }

  /** The serial a new client's handshake sees, once its first response arrived. */
  async function servedToNewClient(): Promise<string> {
    const { client: ads, served } = newClient();
    const call = ads.StreamAggregatedResources();
    await new Promise<void>((resolve, reject) => {
      call.on("data", () => resolve());
      call.on("error", reject);
      call.write({ node: { id: "probe" }, type_url: EDS, resource_names: [NAME] });
    });
    call.cancel();
    ads.close();
    return served()!;
  }

  const errors = async () =>
    (await (registry.getSingleMetric("roster_tls_reload_errors_total") as Counter).get()).values.find(
      (v) => v.labels.server === "xds",
    )?.value;

  before(async () => {
    server = createXdsServer({
      port: 0,
      bindAddress: "127.0.0.1",
      tls: {
        certFile: volume.path("tls.crt"),
        keyFile: volume.path("tls.key"),
        clientCaFile: volume.path("ca.crt"),
      },
      tlsPollMs: 50,
      clock: systemClock,
      logger: createLogger({ level: "silent" }),
      registry,
    });
    port = await server.start();
    server.update("a", "orders", doc(10));
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
    volume.remove();
  });

  test("new clients get B after the swap, a stream opened under A keeps its updates, a bad swap keeps B and is counted", async () => {
    // A stream opened under certificate A, ACKing what it gets.
    const { client: ads, served } = newClient();
    const stream = ads.StreamAggregatedResources();
    const weights: number[] = [];
    stream.on("data", (r: Response) => {
      const endpoints = r.resources?.[0]?.endpoints as {
        lb_endpoints: { load_balancing_weight: { value: number } }[];
      }[];
      weights.push(endpoints[0]!.lb_endpoints[0]!.load_balancing_weight.value);
      stream.write({
        node: { id: "long-lived" },
        type_url: EDS,
        resource_names: [NAME],
        version_info: r.version_info,
        response_nonce: r.nonce,
      });
    });
    const streamErrors: Error[] = [];
    stream.on("error", (e: Error) => streamErrors.push(e));
    stream.write({ node: { id: "long-lived" }, type_url: EDS, resource_names: [NAME] });
    await eventually(() => (weights.length === 1 ? true : undefined), { what: "the first EDS response" });
    assert.equal(served(), serialOf(a.cert));

    volume.swap({ "tls.crt": b.cert, "tls.key": b.key, "ca.crt": pki.ca });
    await eventually(async () => ((await servedToNewClient()) === serialOf(b.cert) ? true : undefined), {
      what: "a new client served certificate B",
    });
    server.update("a", "orders", doc(20));
    await eventually(() => (weights.at(-1) === 20 ? true : undefined), {
      what: "the stream opened under A receiving the update",
    });

    // Half-rotated: C's certificate with B's key.
    volume.swap({ "tls.crt": c.cert, "tls.key": b.key, "ca.crt": pki.ca });
    await eventually(async () => ((await errors()) === 1 ? true : undefined), {
      what: "the refused swap counted",
    });
    assert.equal(await servedToNewClient(), serialOf(b.cert), "the last good certificate is served");
    server.update("a", "orders", doc(30));
    await eventually(() => (weights.at(-1) === 30 ? true : undefined), {
      what: "the stream still receiving after the bad swap",
    });
    assert.deepEqual(streamErrors, [], "the stream opened under A never broke");
    assert.equal(served(), serialOf(a.cert), "and never reconnected");
    stream.cancel();
  });
});
