// The xDS server's protocol against real grpc-js ADS clients on loopback
// (no cluster needed: documents are fed directly): versions and nonces, ACK
// and NACK, a slow client that never blocks the others and gets the latest
// state, clients that disconnect mid-stream, the stream limit and access rules.
import assert from "node:assert/strict";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  type ClientDuplexStream,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { Registry } from "prom-client";
import {
  isRoutableState,
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoint,
  type PublishedEndpoints,
} from "../../../src/api/published.ts";
import { createLogger } from "../../../src/kube/log.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { adsServiceDefinition, TYPE } from "../../../src/xds/protos.ts";
import { createXdsServer, type XdsServer } from "../../../src/xds/server.ts";
import { eventually } from "../../support/cluster.ts";

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
  resources: Record<string, unknown>[];
}
type Request = {
  node?: { id: string };
  type_url: string;
  resource_names?: string[];
  version_info?: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
};

const Ads = makeGenericClientConstructor(adsServiceDefinition(), "ADS");

function doc(namespace: string, service: string, endpoints: number, revision = 1): PublishedEndpoints {
  const eps: PublishedEndpoint[] = Array.from({ length: endpoints }, (_, i) => ({
    instance: `${service}-${String(i).padStart(5, "0")}`,
    address: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    family: "IPv4",
    ports: [{ name: "grpc", port: 9000, protocol: "TCP" }],
    weight: 100 + (revision % 7),
    tags: [],
    metadata: {},
    state: "Ready",
    ready: isRoutableState("Ready"),
    healthy: true,
  }));
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision,
    namespace,
    service,
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints: eps,
  };
}

