// A service whose published document grows over the ConfigMap budget (issue
// 13 item 4): Roster must not leave the previous document in place (it would
// keep a drained and a failed instance `ready: true` for every reader). The
// ConfigMap holds a stale document instead (no endpoints, `stale` set, the
// roster.dev/published-stale annotation), the RosterClient refuses it with
// StalePublicationError, the policy says PublishFailed, the instances' Ready
// condition names the stale ConfigMap instead of "published as ready", and
// the EndpointSlices stay current. Once the document fits again, all of it is
// current again.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  PUBLISHED_DATA_KEY,
  PUBLISHED_STALE_ANNOTATION,
  parsePublishedEndpoints,
} from "../../../src/api/published.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { StalePublicationError } from "../../../src/client/errors.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createInstances,
  createPolicy,
  deleteInstance,
  getConfigMap,
  getInstance,
  getPolicy,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets, setHealthy } from "../../support/targets.ts";

const FAIL_MS = 2 * INTERVAL_MS + MARGIN_MS + 5000;
/**
 * The budget, lowered from 1,000,000 bytes (planConfigMap's unit tests use
 * the real one): reaching it here would take ~230 near-1 MB ConfigMap writes.
 */
const BUDGET = 12_000;
/** Bulk instances with maximal metadata (4,096 bytes each): about 4.4 kB per endpoint. */
const BULK = 4;
const bulkMetadata = Object.fromEntries(["a", "b", "c", "d"].map((k) => [k, k.repeat(1023)]));

