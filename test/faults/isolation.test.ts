// Namespace isolation. One operator serves namespaces A and B, each with a
// DiscoveryPolicy and instances of a service named `web` (same names, same
// published addresses). While everything in A is changed — the policy's
// panic threshold, publish settings and load balancing, its health check, a
// new instance, a Secret-backed probe header, and finally the deletion of
// A's instances — watches on B (from the resourceVersion of a list taken
// when B had settled) must see no event at all on B's EndpointSlices,
// ConfigMaps, Services, instances or policy. A probe header's secretKeyRef
// in A resolves to A's Secret only, even while only B has a Secret of that
// name.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DiscoveryPolicyInput, HealthCheckInput } from "../../src/api/index.ts";
import { resources } from "../../src/kube/object.ts";
import { rosterResources } from "../../src/operator/context.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { FAST } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import { condition, rosterApi } from "../support/roster.ts";
import { type HttpTarget, httpTargets } from "../support/targets.ts";
import { sleep, watchChanges } from "./support.ts";

const check = (target: HttpTarget, extra: Partial<HealthCheckInput> = {}): HealthCheckInput => ({
  probes: [{ type: "http", http: { host: target.host, port: "http", path: "/healthz" } }],
  ...FAST,
  ...extra,
});

const policy = (target: HttpTarget): DiscoveryPolicyInput["spec"] => ({
  service: "web",
  healthCheck: check(target),
  publish: { panicThreshold: 50 },
});

/** web-N published at 192.0.2.N; probed through the policy's check (its host). */
const instance = (n: number, port: number) => ({
  service: "web",
  address: `192.0.2.${n}`,
  ports: [{ name: "http", port }],
});

