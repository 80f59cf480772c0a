// Roster's promise through the real data plane: a consumer in the node
// namespace resolves the Service with CoreDNS and opens connections to its
// ClusterIP; kube-proxy (nftables) picks a backend from the EndpointSlices
// Roster wrote. Backends are test hosts at 198.18.x.y, probed directly.
// Every connection reports which backend and port served it; the tests
// assert that traffic reached only the expected backends.
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import type { ServiceInstanceInput } from "../../../src/api/index.ts";
import type { Backend, Consumer, ConsumerLine, TestHosts } from "../../../src/dev/testhosts.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import {
  consume,
  dataPlaneInstance,
  servedBy,
  settled,
  tally,
  testHostDestinations,
  testHosts,
} from "../../support/dataplane.ts";
import { INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getInstance,
  publishedDocument,
  readyAddresses,
  sliceEndpoints,
} from "../../support/roster.ts";

const PORT = 8080;

interface Web {
  hosts: TestHosts;
  ns: string;
  dns: string;
  backends: Backend[];
}

/** `n` HTTP backends on test hosts, registered as web-1..n, and the operator. */
async function web(
  t: TestContext,
  n: number,
  {
    policy = {},
    spec = () => ({}),
  }: { policy?: object; spec?: (i: number) => Partial<ServiceInstanceInput["spec"]> } = {},
): Promise<Web | undefined> {
  const hosts = await testHosts(t);
  if (!hosts) return undefined;
  const ns = await testNamespace(t, "dp");
  await startTestOperator(t, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  await createPolicy(ns, "web-policy", { service: "web", ...policy });
  const backends: Backend[] = [];
  for (let i = 0; i < n; i++) {
    const host = await hosts.host();
    backends.push(await host.start({ id: `web-${i + 1}`, http: [PORT] }));
    await createInstance(
      ns,
      `web-${i + 1}`,
      dataPlaneInstance(host, [{ name: "http", port: PORT }], spec(i)),
    );
  }
  return { hosts, ns, dns: `web.${ns}.svc.cluster.local`, backends };
}

const addressesOf = (backends: readonly Backend[]) => backends.map((b) => b.host.ipv4).sort();

/** Waits for exactly these backends' addresses to be ready in the slices (the first time: operator start-up too). */
async function readySet(
  ns: string,
  backends: readonly Backend[],
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const want = addressesOf(backends).join();
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === want ? true : undefined), {
    timeoutMs,
    what,
  });
}

/** Served connections, keyed `id port address`, that only the given backends on `port` may produce. */
function only(backends: readonly Backend[], port = PORT): string[] {
  return backends.map((b) => `${b.id} ${port} ${b.host.ipv4}`).sort();
}

test("a consumer resolving the Service by DNS reaches every healthy backend and only those", async (t) => {
  const w = await web(t, 4);
  if (!w) return;
  const [a, b, c, d] = w.backends as [Backend, Backend, Backend, Backend];
  c.setHealth("failing");
  d.setHealth("failing");
  await readySet(w.ns, [a, b], "web-1 and web-2 ready");
  // kube-proxy programs the change within its sync period: wait until the
  // consumer sees the healthy set only (the failing ones still serve data).
  const live = w.hosts.consumer({ name: w.dns, port: PORT, http: true });
  await settled(live, 0, (l) => l.id === "web-1" || l.id === "web-2", {
    what: "traffic on web-1 and web-2 only",
  });
  await servedBy(live, ["web-1", "web-2"]);
  await live.stop();

  const seen = await consume(w.hosts, { name: w.dns, port: PORT, count: 200 });
  assert.deepEqual(seen.errors, {}, "every connection was served");
  assert.deepEqual(Object.keys(seen.byTarget).sort(), only([a, b]), "only and every healthy backend served");
  t.diagnostic(`200 connections through the ClusterIP: ${JSON.stringify(seen.byId)}`);
});