/** A TCP relay to the server whose server-to-client direction can be stalled. */
async function stallableRelay(target: number) {
  const ups: Socket[] = [];
  const downs: Socket[] = [];
  const relay: NetServer = createServer((down) => {
    const up = connect(target, "127.0.0.1");
    ups.push(up);
    downs.push(down);
    down.pipe(up);
    up.pipe(down);
    down.on("error", () => up.destroy());
    up.on("error", () => down.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  return {
    port: (relay.address() as { port: number }).port,
    stall: () => {
      for (const up of ups) {
        up.unpipe();
        up.pause();
      }
    },
    resume: () => {
      for (const [i, up] of ups.entries()) up.pipe(downs[i]!);
    },
    close: () => {
      for (const s of [...ups, ...downs]) s.destroy();
      relay.close();
    },
  };
}

/** One ADS stream with its received responses queued. */
class AdsClient {
  readonly call: ClientDuplexStream<Request, Response>;
  readonly received: Response[] = [];
  error: ServiceError | undefined;
  #waiters: (() => void)[] = [];
  readonly nodeId: string;
  constructor(port: number, nodeId: string) {
    this.nodeId = nodeId;
    const client = new Ads(`127.0.0.1:${port}`, credentials.createInsecure());
    this.call = (
      client as unknown as { StreamAggregatedResources(): ClientDuplexStream<Request, Response> }
    ).StreamAggregatedResources();
    this.call.on("error", (e: ServiceError) => {
      this.error = e;
      for (const w of this.#waiters.splice(0)) w();
    });
    this.call.on("data", (r: Response) => {
      this.received.push(r);
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  send(req: Omit<Request, "node">): void {
    this.call.write({ node: { id: this.nodeId }, ...req });
  }
  /** The next response not yet taken. */
  async next(): Promise<Response> {
    await eventually(async () => (this.received.length > this.#taken || this.error ? true : undefined), {
      timeoutMs: 10_000,
      what: `a response for ${this.nodeId}`,
    });
    if (this.received.length <= this.#taken) throw this.error;
    return this.received[this.#taken++]!;
  }
  #taken = 0;
  close(): void {
    this.call.cancel();
  }
}

describe("xDS server protocol", () => {
  let server: XdsServer;
  let port: number;
  const clients: AdsClient[] = [];
  const open = (nodeId: string, options?: { via?: number }) => {
    const c = new AdsClient(options?.via ?? port, nodeId);
    clients.push(c);
    return c;
  };
  before(async () => {
    server = createXdsServer({
      port: 0,
      bindAddress: "127.0.0.1",
      maxStreams: 12,
      access: [
        { nodeIdPrefix: "tenant-a/", namespaces: ["a"] },
        { nodeIdPrefix: "all/", namespaces: ["a", "b", "shop"] },
      ],
      clock: fakeClock(1000),
      logger: createLogger({ level: "silent" }),
      registry: new Registry(),
    });
    port = await server.start();
    server.update("shop", "cart", doc("shop", "cart", 3));
    server.update("a", "svc", doc("a", "svc", 1));
    server.update("b", "svc", doc("b", "svc", 1));
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  test("versions and nonces; an ACK gets nothing; a NACK is counted and the stream goes on", async () => {
    const c = open("all/1");
    c.send({ type_url: TYPE.endpoints, resource_names: ["cart.shop"] });
    const first = await c.next();
    assert.equal(first.type_url, TYPE.endpoints);
    assert.equal(first.nonce, "1");
    assert.equal(first.resources.length, 1);
    assert.equal(first.resources[0]!.cluster_name, "cart.shop");
    // ACK, then NACK of the same response: neither is answered.
    c.send({
      type_url: TYPE.endpoints,
      resource_names: ["cart.shop"],
      version_info: first.version_info,
      response_nonce: "1",
    });
    const nacksBefore = server.stats().nacks;
    c.send({
      type_url: TYPE.endpoints,
      resource_names: ["cart.shop"],
      version_info: first.version_info,
      response_nonce: "1",
      error_detail: { code: 3, message: "test NACK" },
    });
    await eventually(async () => (server.stats().nacks === nacksBefore + 1 ? true : undefined), {
      what: "the NACK counted",
    });
    // The next change is pushed with a higher version and the next nonce:
    // nothing was sent in between.
    server.update("shop", "cart", doc("shop", "cart", 4, 2));
    const second = await c.next();
    assert.equal(second.nonce, "2");
    assert.ok(Number(second.version_info) > Number(first.version_info));
    assert.equal(
      (second.resources[0]!.endpoints as { lb_endpoints: unknown[] }[])[0]!.lb_endpoints.length,
      4,
    );
    // An unrelated service's change is not pushed to this subscription.
    server.update("b", "svc", doc("b", "svc", 2, 2));
    c.send({ type_url: TYPE.listener, resource_names: ["cart.shop"] });
    const lds = await c.next();
    assert.equal(lds.type_url, TYPE.listener);
    assert.equal(lds.nonce, "3");
  });

  test("who may read: a tenant sees its namespaces only; no matching rule sees nothing", async () => {
    const a = open("tenant-a/x");
    a.send({ type_url: TYPE.cluster, resource_names: ["svc.a", "svc.b"] });
    assert.deepEqual(
      (await a.next()).resources.map((r) => r.name),
      ["svc.a"],
    );
    a.send({ type_url: TYPE.listener, resource_names: [] }); // wildcard
    assert.deepEqual(
      (await a.next()).resources.map((r) => r.name),
      ["svc.a"],
    );
    const stranger = open("someone-else");
    stranger.send({ type_url: TYPE.cluster, resource_names: ["svc.a", "cart.shop"] });
    assert.deepEqual((await stranger.next()).resources ?? [], []);
  });

  test("a slow client gets the latest state, never blocks a fast one; a client leaving mid-stream disturbs no one", async () => {
    // The slow client's bytes pass through a TCP relay that stops reading
    // from the server: a stalled network path, as a real slow client is.
    const relay = await stallableRelay(port);
    const slow = open("all/slow", { via: relay.port });
    const fast = open("all/fast");
    const leaving = open("all/leaving");
    for (const c of [slow, fast, leaving]) c.send({ type_url: TYPE.endpoints, resource_names: ["big.shop"] });
    // Large assignments (2000 endpoints, ~200 kB each) fill the stalled path's buffers.
    server.update("shop", "big", doc("shop", "big", 2000, 1));
    for (const c of [slow, fast, leaving]) await c.next();
    relay.stall();
    leaving.close();
    const updates = 30;
    let last = 0;
    for (let i = 2; i <= updates; i++) {
      server.update("shop", "big", doc("shop", "big", 2000, i));
      const r = await fast.next(); // the fast client sees every change at once
      assert.ok(Number(r.version_info) > last);
      last = Number(r.version_info);
    }
    assert.equal(fast.error, undefined);
    relay.resume();
    // Caught up: its last response carries the latest version, and it got
    // fewer responses than there were changes (one in flight, the rest
    // coalesced into the latest state; nothing queued per change).
    await eventually(async () => (slow.received.at(-1)?.version_info === String(last) ? true : undefined), {
      what: "the slow client to receive the latest version",
    });
    assert.ok(slow.received.length < updates, `slow client got ${slow.received.length} of ${updates} pushes`);
    assert.equal(slow.error, undefined);
    relay.close();
  });

  test("a flood of clients is bounded: streams over maxStreams are refused, the others keep working", async () => {
    const flood = Array.from({ length: 20 }, (_, i) => open(`all/flood-${i}`));
    for (const c of flood) c.send({ type_url: TYPE.cluster, resource_names: ["cart.shop"] });
    await eventually(async () => (flood.every((c) => c.error || c.received.length > 0) ? true : undefined), {
      what: "every flood stream answered or refused",
    });
    const refused = flood.filter((c) => c.error);
    assert.ok(refused.length > 0, "some streams were refused");
    for (const c of refused) assert.equal(c.error!.code, 8, "RESOURCE_EXHAUSTED");
    assert.ok(server.stats().streams <= 12);
    for (const c of refused) c.close();
    const served = flood.filter((c) => !c.error);
    server.update("shop", "cart", doc("shop", "cart", 5, 3));
    for (const c of served) assert.equal((await c.next()).type_url, TYPE.cluster);
  });
});
