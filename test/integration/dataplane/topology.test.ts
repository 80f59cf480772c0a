// publish.trafficDistribution through the real data plane. The sandbox's
// Node (the one kube-proxy runs for) is labelled
// topology.kubernetes.io/zone=<plane.zone>; instances carry spec.zone. With
// PreferSameZone, Roster sets the Service's trafficDistribution and each
// ready endpoint's hints.forZones, and kube-proxy keeps the node's traffic
// on endpoints of its own zone while that zone has a ready one; when none is
// left, no endpoint is hinted for the zone and kube-proxy falls back to all
// (the other zone's).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../../../src/dev/testhosts.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import {
  consume,
  dataPlaneInstance,
  settled,
  testHostDestinations,
  testHosts,
} from "../../support/dataplane.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getService,
  readyAddresses,
  sliceEndpoints,
} from "../../support/roster.ts";

const PORT = 8080;
const http = [{ name: "http", port: PORT }];

test("PreferSameZone: traffic stays in the node's zone while it has ready endpoints, then falls back", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const here = hosts.plane.zone;
  const there = `${here}-other`;
  const ns = await testNamespace(t, "dp");
  await startTestOperator(t, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  await createPolicy(ns, "web-policy", {
    service: "web",
    publish: { trafficDistribution: "PreferSameZone" },
  });
  const zones = [here, here, there, there];
  const backends: Backend[] = [];
  for (const [i, zone] of zones.entries()) {
    const host = await hosts.host();
    backends.push(await host.start({ id: `web-${i + 1}`, http: [PORT] }));
    await createInstance(ns, `web-${i + 1}`, dataPlaneInstance(host, http, { zone }));
  }
  const [a, b] = backends as [Backend, Backend, Backend, Backend];
  const all = backends.map((x) => x.host.ipv4).sort();
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined), {
    timeoutMs: 15_000,
    what: "four ready endpoints",
  });
  assert.equal((await getService(ns, "web"))?.spec?.trafficDistribution, "PreferSameZone");
  for (const e of await sliceEndpoints(ns, "web")) {
    assert.deepEqual(
      e.hints?.forZones?.map((z) => z.name),
      [e.zone],
      `hints of ${e.addresses[0]}`,
    );
  }
  const dns = `web.${ns}.svc.cluster.local`;
  const inZone = (id?: string) => id === "web-1" || id === "web-2";
  const live = hosts.consumer({ name: dns, port: PORT, http: true, concurrency: 2, intervalMs: 5 });
  await settled(live, 0, (l) => inZone(l.id), { n: 80, what: `traffic in ${here} only` });

  // One endpoint left in the zone: still all traffic on it.
  a.setHealth("failing");
  await settled(live, live.lines.length, (l) => l.id === "web-2", { n: 60, what: "traffic on web-2 only" });
  // None left: hints for the zone are gone and kube-proxy uses the other zone.
  const lastFailedAt = Date.now();
  const mark = live.lines.length;
  b.setHealth("failing");
  const from = await settled(live, live.lines.length, (l) => l.id === "web-3" || l.id === "web-4", {
    n: 80,
    what: `fallback to ${there}`,
  });
  const fallback = new Set(live.lines.slice(from).map((l) => l.id));
  const firstOut = live.lines.slice(mark).find((l) => l.id === "web-3" || l.id === "web-4")!;
  t.diagnostic(
    `zone's last endpoint failing → first connection to the other zone: ${firstOut.t - lastFailedAt} ms`,
  );
  // Back in the zone: traffic returns to it.
  a.setHealth("healthy");
  await settled(live, live.lines.length, (l) => l.id === "web-1", { n: 80, what: "traffic back on web-1" });
  await live.stop();
  assert.deepEqual([...fallback].sort(), ["web-3", "web-4"], "both endpoints of the other zone served");
  const seen = await consume(hosts, { name: dns, port: PORT, count: 100 });
  assert.deepEqual(seen.errors, {});
  assert.deepEqual(Object.keys(seen.byId), ["web-1"]);
});
