// A per-instance health check override merges over the policy's: pointing one
// instance's probe at another host keeps the policy's path, port, timing and
// thresholds, the instance's status shows the merged check, and a change of
// the policy reaches the instance through the merge.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST, INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstance, createPolicy, getInstance, patchPolicySpec } from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("an instance's health check override merges over the policy's, field by field", async (t) => {
  const ns = await testNamespace(t, "override");
  const [a, b] = await httpTargets(t, 2);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", {
    service: "web",
    healthCheck: {
      probes: [{ type: "http", http: { host: a!.host, port: "http", path: "/healthz" } }],
      ...FAST,
    },
  });
  const ports = [{ name: "http", port: a!.port }];
  await createInstance(ns, "web-1", { service: "web", address: "192.0.2.1", ports });
  // Only the host: the path, port and timing are the policy's.
  await createInstance(ns, "web-2", {
    service: "web",
    address: "192.0.2.2",
    ports,
    healthCheck: { probes: [{ type: "http", http: { host: b!.host } }] },
  });
  a!.healthy = false;
  await eventually(
    async () => {
      const [one, two] = [await getInstance(ns, "web-1"), await getInstance(ns, "web-2")];
      return one.status?.healthy === false && two.status?.healthy === true ? true : undefined;
    },
    {
      timeoutMs: 2 * INTERVAL_MS + MARGIN_MS + 3000,
      what: "web-1 unhealthy (probed at a), web-2 healthy (at b)",
    },
  );
  assert.ok(b!.hits > 0, "web-2 probed at b's /healthz: the policy's path");
  const two = await getInstance(ns, "web-2");
  assert.deepEqual(two.status?.effectiveHealthCheck, {
    source: "InstanceOverPolicy",
    policy: "web",
    probes: [`http GET http://${b!.host}:http/healthz (200-399)`],
    combine: "all",
    interval: "1s",
    timeout: "500ms",
    initialDelay: "0s",
    failureThreshold: 2,
    successThreshold: 1,
    jitter: 0,
  });
  assert.equal((await getInstance(ns, "web-1")).status?.effectiveHealthCheck?.source, "Policy");

  // The policy changes: the merged check follows.
  await patchPolicySpec(ns, "web", {
    healthCheck: {
      probes: [{ type: "http", http: { host: a!.host, port: "http", path: "/healthz" } }],
      ...FAST,
      failureThreshold: 4,
    },
  });
  await eventually(
    async () =>
      (await getInstance(ns, "web-2")).status?.effectiveHealthCheck?.failureThreshold === 4
        ? true
        : undefined,
    { timeoutMs: MARGIN_MS + 2000, what: "web-2's merged check follows the policy" },
  );
});
