import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRng } from "../../../src/balance/random.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { hostPort } from "../../../src/client/endpoint.ts";
import {
  InvalidPublicationError,
  type NoHealthyEndpointsError,
  NotSyncedError,
  StalePublicationError,
  UnknownServiceError,
} from "../../../src/client/errors.ts";
import type { EventName, RosterClientEvents } from "../../../src/client/registry.ts";
import { memorySource } from "../../../src/client/source.ts";
import { configMap, endpoint } from "./fixtures.ts";

function recorder(client: RosterClient) {
  const log: string[] = [];
  const events: { [E in EventName]: RosterClientEvents[E][] } = {
    registered: [],
    deregistered: [],
    healthChanged: [],
    updated: [],
    invalid: [],
    stale: [],
  };
  const names: EventName[] = ["registered", "deregistered", "healthChanged", "updated", "invalid", "stale"];
  for (const name of names) {
    client.on(name, (e) => {
      (events[name] as unknown[]).push(e);
      const id = "endpoint" in e ? ` ${e.endpoint.instance}` : "";
      log.push(`${name}${id}`);
    });
  }
  return {
    events,
    take() {
      const out = log.splice(0);
      for (const name of names) events[name].length = 0;
      return out;
    },
  };
}

const a = endpoint({ instance: "a", address: "10.1.0.1" });
const b = endpoint({ instance: "b", address: "10.1.0.2" });
const c = endpoint({ instance: "c", address: "10.1.0.3" });

test("reads before the first sync fail with NotSynced; after it, unknown services with UnknownService", async () => {
  const source = memorySource([], { synced: false });
  const client = new RosterClient(undefined, { source, namespace: "default" });
  assert.throws(() => client.endpoints("web"), NotSyncedError);
  assert.throws(
    () => client.pick("web"),
    (err: NotSyncedError) => err.code === "NotSynced",
  );
  await assert.rejects(client.ready({ timeoutMs: 20 }), NotSyncedError);
  const ready = client.ready();
  source.markSynced();
  await ready;
  assert.equal(client.synced, true);
  assert.throws(
    () => client.pick("web"),
    (err: UnknownServiceError) => err.code === "UnknownService",
  );
  assert.throws(() => client.endpoints("elsewhere/web"), /not watched/);
});

test("follows a service through add, fail, drain, weight change, panic and deletion, with events", async () => {
  const source = memorySource();
  const client = new RosterClient(undefined, { source, rng: seededRng(1) });
  const rec = recorder(client);
  source.apply(configMap({ service: "web", revision: 1, endpoints: [a, b] }));
  await client.ready();
  assert.deepEqual(rec.take(), ["registered a", "registered b", "updated"]);
  assert.deepEqual(
    client.endpoints("web").map((e) => e.id),
    ["a/10.1.0.1", "b/10.1.0.2"],
  );
  assert.equal(hostPort(client.endpoints("web")[0]!), "10.1.0.1:8080");

  // add
  source.apply(configMap({ service: "web", revision: 2, endpoints: [a, b, c] }));
  assert.deepEqual(rec.take(), ["registered c", "updated"]);
  assert.equal(client.service("web").revision, 2);

  // fail
  source.apply(
    configMap({
      service: "web",
      revision: 3,
      endpoints: [a, b, endpoint({ ...c, instance: "c", state: "Unhealthy" })],
    }),
  );
  assert.deepEqual(rec.take(), ["healthChanged c", "updated"]);
  assert.deepEqual(
    client.endpoints("web").map((e) => e.instance),
    ["a", "b"],
  );
  assert.equal(client.endpoints("web", { all: true }).length, 3);

  // drain
  source.apply(
    configMap({
      service: "web",
      revision: 4,
      endpoints: [
        endpoint({ ...a, state: "Draining", healthy: true }),
        b,
        endpoint({ ...c, state: "Unhealthy" }),
      ],
    }),
  );
  const drained = rec.events.healthChanged[0]!;
  assert.equal(drained.previous.state, "Ready");
  assert.equal(drained.endpoint.draining, true);
  rec.take();
  for (let i = 0; i < 20; i++) assert.equal(client.pick("web").endpoint.instance, "b");

  // weight change: an update, not a health change
  source.apply(
    configMap({
      service: "web",
      revision: 5,
      endpoints: [
        endpoint({ ...a, state: "Draining", healthy: true }),
        endpoint({ ...b, weight: 300 }),
        endpoint({ ...c, state: "Unhealthy" }),
      ],
    }),
  );
  assert.deepEqual(
    rec.events.updated[0]!.changed.map((e) => [e.instance, e.weight]),
    [["b", 300]],
  );
  assert.deepEqual(rec.take(), ["updated"]);

  // panic: the operator publishes the unhealthy one as Panic (ready); the draining one stays out
  source.apply(
    configMap({
      service: "web",
      revision: 6,
      panic: true,
      endpoints: [
        endpoint({ ...a, state: "Draining", healthy: false }),
        endpoint({ ...b, state: "Panic", healthy: false }),
        endpoint({ ...c, state: "Panic", healthy: false }),
      ],
    }),
  );
  assert.equal(rec.events.updated[0]!.panic, true);
  rec.take();
  const picked = new Set(Array.from({ length: 20 }, () => client.pick("web").endpoint.instance));
  assert.deepEqual([...picked].sort(), ["b", "c"]);

  // no healthy endpoint
  source.apply(
    configMap({
      service: "web",
      revision: 7,
      endpoints: [endpoint({ ...b, state: "Unhealthy" }), endpoint({ ...c, state: "Pending" })],
    }),
  );
  assert.deepEqual(rec.take(), ["deregistered a", "healthChanged b", "healthChanged c", "updated"]);
  assert.throws(
    () => client.pick("web"),
    (err: NoHealthyEndpointsError) =>
      err.code === "NoHealthyEndpoints" &&
      err.revision === 7 &&
      err.states.Unhealthy === 1 &&
      err.states.Pending === 1,
  );
  assert.deepEqual(client.endpoints("web"), []);

  // deletion
  source.remove("default/web-roster");
  assert.deepEqual(rec.take(), ["deregistered b", "deregistered c", "updated"]);
  assert.throws(() => client.pick("web"), UnknownServiceError);
});

