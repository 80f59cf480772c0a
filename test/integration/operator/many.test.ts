// 250 instances of one service: three EndpointSlices (100, 100, 50), and a
// change to one instance rewrites exactly one slice.
//
// Cheap but real: 249 instances are probed with a TCP connect to one
// loopback server (the policy's check); the one that changes replaces it
// with an HTTP check of its own server (an override that sets every field),
// which the test then fails. The
// instances exist before the operator starts, so the start-up hold publishes
// them in one go (as after any operator restart).
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST, httpCheck, INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstances,
  createPolicy,
  getInstance,
  listInstances,
  readyAddresses,
  slicesOf,
  sliceVersions,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const N = 250;
const CHANGED = 137;

test("250 instances make three slices; one instance change rewrites one slice", async (t) => {
  const ns = await testNamespace(t, "many");
  const [shared, own] = await httpTargets(t, 2);
  await createPolicy(ns, "web", {
    service: "web",
    healthCheck: { probes: [{ type: "tcp", tcp: { host: shared!.host, port: "http" } }], ...FAST },
  });
  await createInstances(
    ns,
    Array.from({ length: N }, (_, k) => ({
      name: `web-${k + 1}`,
      spec: {
        service: "web",
        address: `192.0.2.${k + 1}`,
        ports: [{ name: "http", port: shared!.port }],
        // Every field set: replaces the policy's check as a whole (no merge).
        ...(k + 1 === CHANGED
          ? { healthCheck: httpCheck(own!, { combine: "all", initialDelay: "0s" }) }
          : {}),
      },
    })),
  );
  const started = Date.now();
  await startTestOperator(t, { namespaces: [ns] });
  await eventually(async () => ((await readyAddresses(ns, "web")).length === N ? true : undefined), {
    timeoutMs: 20_000,
    intervalMs: 200,
    what: `${N} ready endpoints`,
  });
  t.diagnostic(`${N} endpoints published ${Date.now() - started} ms after the operator started`);
  // Steady state: every status written.
  await eventually(
    async () => ((await listInstances(ns)).every((i) => i.status?.healthy === true) ? true : undefined),
    { timeoutMs: 20_000, intervalMs: 200, what: "every instance recorded healthy" },
  );
  const slices = await slicesOf(ns, "web");
  assert.deepEqual(
    slices.map((s) => s.endpoints?.length).sort((a, b) => (a ?? 0) - (b ?? 0)),
    [50, 100, 100],
  );
  assert.ok(slices.every((s) => s.addressType === "IPv4"));

  const before = await sliceVersions(ns, "web");
  const address = `192.0.2.${CHANGED}`;
  const holder = slices.find((s) => s.endpoints?.some((e) => e.addresses.includes(address)))!.metadata!.name!;
  own!.healthy = false;
  await eventually(async () => ((await readyAddresses(ns, "web")).length === N - 1 ? true : undefined), {
    timeoutMs: 2 * INTERVAL_MS + MARGIN_MS,
    intervalMs: 200,
    what: `web-${CHANGED} to leave the slices`,
  });
  await eventually(
    async () => ((await getInstance(ns, `web-${CHANGED}`)).status?.healthy === false ? true : undefined),
    { timeoutMs: MARGIN_MS, what: `web-${CHANGED} recorded unhealthy` },
  );
  const after = await sliceVersions(ns, "web");
  const rewritten = Object.keys(after).filter((name) => after[name] !== before[name]);
  assert.deepEqual(rewritten, [holder], "only the slice that held the failed endpoint was written");
  assert.deepEqual(Object.keys(after).sort(), Object.keys(before).sort(), "no slice created or deleted");
  assert.ok(!(await readyAddresses(ns, "web")).includes(address));
});
