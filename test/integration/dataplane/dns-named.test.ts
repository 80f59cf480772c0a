// An instance registered by DNS name, through the real data plane. A test DNS
// server on loopback answers for shop.roster.test with test-host addresses
// and the operator resolves through it (`probing.dnsServers` is this
// resolver). Roster probes each address of the name and publishes those that
// pass; a consumer in the node namespace reaches them through the ClusterIP,
// and traffic follows when the name's records change.
import assert from "node:assert/strict";
import { test } from "node:test";
import { dnsServersResolver } from "../../../src/health/dns.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import {
  consume,
  dataPlaneInstance,
  settled,
  testHostDestinations,
  testHosts,
} from "../../support/dataplane.ts";
import { startDnsServer } from "../../support/dns-server.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstance, createPolicy, getInstance, readyAddresses } from "../../support/roster.ts";

const PORT = 8080;
const NAME = "shop.roster.test";

test("a DNS-named instance: the consumer reaches the name's passing addresses through the ClusterIP", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const ns = await testNamespace(t, "dp");
  const h1 = await hosts.host();
  const h2 = await hosts.host();
  const a = await h1.start({ id: "shop-a", http: [PORT] });
  await h2.start({ id: "shop-b", http: [PORT] });
  const dns = await startDnsServer(t, { [NAME]: [h1.ipv4] });
  await startTestOperator(t, {
    namespaces: [ns],
    destinations: testHostDestinations(hosts.plane),
    probing: { resolver: dnsServersResolver([dns.address]), dnsRefreshMs: 1000 },
  });
  await createPolicy(ns, "web-policy", { service: "web" });
  await createInstance(ns, "shop", dataPlaneInstance(h1, [{ name: "http", port: PORT }], { address: NAME }));
  const ready = (want: string[], what: string) =>
    eventually(
      async () => ((await readyAddresses(ns, "web")).join() === [...want].sort().join() ? true : undefined),
      { timeoutMs: 15_000, what },
    );
  await ready([h1.ipv4], "the name's address published");
  assert.deepEqual((await getInstance(ns, "shop")).status?.healthy, true);
  const svc = `web.${ns}.svc.cluster.local`;
  const live = hosts.consumer({ name: svc, port: PORT, http: true, concurrency: 2, intervalMs: 5 });
  await settled(live, 0, (l) => l.id === "shop-a", { what: "traffic on shop-a" });

  // The name gains an address: both get traffic.
  dns.records.set(NAME, [h1.ipv4, h2.ipv4]);
  await ready([h1.ipv4, h2.ipv4], "both addresses of the name published");
  await eventually(() => (live.lines.some((l) => l.id === "shop-b") ? true : undefined), {
    timeoutMs: 15_000,
    what: "traffic on shop-b",
  });
  // One address fails its probe: the instance stays healthy and publishes the one that passes.
  a.setHealth("failing");
  await ready([h2.ipv4], "only the passing address published");
  await settled(live, live.lines.length, (l) => l.id === "shop-b", { what: "traffic on shop-b only" });
  await live.stop();
  assert.equal((await getInstance(ns, "shop")).status?.healthy, true);
  const seen = await consume(hosts, { name: svc, port: PORT, count: 100 });
  assert.deepEqual(seen.errors, {});
  assert.deepEqual(Object.keys(seen.byTarget), [`shop-b ${PORT} ${h2.ipv4}`]);
});