test("balancing follows the published state, not the raw probe flag: Unhealthy with healthy=true takes no traffic", async () => {
  const source = memorySource([
    configMap({
      service: "web",
      revision: 1,
      endpoints: [a, endpoint({ instance: "damped", state: "Unhealthy", healthy: true })],
    }),
  ]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  for (let i = 0; i < 10; i++) assert.equal(client.pick("web").endpoint.instance, "a");
  assert.deepEqual(
    client.endpoints("web").map((e) => e.instance),
    ["a"],
  );
});

test("a document with the revision already applied (resync, label edit) emits nothing", async () => {
  const source = memorySource([configMap({ service: "web", revision: 1, endpoints: [a] })]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  const rec = recorder(client);
  const cm = configMap({ service: "web", revision: 1, endpoints: [a] });
  source.apply({ ...cm, metadata: { ...cm.metadata, labels: { ...cm.metadata.labels, extra: "x" } } });
  assert.deepEqual(rec.take(), []);
});

test("an unreadable update keeps the last good set and reports invalid; never-readable is InvalidPublication", async () => {
  const source = memorySource([configMap({ service: "web", revision: 1, endpoints: [a] })]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  const rec = recorder(client);
  const broken = configMap({ service: "web", revision: 2, endpoints: [a] });
  broken.data = { "endpoints.json": JSON.stringify({ formatVersion: 99, revision: 2 }) };
  source.apply(broken);
  assert.equal(rec.events.invalid[0]?.error.code, "UnsupportedVersion");
  assert.equal(client.pick("web").endpoint.instance, "a");

  const other = configMap({ service: "api", revision: 1, endpoints: [a] });
  other.data = { "endpoints.json": "{not json" };
  source.apply(other);
  assert.throws(() => client.pick("api"), InvalidPublicationError);
  // A ConfigMap without endpoints.json is not a Roster document at all.
  source.apply({ ...other, metadata: { ...other.metadata, name: "plain" }, data: { other: "x" } });
  assert.throws(() => client.pick("plain"), UnknownServiceError);
});

test("a stale document is refused (StalePublication), the last good set is kept but not served, and a good one ends it", async () => {
  const source = memorySource();
  const client = new RosterClient(undefined, { source, rng: seededRng(1) });
  const rec = recorder(client);
  source.apply(configMap({ service: "web", revision: 4, endpoints: [a, b] }));
  await client.ready();
  rec.take();
  const stale = { reason: "OverBudget" as const, bytes: 1_200_000, limit: 1_000_000 };
  source.apply(configMap({ service: "web", revision: 5, endpoints: [], stale }));
  assert.deepEqual(rec.events.stale, [
    {
      namespace: "default",
      service: "web",
      configMap: "web-roster",
      revision: 5,
      ...stale,
      lastGoodRevision: 4,
    },
  ]);
  assert.deepEqual(rec.take(), ["stale"]);
  const refused = (err: unknown) => {
    assert.ok(err instanceof StalePublicationError);
    assert.equal(err.code, "StalePublication");
    assert.equal(err.stale.revision, 5);
    assert.equal(err.stale.bytes, 1_200_000);
    assert.equal(err.lastGood?.revision, 4);
    assert.match(
      err.message,
      /web-roster is published stale \(revision 5: .*1200000 bytes, over the 1000000-byte/,
    );
    return true;
  };
  assert.throws(() => client.pick("web"), refused);
  assert.throws(() => client.endpoints("web"), refused);
  assert.throws(() => client.service("web"), refused);
  assert.throws(() => client.discoverMany(["web"]), refused);
  assert.deepEqual(client.services(), [{ namespace: "default", service: "web" }]);

  // Still stale at the next stale revision: reported once more, still refused.
  source.apply(
    configMap({ service: "web", revision: 6, endpoints: [], stale: { ...stale, bytes: 1_300_000 } }),
  );
  assert.deepEqual(rec.take(), ["stale"]);
  assert.throws(() => client.pick("web"), StalePublicationError);

  // The set fits again: served, diffed against the last good one.
  source.apply(configMap({ service: "web", revision: 7, endpoints: [b, c] }));
  assert.deepEqual(rec.take(), ["deregistered a", "registered c", "updated"]);
  assert.equal(client.service("web").revision, 7);
});

test("a client that starts while the document is stale has no set to serve and says why", async () => {
  const stale = { reason: "OverBudget" as const, bytes: 2_000_000, limit: 1_000_000 };
  const source = memorySource([configMap({ service: "web", revision: 9, endpoints: [], stale })]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  assert.throws(
    () => client.pick("web"),
    (err: StalePublicationError) => err.code === "StalePublication" && err.lastGood === undefined,
  );
  source.remove("default/web-roster");
  assert.throws(() => client.pick("web"), UnknownServiceError);
});

test("two ConfigMaps publishing one service: the first name wins, deterministically", async () => {
  const source = memorySource([
    configMap({ service: "web", revision: 5, endpoints: [b], configMap: "web-z" }),
    configMap({ service: "web", revision: 1, endpoints: [a], configMap: "web-a" }),
  ]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  assert.equal(client.service("web").configMap, "web-a");
  source.remove("default/web-a");
  assert.equal(client.service("web").configMap, "web-z");
  assert.equal(client.pick("web").endpoint.instance, "b");
});

test("zone preference follows the published hint and the caller's zone; the application can override", async () => {
  const eps = [
    endpoint({ instance: "a1", zone: "a" }),
    endpoint({ instance: "a2", zone: "a" }),
    endpoint({ instance: "b1", zone: "b" }),
  ];
  const source = memorySource([
    configMap({
      service: "web",
      revision: 1,
      endpoints: eps,
      loadBalancing: { strategy: "RoundRobin", zoneAware: true },
    }),
    configMap({
      service: "flat",
      revision: 1,
      endpoints: eps,
      loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    }),
  ]);
  const client = new RosterClient(undefined, { source, zone: "b", rng: seededRng(3) });
  await client.ready();
  const zones = (svc: string, zone?: string) =>
    new Set(Array.from({ length: 12 }, () => client.pick(svc, { zone }).endpoint.zone));
  assert.deepEqual([...zones("web")], ["b"]);
  assert.deepEqual([...zones("web", "a")], ["a"]);
  assert.equal(zones("flat").size, 2);

  const noZones = new RosterClient(undefined, {
    source: memorySource([
      configMap({
        service: "web",
        revision: 1,
        endpoints: eps,
        loadBalancing: { strategy: "RoundRobin", zoneAware: true },
      }),
    ]),
    zone: "b",
    balancing: { zoneAware: false },
  });
  await noZones.ready();
  assert.equal(new Set(Array.from({ length: 12 }, () => noZones.pick("web").endpoint.zone)).size, 2);
});

test("LeastConnections: release handles and in-flight counts survive a new revision", async () => {
  const source = memorySource([
    configMap({
      service: "web",
      revision: 1,
      endpoints: [a, b],
      loadBalancing: { strategy: "LeastConnections", zoneAware: false },
    }),
  ]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  const p1 = client.pick("web");
  const p2 = client.pick("web");
  assert.notEqual(p1.endpoint.id, p2.endpoint.id);
  source.apply(
    configMap({
      service: "web",
      revision: 2,
      endpoints: [a, b, c],
      loadBalancing: { strategy: "LeastConnections", zoneAware: false },
    }),
  );
  // a and b each still have one request in flight: the new endpoint gets the next one.
  const p3 = client.pick("web");
  assert.equal(p3.endpoint.instance, "c");
  assert.equal(client.inFlight("web", `${a.instance}/${a.address}`), 1);
  p1.release();
  p1.release();
  assert.equal(client.inFlight("web", p1.endpoint.id), 0);
  assert.equal(client.pick("web").endpoint.id, p1.endpoint.id);
});

test("strategy overrides per service, and ConsistentHash keys taken from the request as published", async () => {
  const eps = Array.from({ length: 8 }, (_, i) =>
    endpoint({ instance: `e${i}`, address: `10.2.0.${i + 1}` }),
  );
  const source = memorySource([
    configMap({
      service: "sticky",
      revision: 1,
      endpoints: eps,
      loadBalancing: {
        strategy: "ConsistentHash",
        zoneAware: false,
        consistentHash: { algorithm: "Maglev", tableSize: 65537, key: { source: "Header", name: "X-User" } },
      },
    }),
    configMap({ service: "plain", revision: 1, endpoints: eps }),
  ]);
  const client = new RosterClient(undefined, {
    source,
    balancing: (svc) => (svc.service === "plain" ? { strategy: "ConsistentHash" } : undefined),
  });
  await client.ready();
  const req = { headers: { "x-user": "alice" } };
  const first = client.pick("sticky", { request: req }).endpoint.id;
  for (let i = 0; i < 10; i++) assert.equal(client.pick("sticky", { request: req }).endpoint.id, first);
  assert.equal(client.pick("sticky", { key: "alice" }).endpoint.id, first);
  const plain = client.pick("plain", { key: "bob" }).endpoint.id;
  for (let i = 0; i < 10; i++) assert.equal(client.pick("plain", { key: "bob" }).endpoint.id, plain);
});

test("discoverMany returns several services at once and names the unknown ones", async () => {
  const source = memorySource([
    configMap({ service: "web", revision: 1, endpoints: [a] }),
    configMap({ service: "api", revision: 1, endpoints: [b, c] }),
  ]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  const found = client.discoverMany(["web", "api"]);
  assert.deepEqual(
    [...found].map(([k, v]) => [k, v.length]),
    [
      ["web", 1],
      ["api", 2],
    ],
  );
  assert.throws(() => client.discoverMany(["web", "x", "y"]), /x, y/);
  assert.deepEqual([...client.discoverMany(["web", "x"], { ignoreUnknown: true }).keys()], ["web"]);
  assert.deepEqual(
    client
      .services()
      .map((s) => s.service)
      .sort(),
    ["api", "web"],
  );
});

test("a throwing listener does not stop other listeners or the client's state", async () => {
  const source = memorySource([]);
  const thrown: [string, string][] = [];
  const client = new RosterClient(undefined, {
    source,
    onListenerError: (err, event) => thrown.push([err.message, event]),
  });
  await client.ready();
  client.on("registered", () => {
    throw new Error("listener bug");
  });
  let seen = 0;
  const off = client.on("registered", () => seen++);
  source.apply(configMap({ service: "web", revision: 1, endpoints: [a] }));
  assert.equal(seen, 1);
  assert.equal(client.endpoints("web").length, 1);
  off();
  source.apply(configMap({ service: "web", revision: 2, endpoints: [a, b] }));
  assert.equal(seen, 1);
  assert.deepEqual(thrown, [
    ["listener bug", "registered"],
    ["listener bug", "registered"],
  ]);
});

test("without onListenerError, what a listener threw becomes a process warning", async () => {
  const source = memorySource([]);
  const client = new RosterClient(undefined, { source });
  await client.ready();
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  // Our listener replaces Node's default printing for this test: the warning is the subject, not noise.
  const printers = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", onWarning);
  try {
    client.on("registered", () => {
      throw new Error("listener bug");
    });
    source.apply(configMap({ service: "web", revision: 1, endpoints: [a] }));
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off("warning", onWarning);
    for (const p of printers) process.on("warning", p);
  }
  assert.deepEqual(
    warnings.map((w) => w.message),
    ["listener bug"],
  );
});
