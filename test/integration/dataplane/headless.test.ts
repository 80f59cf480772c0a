// publish.headless through the real data plane: the Service gets clusterIP
// None, and CoreDNS (the node namespace's resolver) answers its name with
// the ready endpoint addresses themselves, A and AAAA, nothing else. A
// killed backend leaves the answer once Roster unpublishes it. Turning
// headless off (and on again) replaces the Service, since clusterIP is
// immutable; the name then resolves to a ClusterIP that kube-proxy routes.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend, TestHost } from "../../../src/dev/testhosts.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import {
  consume,
  dataPlaneInstance,
  servedBy,
  testHostDestinations,
  testHosts,
} from "../../support/dataplane.ts";
import { INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getConfigMap,
  getService,
  patchPolicySpec,
  readyAddresses,
} from "../../support/roster.ts";

const PORT = 8080;
const http = [{ name: "http", port: PORT }];
const addressesOf = (hosts: readonly TestHost[]) => ({
  A: hosts.map((h) => h.ipv4).sort(),
  AAAA: hosts.map((h) => h.ipv6).sort(),
});

test("headless: CoreDNS answers exactly the ready addresses (A and AAAA); a killed backend leaves the answer", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const ns = await testNamespace(t, "dp");
  await startTestOperator(t, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  await createPolicy(ns, "web-policy", { service: "web", publish: { headless: true } });
  const backends: Backend[] = [];
  for (let i = 0; i < 3; i++) {
    const host = await hosts.host();
    backends.push(await host.start({ id: `web-${i + 1}`, http: [PORT] }));
    // One instance per address family of each backend.
    await createInstance(ns, `web-${i + 1}-v4`, dataPlaneInstance(host, http));
    await createInstance(ns, `web-${i + 1}-v6`, dataPlaneInstance(host, http, { address: host.ipv6 }));
  }
  const [a, b, c] = backends as [Backend, Backend, Backend];
  c.setHealth("failing");
  const dns = `web.${ns}.svc.cluster.local`;
  const answers = async (want: { A: string[]; AAAA: string[] }, what: string) => {
    const wanted = JSON.stringify(want);
    return eventually(
      async () => {
        const got = await hosts.resolveAll(dns);
        return JSON.stringify(got) === wanted ? got : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what },
    );
  };

  await answers(addressesOf([a.host, b.host]), "DNS: web-1 and web-2, both families");
  const service = await getService(ns, "web");
  assert.equal(service?.spec?.clusterIP, "None");
  assert.deepEqual(service?.spec?.selector, undefined, "still selector-less");
  // A consumer connecting by the name reaches a ready endpoint directly
  // (getaddrinfo orders the answer, so always the same one).
  const seen = await consume(hosts, { name: dns, port: PORT, count: 40, resolveEach: true });
  assert.deepEqual(seen.errors, {});
  for (const id of Object.keys(seen.byId)) assert.ok(["web-1", "web-2"].includes(id), `${id} is ready`);

  const killedAt = Date.now();
  await a.kill();
  await answers(addressesOf([b.host]), "DNS: web-2 only after web-1 was killed");
  t.diagnostic(`kill → gone from DNS: ${Date.now() - killedAt} ms`);

  c.setHealth("healthy");
  await answers(addressesOf([b.host, c.host]), "DNS: web-3 back once healthy");
});

test("headless on and off replaces the Service: ClusterIP routed by kube-proxy, then DNS answers addresses again", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const ns = await testNamespace(t, "dp");
  await startTestOperator(t, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  await createPolicy(ns, "web-policy", { service: "web" });
  const host = await hosts.host();
  await host.start({ id: "web-1", http: [PORT] });
  await createInstance(ns, "web-1", dataPlaneInstance(host, http));
  const dns = `web.${ns}.svc.cluster.local`;
  const clusterIP = async () => (await getService(ns, "web"))?.spec?.clusterIP;
  const first = await eventually(async () => (await clusterIP()) || undefined, {
    timeoutMs: 15_000,
    what: "the Service with a ClusterIP",
  });
  assert.notEqual(first, "None");
  const uid = (await getService(ns, "web"))?.metadata?.uid;

  await patchPolicySpec(ns, "web-policy", { publish: { headless: true } });
  await eventually(async () => ((await clusterIP()) === "None" ? true : undefined), {
    timeoutMs: 3 * INTERVAL_MS + MARGIN_MS,
    what: "the Service replaced by a headless one",
  });
  assert.notEqual((await getService(ns, "web"))?.metadata?.uid, uid, "a new Service");
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === host.ipv4 ? true : undefined), {
    timeoutMs: 15_000,
    what: "slices written again for the new Service",
  });
  await eventually(async () => ((await hosts.resolveAll(dns)).A.join() === host.ipv4 ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: "DNS: the endpoint address",
  });
  // The ConfigMap followed the Service: owned by the new one, not collected with the old.
  const newUid = (await getService(ns, "web"))?.metadata?.uid;
  await eventually(
    async () => {
      const cm = await getConfigMap(ns, "web-roster");
      return cm?.metadata?.ownerReferences?.[0]?.uid === newUid ? true : undefined;
    },
    { timeoutMs: 15_000, what: "the ConfigMap owned by the new Service" },
  );

  await patchPolicySpec(ns, "web-policy", { publish: { headless: false } });
  const ip = await eventually(
    async () => {
      const v = await clusterIP();
      return v && v !== "None" ? v : undefined;
    },
    { timeoutMs: 3 * INTERVAL_MS + MARGIN_MS, what: "a Service with a ClusterIP again" },
  );
  await eventually(async () => ((await hosts.resolveAll(dns)).A.join() === ip ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: "DNS: the new ClusterIP",
  });
  const live = hosts.consumer({ name: dns, port: PORT, http: true });
  await servedBy(live, ["web-1"]);
  await live.stop();
});
