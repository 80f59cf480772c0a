// Slow start end to end: an instance that turns healthy under a policy with
// loadBalancing.slowStart is published once with slowStartSince (its
// healthy transition, whole seconds); the ConfigMap is not rewritten while
// the window runs; a RosterClient reading it with an injected clock weighs
// it from the floor to its full weight. An instance healthy before the
// policy existed does not ramp.
import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRng } from "../../../src/balance/random.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  getConfigMap,
  getInstance,
  publishedDocument,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const WINDOW_MS = 10_000;
const WAIT = { timeoutMs: 2 * 1000 + 2 * MARGIN_MS };

test("a new healthy instance ramps from the floor over the window, published once", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "slow-start");
  const [steady, fresh] = await httpTargets(t, 2);
  await startTestOperator(t, { namespaces: [ns] });
  await createInstance(ns, "web-1", webInstance(steady!, 0, { weight: 100 }));
  const healthy1 = await eventually(
    async () => {
      const si = await getInstance(ns, "web-1");
      return si.status?.healthy === true && si.status.lastTransitionTime
        ? si.status.lastTransitionTime
        : undefined;
    },
    { ...WAIT, what: "web-1 healthy" },
  );
  // The policy is created in a later second than web-1 turned healthy: web-1 is not new to clients.
  await eventually(async () => (Date.now() >= Date.parse(healthy1) + 1000 ? true : undefined), {
    timeoutMs: 2000,
    what: "the second after web-1 turned healthy",
  });
  await createPolicy(ns, "web", {
    service: "web",
    loadBalancing: { strategy: "RoundRobin", slowStart: { window: "10s", minWeightPercent: 20 } },
  });
  await createInstance(ns, "web-2", webInstance(fresh!, 1, { weight: 100 }));

  const doc = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      const e = d?.endpoints.find((x) => x.instance === "web-2");
      return d?.loadBalancing.slowStart && e?.ready ? d : undefined;
    },
    { ...WAIT, what: "web-2 ready in the ConfigMap under slow start" },
  );
  const entry2 = doc.endpoints.find((e) => e.instance === "web-2")!;
  const entry1 = doc.endpoints.find((e) => e.instance === "web-1")!;
  assert.equal(entry1.slowStartSince, undefined, "healthy before the policy: no ramp");
  const since = entry2.slowStartSince;
  assert.ok(since, "web-2 carries slowStartSince");
  const si2 = await getInstance(ns, "web-2");
  assert.equal(since, si2.status?.lastTransitionTime, "the healthy transition the status recorded");
  assert.deepEqual(doc.loadBalancing.slowStart, { windowMs: WINDOW_MS, aggression: 1, minWeightPercent: 20 });
  const start = Date.parse(since);
  const version = (await getConfigMap(ns, "web-roster"))?.metadata?.resourceVersion;

  // The client at injected times: weights 100 vs 20 (floor), 100 vs 50, then equal.
  let now = start;
  const client = new RosterClient(kc, { namespace: ns, rng: seededRng(3), clock: { now: () => now } });
  t.after(() => client.close());
  await client.ready({ timeoutMs: 30_000 });
  await eventually(() => (client.endpoints("web").length === 2 ? true : undefined), {
    ...WAIT,
    what: "the client sees both endpoints",
  });
  const share = () => {
    let n = 0;
    for (let i = 0; i < 4000; i++) if (client.pick("web").endpoint.instance === "web-2") n++;
    return n / 4000;
  };
  const floor = share();
  assert.ok(Math.abs(floor - 20 / 120) < 0.03, `at the start: ${floor}`);
  now = start + WINDOW_MS / 2;
  const half = share();
  assert.ok(Math.abs(half - 50 / 150) < 0.03, `half way: ${half}`);
  now = start + WINDOW_MS;
  assert.equal(share(), 0.5, "after the window: plain round robin");

  // No write while the window runs (probes every second change only the status).
  await eventually(async () => (Date.now() >= start + WINDOW_MS + 1000 ? true : undefined), {
    timeoutMs: WINDOW_MS + 5000,
    what: "the window's end",
  });
  const after = await getConfigMap(ns, "web-roster");
  assert.equal(after?.metadata?.resourceVersion, version, "the ConfigMap was rewritten during the ramp");
});
