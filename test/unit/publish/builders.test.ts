import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { TrafficDistribution } from "../../../src/api/discoverypolicy.ts";
import {
  type LoadBalancing,
  PUBLISHED_DATA_KEY,
  PUBLISHED_MAX_BYTES,
  PUBLISHED_REVISION_ANNOTATION,
  PUBLISHED_STALE_ANNOTATION,
  parsePublishedEndpoints,
} from "../../../src/api/published.ts";
import {
  buildPublishedContent,
  buildService,
  computeDesired,
  defaultConfigMapName,
  type InstanceInput,
  isManagedByRoster,
  nextRevision,
  planConfigMap,
  serviceNeedsReplace,
  serviceOwnerReference,
  staleReasonOf,
} from "../../../src/publish/index.ts";
import { instance, NS, OWNER, SVC } from "./helpers.ts";

const RR: LoadBalancing = { strategy: "RoundRobin", zoneAware: false };

function content(instances: InstanceInput[], lb: LoadBalancing = RR, panicThreshold = 0) {
  return buildPublishedContent(computeDesired(NS, SVC, instances, { panicThreshold }), lb);
}

const NAME = defaultConfigMapName(SVC);

/** Plans and "writes": returns the ConfigMap as the API server would hold it. */
function write(instances: InstanceInput[], previous?: V1ConfigMap, lb: LoadBalancing = RR) {
  const plan = planConfigMap({
    namespace: NS,
    name: NAME,
    content: content(instances, lb),
    previous,
    owner: OWNER,
  });
  return { plan, stored: plan.changed ? plan.configMap : previous };
}

const THREE = [
  instance("a"),
  instance("b", { addresses: ["10.1.0.2"] }),
  instance("c", { addresses: ["10.1.0.3"], verdict: "Unhealthy" }),
];

