/**
 * Informer logic against a scripted client and a fake clock: relist diffs,
 * 410 handling, inactivity restarts, backoff, resync. The same behaviours
 * are proven against the real API server in test/integration/kube/.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ApiError, type KubeRequest } from "../../../src/kube/client.ts";
import { createInformer } from "../../../src/kube/informer.ts";
import type { KubeObject } from "../../../src/kube/object.ts";
import { resources } from "../../../src/kube/object.ts";
import {
  internStrings,
  lastAppliedAnnotation,
  stringInterner,
  subtreeInterner,
} from "../../../src/kube/transform.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { configMap, type ScriptedStream, scriptedClient, scriptedStream } from "./fakes.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));
async function settle(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}

/** A fake API: a list result and a queue of watch streams the test controls. */
function fakeApi(initial: KubeObject[], rv = "100") {
  let items = initial;
  let listRv = rv;
  const streams: { req: KubeRequest; stream: ScriptedStream }[] = [];
  let failWatches: unknown;
  const client = scriptedClient({
    onRequest: (req) => {
      assert.equal(req.method, "GET");
      return { metadata: { resourceVersion: listRv }, items: structuredClone(items) };
    },
    onStream: (req) => {
      if (failWatches) throw failWatches;
      const stream = scriptedStream(req.signal);
      streams.push({ req, stream });
      return stream;
    },
  });
  return {
    client,
    streams,
    setList(next: KubeObject[], nextRv: string) {
      items = next;
      listRv = nextRv;
    },
    failWatchesWith(err: unknown) {
      failWatches = err;
    },
    lists: () => client.requests.filter((r) => !r.query?.watch).length,
    last: () => streams.at(-1)!,
  };
}

function recorder() {
  const log: string[] = [];
  return {
    log,
    handler: {
      onAdd: (o: KubeObject, initial: boolean) =>
        log.push(`add ${o.metadata.name}${initial ? " (initial)" : ""}`),
      onUpdate: (a: KubeObject, b: KubeObject) =>
        log.push(
          a === b
            ? `resync ${b.metadata.name}`
            : `update ${b.metadata.name} ${a.metadata.resourceVersion}->${b.metadata.resourceVersion}`,
        ),
      onDelete: (o: KubeObject, unknown: boolean) =>
        log.push(`delete ${o.metadata.name}${unknown ? " (unknown)" : ""}`),
    },
  };
}