test("a killed backend stops getting new connections; back, it gets traffic again (times printed)", async (t) => {
  const w = await web(t, 3);
  if (!w) return;
  const [a, b, c] = w.backends as [Backend, Backend, Backend];
  await readySet(w.ns, [a, b, c], "three ready endpoints");
  const live = w.hosts.consumer({ name: w.dns, port: PORT, http: true, concurrency: 2, intervalMs: 5 });
  // kube-proxy has programmed all three once each has served a connection.
  await eventually(
    () => (new Set(live.lines.map((l) => l.id).filter(Boolean)).size === 3 ? true : undefined),
    {
      timeoutMs: 15_000,
      what: "traffic on all three",
    },
  );

  const killedAt = Date.now();
  const from = live.lines.length;
  await c.kill();
  // New connections routed to the dead backend are refused by its host's
  // kernel; once kube-proxy drops it, every connection is served by a or b.
  const start = await settled(live, from, (l) => l.id === "web-1" || l.id === "web-2", {
    what: "no connection to the killed web-3",
  });
  const failures = live.lines.slice(from, start).filter((l) => l.err !== undefined);
  assert.ok(failures.length > 0, "connections were routed to the dead backend until kube-proxy dropped it");
  const last = failures.at(-1)!.t;
  await readySet(w.ns, [a, b], "web-3 unpublished");

  const backAt = Date.now();
  const from2 = live.lines.length;
  await c.restart();
  const first = await eventually(() => live.lines.slice(from2).find((l) => l.id === "web-3"), {
    timeoutMs: 3 * INTERVAL_MS + MARGIN_MS + 5000,
    what: "web-3 served again",
  });
  const all = tally(await live.stop());
  assert.deepEqual(Object.keys(all.byId).sort(), ["web-1", "web-2", "web-3"]);
  for (const key of Object.keys(all.byTarget)) {
    assert.ok(only([a, b, c]).includes(key), `${key} is one of the test backends`);
  }
  t.diagnostic(
    `kill → last new connection to it: ${last - killedAt} ms (${failures.length} refused); ` +
      `back → first connection served by it: ${first.t - backAt} ms`,
  );
});

test("a drained instance gets no new connections and stays listed as serving and terminating", async (t) => {
  const w = await web(t, 3, { spec: (i) => (i === 2 ? { drain: true } : {}) });
  if (!w) return;
  const [a, b, c] = w.backends as [Backend, Backend, Backend];
  await readySet(w.ns, [a, b], "web-1 and web-2 ready, web-3 drained");
  const drained = await eventually(
    async () =>
      (await sliceEndpoints(w.ns, "web")).find(
        (e) => e.addresses[0] === c.host.ipv4 && e.conditions?.serving,
      ),
    { timeoutMs: 15_000, what: "web-3 listed as serving" },
  );
  assert.deepEqual({ ...drained.conditions }, { ready: false, serving: true, terminating: true });
  const live = w.hosts.consumer({ name: w.dns, port: PORT, http: true });
  await settled(live, 0, (l) => l.id === "web-1" || l.id === "web-2", { what: "traffic on web-1 and web-2" });
  await servedBy(live, ["web-1", "web-2"]);
  await live.stop();
  const seen = await consume(w.hosts, { name: w.dns, port: PORT, count: 150 });
  assert.deepEqual(seen.errors, {});
  assert.deepEqual(Object.keys(seen.byTarget).sort(), only([a, b]), "the drained backend got nothing");
});

test("panic: below panicThreshold traffic reaches every non-drained instance", async (t) => {
  const w = await web(t, 5, {
    policy: { publish: { panicThreshold: 50 } },
    spec: (i) => (i === 4 ? { drain: true } : {}),
  });
  if (!w) return;
  const [a, b, c, d, e] = w.backends as [Backend, Backend, Backend, Backend, Backend];
  await readySet(w.ns, [a, b, c, d], "four ready, web-5 drained");
  // Three of four fail their health checks: 25 % healthy is below 50 %.
  for (const x of [a, b, c]) x.setHealth("failing");
  await eventually(async () => ((await publishedDocument(w.ns, "web-roster"))?.panic ? true : undefined), {
    timeoutMs: 3 * INTERVAL_MS + MARGIN_MS,
    what: "panic published",
  });
  await eventually(
    async () => ((await getInstance(w.ns, "web-3")).status?.healthy === false ? true : undefined),
    {
      timeoutMs: MARGIN_MS,
      what: "web-3 recorded unhealthy",
    },
  );
  await readySet(w.ns, [a, b, c, d], "every non-drained instance ready in panic");
  const live = w.hosts.consumer({ name: w.dns, port: PORT, http: true });
  await servedBy(live, ["web-1", "web-2", "web-3", "web-4"]);
  await live.stop();
  const seen = await consume(w.hosts, { name: w.dns, port: PORT, count: 240 });
  assert.deepEqual(seen.errors, {});
  assert.deepEqual(Object.keys(seen.byTarget).sort(), only([a, b, c, d]), "all but the drained web-5");
  assert.equal(seen.byId[e.id], undefined);
});

