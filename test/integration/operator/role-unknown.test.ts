// publish.role with instances whose check has no postgres or redis probe
// (issue 19): their role is never known, so they are never published; the
// policy says so (RoleUnknown, reason NoRoleProbe; not Ready when no instance
// can ever be published) instead of publishing nothing silently. A real TCP
// server on loopback keeps the instance healthy; the real sandbox's API server.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DiscoveryPolicyInput } from "../../../src/api/index.ts";
import { ROLE_UNKNOWN } from "../../../src/operator/status.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createPolicy,
  getInstance,
  patchPolicySpec,
  policyWithCondition,
  publishedDocument,
} from "../../support/roster.ts";
import { connectionRecorder } from "../../support/servers.ts";

test("publish.role without a database probe: RoleUnknown/NoRoleProbe on the policy, published once it is gone", async (t) => {
  const ns = await testNamespace(t, "role-unknown");
  const server = await connectionRecorder();
  t.after(() => server.close());
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "plain", {
    service: "plain",
    healthCheck: {
      probes: [{ type: "tcp", tcp: {} }],
      interval: "1s",
      timeout: "500ms",
      failureThreshold: 1,
      successThreshold: 1,
    },
    publish: { role: "primary" },
  });
  await createInstance(ns, "plain-a", {
    service: "plain",
    address: "127.0.0.1",
    ports: [{ name: "tcp", port: server.port }],
  });

  const p = await policyWithCondition(ns, "plain", ROLE_UNKNOWN, "True", 30_000);
  assert.equal(condition(p, ROLE_UNKNOWN)?.reason, "NoRoleProbe");
  assert.match(
    condition(p, ROLE_UNKNOWN)?.message ?? "",
    /1 of 1 instances have no postgres or redis probe.*plain-a/,
  );
  assert.equal(condition(p, "Ready")?.status, "False");
  assert.equal(condition(p, "Ready")?.reason, "NoRoleProbe");
  // Healthy all along: the role filter, not its health, kept it out.
  assert.equal((await getInstance(ns, "plain-a")).status?.healthy, true);
  const doc = await publishedDocument(ns, "plain-roster");
  assert.deepEqual(
    (doc?.endpoints ?? []).map((e) => e.instance),
    [],
  );

  // publish.role removed (a merge patch's null deletes the field): published, the condition False.
  await patchPolicySpec(ns, "plain", { publish: { role: null } } as unknown as Partial<
    DiscoveryPolicyInput["spec"]
  >);
  const fixed = await policyWithCondition(ns, "plain", ROLE_UNKNOWN, "False", 30_000);
  assert.equal(condition(fixed, ROLE_UNKNOWN)?.reason, "RoleProbes");
  await eventually(
    async () => {
      const d = await publishedDocument(ns, "plain-roster");
      return d?.endpoints.some((e) => e.instance === "plain-a" && e.ready) ? d : undefined;
    },
    { timeoutMs: 30_000, what: "plain-a published as ready" },
  );
});