test("changes to namespace A never touch what is published in namespace B", async (t) => {
  const { kc } = await testCluster();
  const k = rosterApi(kc);
  const [a, b] = await Promise.all([testNamespace(t, "iso-a"), testNamespace(t, "iso-b")]);
  // 127.0.0.1 serves A, .2 serves B, .3 is a failing server, .4 checks A's Secret-backed header.
  const [targetA, targetB, failing, secretTarget] = await httpTargets(t, 4);
  failing!.healthy = false;
  const port = targetA!.port;

  for (const [ns, target] of [
    [a!, targetA!],
    [b!, targetB!],
  ] as const) {
    await k.createPolicy(ns, "web", policy(target));
    await k.createInstance(ns, "web-1", instance(1, port));
    await k.createInstance(ns, "web-2", instance(2, port));
  }
  // Only B has the Secret A's probe header will name.
  await k.createSecret(b!, "probe-token", { token: "secret-of-b" });
  await startTestOperator(t, { namespaces: [a!, b!] });

  const settled = async (ns: string) => {
    if ((await k.readyAddresses(ns, "web")).join() !== "192.0.2.1,192.0.2.2") return undefined;
    if ((await k.publishedDocument(ns, "web-roster"))?.endpoints.length !== 2) return undefined;
    for (const name of ["web-1", "web-2"]) {
      if ((await k.getInstance(ns, name)).status?.healthy !== true) return undefined;
    }
    const p = await k.getPolicy(ns, "web");
    return p.status?.healthyInstances === 2 && p.status.observedGeneration === p.metadata.generation
      ? true
      : undefined;
  };
  await eventually(async () => ((await settled(a!)) && (await settled(b!)) ? true : undefined), {
    what: "A and B published and recorded",
    timeoutMs: 20_000,
    intervalMs: 200,
  });
  // Let trailing writes (policy status, Events) land before B's watches start.
  await sleep(1500);
  const watched = [
    resources.endpointSlices,
    resources.configMaps,
    resources.services,
    rosterResources.serviceInstances,
    rosterResources.discoveryPolicies,
  ];
  const bChanges = await watchChanges(kc, b!, watched);
  const bBefore = await snapshot(k, b!);

  // 1. A's policy: panic threshold, ConfigMap name and load-balancing strategy.
  await k.patchPolicySpec(a!, "web", {
    publish: { panicThreshold: 0, configMap: { name: "web-a" } },
    loadBalancing: { strategy: "LeastConnections" },
  });
  await eventually(
    async () =>
      (await k.publishedDocument(a!, "web-a"))?.loadBalancing.strategy === "LeastConnections"
        ? true
        : undefined,
    { what: "A's ConfigMap under its new name with the new strategy", timeoutMs: 10_000, intervalMs: 200 },
  );

  // 2. A new instance in A naming service `web` (B has no web-3).
  await k.createInstance(a!, "web-3", instance(3, port));
  await eventually(
    async () =>
      (await k.readyAddresses(a!, "web")).join() === "192.0.2.1,192.0.2.2,192.0.2.3" ? true : undefined,
    { what: "A's web-3 published", timeoutMs: 10_000, intervalMs: 200 },
  );

  // 3. A probe header from Secret `probe-token`, which only B has: never resolved to B's.
  await k.createInstance(a!, "web-secret", {
    ...instance(4, port),
    healthCheck: check(secretTarget!, {
      probes: [
        {
          type: "http",
          http: {
            host: secretTarget!.host,
            port: "http",
            path: "/healthz",
            headers: [
              { name: "X-Token", valueFrom: { secretKeyRef: { name: "probe-token", key: "token" } } },
            ],
          },
        },
      ],
    }),
  });
  const missing = await eventually(
    async () => {
      const si = await k.getInstance(a!, "web-secret");
      return condition(si, "Healthy") ? si : undefined;
    },
    { what: "A's web-secret has a Healthy condition", timeoutMs: 10_000, intervalMs: 200 },
  );
  assert.equal(condition(missing, "Healthy")?.reason, "SecretNotFound", "B's Secret is not A's");
  assert.equal(secretTarget!.hits, 0, "never probed with a header from another namespace");
  await k.createSecret(a!, "probe-token", { token: "secret-of-a" });
  await eventually(
    async () => ((await k.getInstance(a!, "web-secret")).status?.healthy === true ? true : undefined),
    { what: "A's web-secret healthy with A's Secret", timeoutMs: 20_000, intervalMs: 250 },
  );
  assert.equal(secretTarget!.lastHeaders?.["x-token"], "secret-of-a");

  // 4. A's health check now fails everywhere (panic off): A's set empties.
  await k.patchPolicySpec(a!, "web", { healthCheck: check(failing!) });
  await eventually(
    async () => ((await k.readyAddresses(a!, "web")).join() === "192.0.2.4" ? true : undefined),
    { what: "A's policy-checked instances unpublished", timeoutMs: 10_000, intervalMs: 200 },
  );

  // 5. A's instances deleted.
  for (const name of ["web-1", "web-2", "web-3", "web-secret"]) await k.deleteInstance(a!, name);
  await eventually(
    async () => {
      const doc = await k.publishedDocument(a!, "web-a");
      return (await k.slicesOf(a!, "web")).every((s) => (s.endpoints ?? []).length === 0) &&
        doc?.endpoints.length === 0
        ? true
        : undefined;
    },
    { what: "A's published set empty", timeoutMs: 10_000, intervalMs: 200 },
  );

  // Trailing writes for A (policy status, ConfigMap revision) would land within this.
  await sleep(2000);
  bChanges.stop();
  assert.deepEqual(bChanges.events, [], "no change event in namespace B");
  assert.deepEqual(await snapshot(k, b!), bBefore, "B's objects are exactly as before");
  assert.equal(targetB!.healthy, true);
  assert.ok(targetB!.hits > 0, "B was probed throughout");

  // Renaming A's ConfigMap (publish.configMap.name) removes the one under the old name (finding 4).
  await eventually(async () => ((await k.getConfigMap(a!, "web-roster")) === undefined ? true : undefined), {
    timeoutMs: 10_000,
    what: "A's old ConfigMap web-roster removed after the rename",
  });
});

/** B's published objects and Roster objects, by resourceVersion. */
async function snapshot(k: ReturnType<typeof rosterApi>, ns: string) {
  const slices = await k.slicesOf(ns, "web");
  return {
    ready: await k.readyAddresses(ns, "web"),
    slices: slices.map((s) => `${s.metadata?.name}@${s.metadata?.resourceVersion}`).sort(),
    configMap: (await k.getConfigMap(ns, "web-roster"))?.metadata?.resourceVersion,
    service: (await k.getService(ns, "web"))?.metadata?.resourceVersion,
    policy: (await k.getPolicy(ns, "web")).metadata.resourceVersion,
    instances: (await k.listInstances(ns))
      .map((i) => `${i.metadata.name}@${i.metadata.resourceVersion}`)
      .sort(),
  };
}
