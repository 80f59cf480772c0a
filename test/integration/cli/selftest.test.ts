// `roster selftest` and `roster version` as processes. The passing selftest
// runs against the containerized operator in test/integration/image/; here:
// its failures are one clear line, exit 1, and leave no test object behind.
import assert from "node:assert/strict";
import { test } from "node:test";
import { kubeClient, resourcePath } from "../../../src/kube/index.ts";
import { rosterResources } from "../../../src/operator/context.ts";
import { roster } from "../../support/cli.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";

test("roster version prints package.json's version, and the baked-in commit", async () => {
  const plain = await roster(["version"], { env: { ROSTER_COMMIT: undefined } });
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, "roster 0.1.0\n");
  const baked = await roster(["version"], { env: { ROSTER_COMMIT: "0123abc" } });
  assert.equal(baked.stdout, "roster 0.1.0 (commit 0123abc)\n");
});

test("selftest without an operator: one line naming the step that failed, exit 1, objects deleted", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "selftest");
  const env = { KUBECONFIG: kubeconfigPath };
  const unreachable = await roster(
    ["selftest", "--metrics-url", "http://127.0.0.1:1/metrics", "--timeout", "1s"],
    {
      env,
    },
  );
  assert.equal(unreachable.code, 1);
  assert.match(
    unreachable.stdout,
    /^selftest failed: \/metrics answering 200 within 1 s: .*127\.0\.0\.1:1.*\n$/,
  );

  // Nobody reconciles in this namespace: the status never comes.
  const r = await roster(["selftest", "-n", ns, "--timeout", "2s"], { env });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(
      `^selftest failed: the operator writing ServiceInstance ${ns}/roster-selftest-[0-9a-f]{6}'s status within 2 s\\n$`,
    ),
  );
  const client = kubeClient(kc);
  for (const type of [rosterResources.serviceInstances, rosterResources.discoveryPolicies]) {
    const list = await client.request<{ items: unknown[] }>({
      method: "GET",
      path: resourcePath(type, { namespace: ns }),
    });
    assert.deepEqual(list.items, [], `${type.plural} deleted`);
  }
});
