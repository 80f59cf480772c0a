// Zone hints and weights end to end: with publish.zoneHints (deprecated,
// still read: it means trafficDistribution PreferClose), ready endpoints
// carry their zone and hints.forZones, the Service asks for
// trafficDistribution PreferClose, and the ConfigMap carries weights, zones
// and zoneAware. One ready endpoint without a zone turns the hints off for
// the whole service (kube-proxy would ignore them anyway).
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getService,
  patchPolicySpec,
  publishedDocument,
  readyAddresses,
  sliceEndpoints,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("zone hints and weights reach the EndpointSlices, the Service and the ConfigMap", async (t) => {
  const ns = await testNamespace(t, "zones");
  const targets = await httpTargets(t, 4);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", {
    service: "web",
    loadBalancing: { strategy: "WeightedRoundRobin" },
    publish: { zoneHints: true },
  });
  const zones = ["zone-a", "zone-b", "zone-a"];
  const weights = [100, 300, 0];
  for (const i of [0, 1, 2]) {
    await createInstance(
      ns,
      `web-${i + 1}`,
      webInstance(targets[i]!, i, { zone: zones[i], weight: weights[i], tags: ["eu"] }),
    );
  }
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 3 ? true : undefined), {
    timeoutMs: 15_000,
    what: "three ready endpoints",
  });

  const endpoints = await sliceEndpoints(ns, "web");
  for (const [i, zone] of zones.entries()) {
    const ep = endpoints.find((e) => e.addresses[0] === `192.0.2.${i + 1}`);
    assert.equal(ep?.zone, zone);
    assert.deepEqual(
      ep?.hints?.forZones?.map((z) => z.name),
      [zone],
    );
  }
  const service = await getService(ns, "web");
  assert.equal(service?.spec?.trafficDistribution, "PreferClose");
  const doc = await publishedDocument(ns, "web-roster");
  assert.ok(doc);
  assert.equal(doc.loadBalancing.strategy, "WeightedRoundRobin");
  assert.equal(doc.loadBalancing.zoneAware, true);
  assert.deepEqual(
    doc.endpoints.map((e) => [e.instance, e.weight, e.zone, e.tags]),
    [
      ["web-1", 100, "zone-a", ["eu"]],
      ["web-2", 300, "zone-b", ["eu"]],
      ["web-3", 0, "zone-a", ["eu"]],
    ],
  );

  // A ready endpoint without a zone: no hints for anyone; zones stay. The
  // Service keeps asking for PreferClose (a health or membership change does
  // not rewrite the Service).
  const serviceVersion = service?.metadata?.resourceVersion;
  await createInstance(ns, "web-4", webInstance(targets[3]!, 3));
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 4 ? true : undefined), {
    timeoutMs: 1000 + MARGIN_MS,
    what: "four ready endpoints",
  });
  const after = await sliceEndpoints(ns, "web");
  assert.deepEqual(
    after.filter((e) => e.hints !== undefined),
    [],
    "no endpoint keeps hints when one ready endpoint has no zone",
  );
  assert.equal(after.find((e) => e.addresses[0] === "192.0.2.2")?.zone, "zone-b");
  const doc4 = await publishedDocument(ns, "web-roster");
  assert.equal(doc4?.endpoints.find((e) => e.instance === "web-4")?.zone, undefined);
  assert.equal(doc4?.endpoints.find((e) => e.instance === "web-4")?.weight, 100, "default weight");
  const service4 = await getService(ns, "web");
  assert.equal(service4?.spec?.trafficDistribution, "PreferClose");
  assert.equal(service4?.metadata?.resourceVersion, serviceVersion, "the Service was not rewritten");
});

test("turning zone hints off removes them from the slices and the Service", async (t) => {
  const ns = await testNamespace(t, "zones-off");
  const targets = await httpTargets(t, 2);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web", publish: { zoneHints: true } });
  for (const i of [0, 1]) {
    await createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i, { zone: `zone-${i}` }));
  }
  await eventually(
    async () => {
      const eps = await sliceEndpoints(ns, "web");
      return eps.length === 2 && eps.every((e) => e.hints?.forZones?.length === 1) ? true : undefined;
    },
    { timeoutMs: 15_000, what: "two endpoints with hints" },
  );
  assert.equal((await getService(ns, "web"))?.spec?.trafficDistribution, "PreferClose");

  // From the deprecated field to its replacement: the Service follows.
  await patchPolicySpec(ns, "web", { publish: { trafficDistribution: "PreferSameZone" } });
  await eventually(
    async () =>
      (await getService(ns, "web"))?.spec?.trafficDistribution === "PreferSameZone" ? true : undefined,
    { timeoutMs: MARGIN_MS, what: "trafficDistribution PreferSameZone on the Service" },
  );

  // null removes trafficDistribution (a JSON merge patch); zoneHints false means no hints either.
  await patchPolicySpec(ns, "web", {
    publish: { zoneHints: false, ...({ trafficDistribution: null } as object) },
  });
  await eventually(
    async () => {
      const eps = await sliceEndpoints(ns, "web");
      const service = await getService(ns, "web");
      return eps.length === 2 &&
        eps.every((e) => e.hints === undefined && e.zone !== undefined) &&
        service?.spec?.trafficDistribution === undefined
        ? true
        : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "hints and trafficDistribution gone, zones kept" },
  );
  const doc = await publishedDocument(ns, "web-roster");
  assert.equal(doc?.loadBalancing.zoneAware, false);
});