describe("planConfigMap and revisions", () => {
  it("starts at revision 1 with a complete ConfigMap", () => {
    const { plan } = write(THREE);
    assert.equal(plan.revision, 1);
    assert.ok(plan.changed && plan.contentChanged);
    assert.equal(plan.configMap.metadata?.name, "web-roster");
    assert.equal(plan.configMap.metadata?.annotations?.[PUBLISHED_REVISION_ANNOTATION], "1");
    assert.deepEqual(plan.configMap.metadata?.ownerReferences, [OWNER]);
    assert.ok(isManagedByRoster(plan.configMap.metadata));
    const doc = parsePublishedEndpoints(plan.configMap.data);
    assert.deepEqual(doc, plan.document);
    assert.equal(doc.endpoints.length, 3);
  });

  it("keeps the revision when the content is equal, in any input order", () => {
    const first = write(THREE);
    const again = write([...THREE].reverse(), first.stored);
    assert.equal(again.plan.revision, 1);
    assert.equal(again.plan.changed, false);
    assert.equal(again.plan.contentChanged, false);
    assert.equal(
      again.plan.configMap.data?.[PUBLISHED_DATA_KEY],
      first.plan.configMap.data?.[PUBLISHED_DATA_KEY],
    );
  });

  it("bumps the revision by one on every content change, and only then", () => {
    let stored = write(THREE).stored;
    const steps: [InstanceInput[], LoadBalancing, number][] = [
      [THREE, RR, 1],
      [[...THREE.slice(0, 2), { ...THREE[2]!, verdict: "Healthy" }], RR, 2],
      [[...THREE.slice(0, 2), { ...THREE[2]!, verdict: "Healthy" }], RR, 2],
      [
        [...THREE.slice(0, 2), { ...THREE[2]!, verdict: "Healthy" }],
        { strategy: "Random", zoneAware: false },
        3,
      ],
      [[THREE[0]!], { strategy: "Random", zoneAware: false }, 4],
      [[{ ...THREE[0]!, weight: 5 }], { strategy: "Random", zoneAware: false }, 5],
      [[{ ...THREE[0]!, weight: 5 }], { strategy: "Random", zoneAware: false }, 5],
    ];
    for (const [instances, lb, expected] of steps) {
      const next = write(instances, stored, lb);
      assert.equal(next.plan.revision, expected);
      stored = next.stored;
    }
  });

  it("rewrites without a revision bump when only metadata drifted", () => {
    const first = write(THREE).stored!;
    const drifted = { ...first, metadata: { ...first.metadata, labels: {} } };
    const { plan } = write(THREE, drifted);
    assert.equal(plan.changed, true);
    assert.equal(plan.contentChanged, false);
    assert.equal(plan.revision, 1);
  });

  it("continues from the revision of a document it cannot read", () => {
    const newer: V1ConfigMap = {
      metadata: { name: NAME, namespace: NS },
      data: { [PUBLISHED_DATA_KEY]: JSON.stringify({ formatVersion: 2, revision: 41, whatever: true }) },
    };
    assert.equal(write(THREE, newer).plan.revision, 42);
    const garbage: V1ConfigMap = { metadata: { name: NAME }, data: { [PUBLISHED_DATA_KEY]: "{" } };
    assert.equal(write(THREE, garbage).plan.revision, 1);
  });

  it("keeps the revision of the same content written in another spelling, and rewrites it canonically", () => {
    const first = write(THREE).plan;
    const compact: V1ConfigMap = {
      ...first.configMap,
      data: { [PUBLISHED_DATA_KEY]: JSON.stringify({ ...first.document, revision: 6 }) },
      metadata: { ...first.configMap.metadata, annotations: { [PUBLISHED_REVISION_ANNOTATION]: "6" } },
    };
    const { plan } = write(THREE, compact);
    assert.equal(plan.revision, 6);
    assert.equal(plan.contentChanged, false);
    assert.equal(plan.changed, true);
  });

  it("nextRevision keeps, bumps, and starts at 1", () => {
    const c = content(THREE);
    assert.equal(nextRevision(undefined, c), 1);
    assert.equal(nextRevision({ ...c, revision: 7 }, c), 7);
    assert.equal(nextRevision({ ...c, revision: 7 }, { ...c, panic: true }), 8);
    assert.equal(nextRevision(undefined, c, 10), 11);
  });

  it("carries consistent-hash options only for ConsistentHash", () => {
    const ch: LoadBalancing = {
      strategy: "ConsistentHash",
      zoneAware: true,
      consistentHash: { algorithm: "Ring", tableSize: 1024, key: { source: "Caller" } },
    };
    assert.deepEqual(write(THREE, undefined, ch).plan.document.loadBalancing, ch);
    const { consistentHash: _, ...rr } = { ...ch, strategy: "RoundRobin" as const };
    assert.deepEqual(
      write(THREE, undefined, { ...ch, strategy: "RoundRobin" }).plan.document.loadBalancing,
      rr,
    );
  });

  it("flags panic in the document", () => {
    const c = content(THREE, RR, 100);
    assert.equal(c.panic, true);
    assert.deepEqual(
      c.endpoints.map((e) => e.state),
      ["Ready", "Ready", "Panic"],
    );
  });

  it("refuses invalid content", () => {
    assert.throws(
      () =>
        planConfigMap({ namespace: NS, name: NAME, content: content([instance("a", { weight: 20000 })]) }),
      /weight/,
    );
  });

  it("over budget, plans a stale document (no endpoints, marked) instead of leaving the old set, and recovers", () => {
    const three = ["a", "b", "c"].map((n, i) =>
      instance(n, { addresses: [`10.0.0.${i + 1}`], metadata: { description: "x".repeat(300) } }),
    );
    const first = write(three).stored!;
    const fits = Buffer.byteLength(first.data![PUBLISHED_DATA_KEY]!, "utf8");
    const plan = planConfigMap(
      {
        namespace: NS,
        name: NAME,
        content: content([...three, instance("d")]),
        previous: first,
        owner: OWNER,
      },
      fits,
    );
    assert.ok(plan.overBudget && plan.overBudget.bytes > fits, JSON.stringify(plan.overBudget));
    assert.equal(plan.overBudget.limit, fits);
    assert.ok(plan.changed && plan.contentChanged);
    assert.equal(plan.revision, 2);
    const doc = parsePublishedEndpoints(plan.configMap.data);
    assert.deepEqual(doc.endpoints, []);
    assert.deepEqual(doc.stale, { reason: "OverBudget", bytes: plan.overBudget.bytes, limit: fits });
    assert.equal(doc.revision, 2);
    assert.equal(plan.configMap.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION], "OverBudget");
    assert.equal(staleReasonOf(plan.configMap), "OverBudget");

    // Still over budget with the same content: nothing to write.
    const again = planConfigMap(
      {
        namespace: NS,
        name: NAME,
        content: content([...three, instance("d")]),
        previous: plan.configMap,
        owner: OWNER,
      },
      fits,
    );
    assert.equal(again.changed, false);
    assert.equal(again.revision, 2);

    // Fits again: a current document at the next revision; the marker is cleared (to "").
    const back = planConfigMap(
      { namespace: NS, name: NAME, content: content(three), previous: plan.configMap, owner: OWNER },
      fits,
    );
    assert.equal(back.overBudget, undefined);
    assert.equal(back.revision, 3);
    assert.equal(parsePublishedEndpoints(back.configMap.data).endpoints.length, 3);
    assert.equal(parsePublishedEndpoints(back.configMap.data).stale, undefined);
    assert.equal(back.configMap.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION], "");
    assert.equal(staleReasonOf(back.configMap), undefined);
    // A ConfigMap that was never stale carries no marker.
    assert.equal(first.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION], undefined);
  });

  it("at the real budget: 2,500 endpoints with 300-byte metadata are over it", () => {
    const big = Array.from({ length: 2500 }, (_, i) =>
      instance(`instance-with-a-long-name-${i}`, {
        addresses: [`10.${i >> 8}.${i & 255}.1`],
        metadata: { description: "x".repeat(300) },
      }),
    );
    const plan = planConfigMap({ namespace: NS, name: NAME, content: content(big) });
    assert.ok(plan.overBudget && plan.overBudget.bytes > PUBLISHED_MAX_BYTES);
    assert.ok(plan.bytes < 1000, `stale document is ${plan.bytes} bytes`);
  });
});