describe("informer", () => {
  test("lists, then watches from the list's resourceVersion with bookmarks; events update the cache", async () => {
    const api = fakeApi([configMap("a", "ns", "10"), configMap("b", "ns", "11")]);
    const clock = fakeClock();
    const inf = createInformer({ client: api.client, type: resources.configMaps, namespace: "ns", clock });
    const r = recorder();
    inf.addHandler(r.handler);
    inf.start();
    assert.equal(await inf.waitForSync(), true);
    assert.deepEqual(r.log, ["add a (initial)", "add b (initial)"]);
    await settle();
    const w = api.last();
    assert.equal(w.req.path, "/api/v1/namespaces/ns/configmaps");
    assert.equal(w.req.query?.resourceVersion, "100");
    assert.equal(w.req.query?.allowWatchBookmarks, true);
    const timeout = Number(w.req.query?.timeoutSeconds);
    assert.ok(timeout >= 300 && timeout < 600);

    w.stream.push({ type: "ADDED", object: configMap("c", "ns", "101") });
    w.stream.push({ type: "MODIFIED", object: configMap("a", "ns", "102") });
    w.stream.push({ type: "MODIFIED", object: configMap("a", "ns", "102") });
    w.stream.push({ type: "DELETED", object: configMap("b", "ns", "103") });
    w.stream.push({ type: "BOOKMARK", object: { metadata: { resourceVersion: "150" } } });
    await settle();
    assert.deepEqual(r.log.slice(2), ["add c", "update a 10->102", "delete b"]);
    assert.deepEqual(inf.keys().sort(), ["ns/a", "ns/c"]);
    assert.equal(inf.get("ns/a")!.kind, "ConfigMap");
    assert.equal(inf.stats().lastResourceVersion, "150");

    // The server ends the watch: resume from the bookmark, no relist.
    w.stream.end();
    clock.advance(2000);
    await settle();
    assert.equal(api.streams.length, 2);
    assert.equal(api.last().req.query?.resourceVersion, "150");
    assert.equal(api.lists(), 1);
    await inf.stop();
  });

  test("a 410 ERROR event relists and delivers the difference", async () => {
    const api = fakeApi([
      configMap("keep", "ns", "1"),
      configMap("change", "ns", "2"),
      configMap("gone", "ns", "3"),
    ]);
    const inf = createInformer({ client: api.client, type: resources.configMaps, clock: fakeClock() });
    const r = recorder();
    inf.addHandler(r.handler);
    inf.start();
    await inf.waitForSync();
    await settle();
    r.log.length = 0;
    api.setList(
      [configMap("keep", "ns", "1"), configMap("change", "ns", "20"), configMap("new", "ns", "21")],
      "300",
    );
    api.last().stream.push({ type: "BOOKMARK", object: { metadata: { resourceVersion: "101" } } });
    api.last().stream.push({
      type: "ERROR",
      object: { kind: "Status", code: 410, reason: "Expired", message: "too old" },
    });
    await settle();
    assert.deepEqual(r.log.sort(), ["add new", "delete gone (unknown)", "update change 2->20"]);
    assert.deepEqual(inf.keys().sort(), ["ns/change", "ns/keep", "ns/new"]);
    assert.equal(api.last().req.query?.resourceVersion, "300");
    assert.equal(inf.stats().relists, 2);
    assert.equal(inf.stats().watchRestarts.expired, 1);
    await inf.stop();
  });

  test("a 410 answer to the watch request relists too", async () => {
    const api = fakeApi([configMap("a")]);
    const clock = fakeClock();
    const inf = createInformer({ client: api.client, type: resources.configMaps, clock, random: () => 0 });
    inf.start();
    await inf.waitForSync();
    await settle();
    api.last().stream.push({ type: "MODIFIED", object: configMap("a", "ns", "7") });
    await settle();
    api.failWatchesWith(new ApiError(410, { reason: "Expired", code: 410 }, "watch"));
    api.last().stream.end();
    await settle();
    assert.equal(api.lists(), 2, "relisted at once after the first expiry");
    // The watch after that relist expires again at once: the next relist waits for the backoff.
    clock.advance(799);
    await settle();
    assert.equal(api.lists(), 2);
    api.failWatchesWith(undefined);
    clock.advance(1);
    await settle();
    assert.equal(api.lists(), 3);
    assert.equal(api.streams.length, 2, "watching again");
    await inf.stop();
  });

  test("a silent watch is restarted after the inactivity timeout, from the last resourceVersion", async () => {
    const api = fakeApi([configMap("a")]);
    const clock = fakeClock();
    const inf = createInformer({
      client: api.client,
      type: resources.configMaps,
      clock,
      inactivityTimeoutMs: 10_000,
    });
    inf.start();
    await inf.waitForSync();
    await settle();
    const first = api.last();
    first.stream.push({ type: "BOOKMARK", object: { metadata: { resourceVersion: "120" } } });
    await settle();
    clock.advance(9_999);
    await settle();
    assert.equal(api.streams.length, 1, "activity resets the timer");
    clock.advance(1);
    await settle();
    assert.equal(first.stream.closed, true);
    assert.equal(api.streams.length, 2);
    assert.equal(api.last().req.query?.resourceVersion, "120");
    assert.equal(inf.stats().watchRestarts.inactivity, 1);
    assert.equal(api.lists(), 1, "no relist needed");
    await inf.stop();
  });

  test("watch errors back off exponentially with jitter, then recover", async () => {
    const api = fakeApi([]);
    const clock = fakeClock();
    const inf = createInformer({
      client: api.client,
      type: resources.configMaps,
      clock,
      random: () => 0,
      backoff: { initialMs: 100, maxMs: 400 },
    });
    api.failWatchesWith(new ApiError(500, "boom", "watch"));
    inf.start();
    await inf.waitForSync();
    await settle();
    const attempts = () => api.client.requests.filter((r) => r.query?.watch).length;
    assert.equal(attempts(), 1);
    const times: number[] = [];
    for (let t = 0; t < 1600; t += 10) {
      const before = attempts();
      clock.advance(10);
      await settle(3);
      if (attempts() > before) times.push(clock.now());
    }
    // 100, 200, 400, 400 ... after each failure (jitter 0 with random() = 0).
    assert.deepEqual(times.slice(0, 4), [100, 300, 700, 1100]);
    api.failWatchesWith(undefined);
    clock.advance(400);
    await settle();
    assert.ok(inf.stats().watchRestarts.error >= 4);
    await inf.stop();
  });

  test("resync re-delivers every cached object as update(o, o)", async () => {
    const api = fakeApi([configMap("a"), configMap("b")]);
    const clock = fakeClock();
    const inf = createInformer({
      client: api.client,
      type: resources.configMaps,
      clock,
      resyncPeriodMs: 60_000,
    });
    const r = recorder();
    inf.addHandler(r.handler);
    inf.start();
    await inf.waitForSync();
    clock.advance(60_000);
    assert.deepEqual(r.log.slice(2).sort(), ["resync a", "resync b"]);
    await inf.stop();
  });

  test("a late handler first gets every cached object; a throwing handler does not hurt others", async () => {
    const api = fakeApi([configMap("a")]);
    const inf = createInformer({ client: api.client, type: resources.configMaps, clock: fakeClock() });
    inf.addHandler({
      onAdd: () => {
        throw new Error("bad handler");
      },
    });
    inf.start();
    await inf.waitForSync();
    const r = recorder();
    inf.addHandler(r.handler);
    assert.deepEqual(r.log, ["add a (initial)"]);
    await settle();
    api.last().stream.push({ type: "ADDED", object: configMap("b", "ns", "2") });
    await settle();
    assert.deepEqual(r.log, ["add a (initial)", "add b"]);
    await inf.stop();
  });

  test("paginates the list with limit and continue", async () => {
    const pages = [
      { metadata: { continue: "t1", resourceVersion: "5" }, items: [configMap("a")] },
      { metadata: { resourceVersion: "5" }, items: [configMap("b")] },
    ];
    const seen: (string | undefined)[] = [];
    const client = scriptedClient({
      onRequest: (req) => {
        seen.push(req.query?.continue as string | undefined);
        return pages[seen.length - 1];
      },
      onStream: (req) => scriptedStream(req.signal),
    });
    const inf = createInformer({ client, type: resources.configMaps, pageSize: 1, clock: fakeClock() });
    inf.start();
    await inf.waitForSync();
    assert.deepEqual(seen, [undefined, "t1"]);
    assert.equal(inf.size, 2);
    await inf.stop();
  });

  test("managedFields are dropped by default", async () => {
    const cm = configMap("a");
    cm.metadata.managedFields = [{ manager: "x" }];
    const api = fakeApi([cm]);
    const inf = createInformer({ client: api.client, type: resources.configMaps, clock: fakeClock() });
    inf.start();
    await inf.waitForSync();
    assert.equal(inf.get("ns/a")!.metadata.managedFields, undefined);
    await inf.stop();
  });

  test("string values are shared between cached objects, bounded; per-object metadata is left alone", () => {
    const parse = (name: string) =>
      JSON.parse(
        `{"metadata":{"name":"${name}","uid":"u-${name}","namespace":"shop"},"spec":{"ports":["http"],"note":"${"x".repeat(65)}"}}`,
      ) as KubeObject & { spec: { ports: string[]; note: string } };
    const intern = stringInterner(3);
    const a = internStrings(parse("a"), intern);
    const b = internStrings(parse("b"), intern);
    // Same values, and (interned) the same string in both: nothing observable changes.
    assert.deepEqual(b, parse("b"));
    assert.equal(a.metadata.namespace, b.metadata.namespace);
    assert.equal(a.spec.ports[0], "http");
    // The table stays bounded whatever comes through it.
    for (let i = 0; i < 100; i++) intern(`v${i}`);
    assert.equal(intern("shop"), "shop");
  });

  test("equal small subtrees are shared between cached objects, frozen; metadata stays each object's own", () => {
    type Obj = KubeObject & { spec: { ports: { name: string; port: number }[]; big: { note: string } } };
    const parse = (name: string) =>
      JSON.parse(
        `{"metadata":{"name":"${name}","uid":"u-${name}","namespace":"shop","labels":{"app":"web"}},` +
          `"spec":{"ports":[{"name":"http","port":80}],"big":{"note":"${"x".repeat(300)}"}}}`,
      ) as Obj;
    const subtrees = subtreeInterner(8, 256);
    const a = internStrings(parse("a"), stringInterner(), subtrees);
    const b = internStrings(parse("b"), stringInterner(), subtrees);
    // Nothing observable changes, but equal parts are one object.
    assert.deepEqual(b, parse("b"));
    assert.equal(a.spec.ports, b.spec.ports);
    assert.equal(a.metadata.labels, b.metadata.labels);
    assert.ok(Object.isFrozen(a.spec.ports) && Object.isFrozen(a.spec.ports[0]));
    assert.throws(() => {
      a.spec.ports[0]!.port = 81;
    }, TypeError);
    // Past maxJson: each object keeps its own (unique values would only fill the table).
    assert.notEqual(a.spec.big, b.spec.big);
    assert.equal(Object.isFrozen(a.spec.big), false);
    assert.notEqual(a.metadata, b.metadata);
    assert.equal(Object.isFrozen(a.metadata), false);
    assert.equal(Object.isFrozen(a), false);
    // Bounded: however many distinct subtrees pass, equal ones are still shared.
    for (let i = 0; i < 100; i++)
      internStrings(JSON.parse(`{"metadata":{},"spec":{"v":${i}}}`), stringInterner(), subtrees);
    const c = internStrings(parse("c"), stringInterner(), subtrees);
    const d = internStrings(parse("d"), stringInterner(), subtrees);
    assert.equal(c.spec.ports, d.spec.ports);
  });

  test("kubectl's last-applied annotation is dropped by default; other annotations stay", async () => {
    const a = configMap("a");
    a.metadata.annotations = { [lastAppliedAnnotation]: '{"big":"copy"}', keep: "me" };
    const b = configMap("b");
    b.metadata.annotations = { [lastAppliedAnnotation]: '{"big":"copy"}' };
    const api = fakeApi([a, b]);
    const inf = createInformer({ client: api.client, type: resources.configMaps, clock: fakeClock() });
    inf.start();
    await inf.waitForSync();
    assert.deepEqual(inf.get("ns/a")!.metadata.annotations, { keep: "me" });
    assert.equal(inf.get("ns/b")!.metadata.annotations, undefined);
    await inf.stop();
  });
});