test("named ports: each Service port reaches each backend's own port of that name", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const ns = await testNamespace(t, "dp");
  await startTestOperator(t, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  // Two instances that number their ports differently: the Service keeps one
  // number per name, kube-proxy maps each endpoint by the port's name.
  const h1 = await hosts.host();
  const h2 = await hosts.host();
  const one = await h1.start({ id: "one", http: [8080, 9090] });
  const two = await h2.start({ id: "two", http: [8081, 9091] });
  const ports = (http: number, admin: number) => [
    { name: "http", port: http },
    { name: "admin", port: admin },
  ];
  await createInstance(ns, "one", dataPlaneInstance(h1, ports(8080, 9090)));
  await createInstance(ns, "two", dataPlaneInstance(h2, ports(8081, 9091)));
  await readySet(ns, [one, two], "both ready");
  const dns = `web.${ns}.svc.cluster.local`;
  const live = hosts.consumer({ name: dns, port: 8080, http: true });
  await servedBy(live, ["one", "two"]);
  await live.stop();
  const http = await consume(hosts, { name: dns, port: 8080, count: 100 });
  const admin = await consume(hosts, { name: dns, port: 9090, count: 100 });
  assert.deepEqual(http.errors, {});
  assert.deepEqual(admin.errors, {});
  assert.deepEqual(Object.keys(http.byTarget).sort(), [`one 8080 ${h1.ipv4}`, `two 8081 ${h2.ipv4}`]);
  assert.deepEqual(Object.keys(admin.byTarget).sort(), [`one 9090 ${h1.ipv4}`, `two 9091 ${h2.ipv4}`]);
});

test("dual stack: IPv4 and IPv6 consumers reach the healthy instances of their family", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const ns = await testNamespace(t, "dp");
  await startTestOperator(t, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  const h1 = await hosts.host();
  const h2 = await hosts.host();
  await h1.start({ id: "one", http: [PORT] });
  const two = await h2.start({ id: "two", http: [PORT] });
  two.setHealth("failing");
  const http = [{ name: "http", port: PORT }];
  // One instance per address: each backend is registered at its IPv4 and its IPv6 address.
  await createInstance(ns, "one-v4", dataPlaneInstance(h1, http));
  await createInstance(ns, "one-v6", dataPlaneInstance(h1, http, { address: h1.ipv6 }));
  await createInstance(ns, "two-v4", dataPlaneInstance(h2, http));
  await createInstance(ns, "two-v6", dataPlaneInstance(h2, http, { address: h2.ipv6 }));
  const want = [h1.ipv4, h1.ipv6].sort().join();
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === want ? true : undefined), {
    timeoutMs: 15_000,
    what: "one ready in both families, two in neither",
  });
  const dns = `web.${ns}.svc.cluster.local`;
  for (const family of [4, 6] as const) {
    const live: Consumer = hosts.consumer({ name: dns, port: PORT, http: true, family });
    await settled(live, 0, (l) => l.id === "one", { n: 30, what: `IPv${family} traffic on one only` });
    const lines: ConsumerLine[] = await live.stop();
    const resolved = lines.find((l) => l.resolved)?.resolved ?? "";
    assert.equal(resolved.includes(":"), family === 6, `IPv${family} ClusterIP ${resolved}`);
    const seen = await consume(hosts, { name: dns, port: PORT, count: 100, family });
    assert.deepEqual(seen.errors, {});
    assert.deepEqual(Object.keys(seen.byTarget), [`one ${PORT} ${family === 4 ? h1.ipv4 : h1.ipv6}`]);
  }
});