test("over the ConfigMap budget: a stale document readers refuse, truthful conditions, and recovery", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "cm-budget");
  const [ok, sick, drained] = await httpTargets(t, 3);
  await startTestOperator(t, {
    namespaces: [ns],
    settings: { configMapBudgetBytes: BUDGET, configMapMaxParts: 1 },
  });
  await createPolicy(ns, "web", { service: "web" });
  await createInstance(ns, "web-ok", webInstance(ok!, 0));
  await createInstance(ns, "web-sick", webInstance(sick!, 1));
  await createInstance(ns, "web-drained", webInstance(drained!, 2, { drain: true }));
  setHealthy([sick!], false);

  const client = new RosterClient(kc, { namespace: ns });
  t.after(() => client.close());
  await client.ready({ timeoutMs: 15_000 });
  const states = async () => {
    const cm = await getConfigMap(ns, "web-roster");
    if (!cm?.data) return undefined;
    const doc = parsePublishedEndpoints(cm.data);
    return Object.fromEntries(doc.endpoints.map((e) => [e.instance, `${e.state}/${e.ready}`]));
  };
  await eventually(
    async () => {
      const s = await states();
      return s?.["web-ok"] === "Ready/true" &&
        s["web-sick"] === "Unhealthy/false" &&
        s["web-drained"] === "Draining/false"
        ? true
        : undefined;
    },
    { timeoutMs: FAIL_MS, what: "web-ok Ready, web-sick Unhealthy, web-drained Draining in the ConfigMap" },
  );
  await eventually(
    () =>
      client
        .endpoints("web")
        .map((e) => e.instance)
        .join() === "web-ok"
        ? true
        : undefined,
    { timeoutMs: 5000, what: "the client to route to web-ok only" },
  );

  // Over budget: registration-only instances (healthy at once) whose metadata
  // together exceed the budget.
  await createInstances(
    ns,
    Array.from({ length: BULK }, (_, i) => ({
      name: `bulk-${i}`,
      spec: {
        service: "web",
        address: `2001:db8::1:${i + 1}`,
        ports: [{ name: "http", port: ok!.port }],
        metadata: bulkMetadata,
        healthCheck: { probes: [{ type: "none" as const }], interval: "1s", timeout: "500ms" },
      },
    })),
  );
  // web-ok changes while over budget: the old document would have kept it ready.
  setHealthy([ok!], false);

  const staleMap = await eventually(
    async () => {
      const cm = await getConfigMap(ns, "web-roster");
      return cm?.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION] === "OverBudget" ? cm : undefined;
    },
    { timeoutMs: 30_000, what: "the ConfigMap marked stale (OverBudget)" },
  );
  const stale = parsePublishedEndpoints(staleMap.data);
  assert.deepEqual(stale.endpoints, [], "a stale document carries no endpoints");
  assert.equal(stale.stale?.reason, "OverBudget");
  assert.equal(stale.stale?.limit, BUDGET);
  assert.ok((stale.stale?.bytes ?? 0) > BUDGET, `full document: ${stale.stale?.bytes} bytes`);
  assert.ok(Buffer.byteLength(staleMap.data![PUBLISHED_DATA_KEY]!, "utf8") < 1000);
  t.diagnostic(`stale at revision ${stale.revision}: the full document would be ${stale.stale?.bytes} bytes`);

  // The client refuses it; the last good set is kept aside, not served.
  const refused = await eventually(
    () => {
      try {
        client.pick("web").release();
        return undefined;
      } catch (err) {
        return err instanceof StalePublicationError ? err : undefined;
      }
    },
    { timeoutMs: 5000, what: "the client to refuse the stale document" },
  );
  assert.equal(refused.code, "StalePublication");
  assert.equal(refused.stale.reason, "OverBudget");
  assert.throws(() => client.endpoints("web"), StalePublicationError);
  t.diagnostic(refused.message);

  // The policy says why.
  const ready = await eventually(
    async () => {
      const c = condition(await getPolicy(ns, "web"), "Ready");
      return c?.reason === "PublishFailed" ? c : undefined;
    },
    { timeoutMs: 10_000, what: "policy Ready False PublishFailed" },
  );
  assert.equal(ready.status, "False");
  assert.match(ready.message ?? "", new RegExp(`over the ${BUDGET}-byte budget.*published as stale`));

  // Instances do not claim the ConfigMap: ready in the EndpointSlices only.
  const bulkReady = await eventually(
    async () => {
      const c = condition(await getInstance(ns, "bulk-0"), "Ready");
      return c?.reason === "ConfigMapStale" ? c : undefined;
    },
    { timeoutMs: 10_000, what: "bulk-0 Ready reason ConfigMapStale" },
  );
  assert.equal(bulkReady.status, "True");
  assert.match(bulkReady.message ?? "", /EndpointSlices only; ConfigMap web-roster is published stale/);
  assert.doesNotMatch(bulkReady.message ?? "", /^published as ready$/);
  // ... and the EndpointSlices stay current: web-ok left them when it failed.
  await eventually(async () => ((await readyAddresses(ns, "web")).includes("192.0.2.1") ? undefined : true), {
    timeoutMs: FAIL_MS,
    what: "web-ok out of the EndpointSlices",
  });

  // Fits again: the current document, served by the client, conditions back.
  setHealthy([ok!], true);
  for (let i = 0; i < BULK; i++) await deleteInstance(ns, `bulk-${i}`);
  const back = await eventually(
    async () => {
      const cm = await getConfigMap(ns, "web-roster");
      return cm?.data && !cm.metadata?.annotations?.[PUBLISHED_STALE_ANNOTATION] ? cm : undefined;
    },
    { timeoutMs: 30_000, what: "the ConfigMap current again" },
  );
  const doc = parsePublishedEndpoints(back.data);
  assert.equal(doc.stale, undefined);
  assert.ok(doc.revision > stale.revision);
  await eventually(async () => ((await states())?.["web-ok"] === "Ready/true" ? true : undefined), {
    timeoutMs: FAIL_MS,
    what: "web-ok Ready again in the ConfigMap",
  });
  await eventually(
    () => {
      try {
        return client
          .endpoints("web")
          .map((e) => e.instance)
          .join() === "web-ok"
          ? true
          : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 5000, what: "the client to serve the current set again" },
  );
  await eventually(
    async () => {
      const c = condition(await getPolicy(ns, "web"), "Ready");
      return c?.status === "True" && c.reason === "Published" ? true : undefined;
    },
    { timeoutMs: 10_000, what: "policy Ready True Published" },
  );
  await eventually(
    async () => {
      const c = condition(await getInstance(ns, "web-ok"), "Ready");
      return c?.status === "True" && c.message === "published as ready" ? true : undefined;
    },
    { timeoutMs: 10_000, what: "web-ok Ready True, published as ready" },
  );
});