describe("buildService", () => {
  const input = (
    instances: InstanceInput[],
    extra: { trafficDistribution?: TrafficDistribution; headless?: boolean } = {},
  ) => ({
    namespace: NS,
    service: SVC,
    instances,
    ...extra,
  });

  it("builds a selector-less, Roster-labelled Service with the union of named ports", () => {
    const { service, conflicts } = buildService(
      input([
        instance("a", { ports: [{ name: "http", port: 8080 }] }),
        instance("b", {
          ports: [
            { name: "http", port: 8080 },
            { name: "grpc", port: 9000, appProtocol: "kubernetes.io/h2c" },
          ],
        }),
      ]),
    );
    assert.deepEqual(conflicts, []);
    assert.equal(service?.metadata?.name, SVC);
    assert.equal(service?.metadata?.namespace, NS);
    assert.ok(isManagedByRoster(service?.metadata));
    assert.equal(service?.spec?.selector, undefined);
    assert.equal(service?.spec?.type, "ClusterIP");
    assert.equal(service?.spec?.trafficDistribution, undefined);
    assert.deepEqual(service?.spec?.ports, [
      { name: "grpc", port: 9000, protocol: "TCP", targetPort: 9000, appProtocol: "kubernetes.io/h2c" },
      { name: "http", port: 8080, protocol: "TCP", targetPort: 8080 },
    ]);
  });

  it("uses the most common port number and reports the disagreement", () => {
    const { service, conflicts } = buildService(
      input([
        instance("a", { ports: [{ name: "http", port: 9090 }] }),
        instance("b", { ports: [{ name: "http", port: 8080 }] }),
        instance("c", { ports: [{ name: "http", port: 8080 }] }),
      ]),
    );
    assert.deepEqual(
      service?.spec?.ports?.map((p) => p.port),
      [8080],
    );
    assert.equal(conflicts.length, 1);
    assert.match(conflicts[0]!.message, /8080\/TCP \(2\), 9090\/TCP \(1\)/);
  });

  it("leaves out a second name on the same port and protocol", () => {
    const { service, conflicts } = buildService(
      input([
        instance("a", { ports: [{ name: "web", port: 80 }] }),
        instance("b", { ports: [{ name: "http", port: 80 }] }),
      ]),
    );
    assert.deepEqual(
      service?.spec?.ports?.map((p) => p.name),
      ["http"],
    );
    assert.match(conflicts[0]!.message, /"web" is left out/);
  });

  it("returns no Service without ports, and sets the trafficDistribution it is given", () => {
    assert.equal(buildService(input([])).service, undefined);
    for (const td of ["PreferSameZone", "PreferClose"] as const) {
      assert.equal(
        buildService(input([instance("a")], { trafficDistribution: td })).service?.spec?.trafficDistribution,
        td,
      );
    }
  });

  it("builds a headless Service on request, and says when a live Service must be replaced", () => {
    const plain = buildService(input([instance("a")])).service!;
    const headless = buildService(input([instance("a")], { headless: true })).service!;
    assert.equal(plain.spec?.clusterIP, undefined, "the API server allocates the ClusterIP");
    assert.equal(headless.spec?.clusterIP, "None");
    const live = (clusterIP: string) => ({ ...plain, spec: { ...plain.spec, clusterIP } });
    assert.equal(serviceNeedsReplace(undefined, headless), false);
    assert.equal(serviceNeedsReplace(live("10.96.0.10"), plain), false);
    assert.equal(serviceNeedsReplace(live("None"), headless), false);
    assert.equal(serviceNeedsReplace(live("10.96.0.10"), headless), true);
    assert.equal(serviceNeedsReplace(live("None"), plain), true);
  });

  it("makes the owner reference from a stored Service", () => {
    assert.deepEqual(serviceOwnerReference({ metadata: { name: SVC, uid: "u" } }), {
      apiVersion: "v1",
      kind: "Service",
      name: SVC,
      uid: "u",
      controller: true,
      blockOwnerDeletion: true,
    });
    assert.throws(() => serviceOwnerReference({ metadata: { name: SVC } }), /uid/);
  });
});
