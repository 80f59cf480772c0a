// The pure parts of `roster selftest` (the Helm test hook) and `roster version`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  metricsProblem,
  REQUIRED_METRIC,
  reconciled,
  selftestNamespace,
  selftestObjects,
} from "../../../src/cli/selftest.ts";
import { versionLine } from "../../../src/cli/version.ts";

describe("selftest", () => {
  test("metrics: Roster's controller metric is required, declared or with a series; HELP alone does not count", () => {
    assert.equal(
      metricsProblem(`# HELP x\n${REQUIRED_METRIC}{controller="a",result="success"} 3\n`),
      undefined,
    );
    assert.equal(metricsProblem(`${REQUIRED_METRIC} 0\n`), undefined);
    assert.equal(metricsProblem(`# TYPE ${REQUIRED_METRIC} counter\n`), undefined);
    assert.match(
      metricsProblem(`# HELP ${REQUIRED_METRIC} x\nprocess_cpu_seconds_total 1\n`) ?? "",
      /has no/,
    );
    assert.match(metricsProblem("") ?? "", new RegExp(REQUIRED_METRIC));
  });

  test("reconciled: status written for the current generation only", () => {
    const cond = (observedGeneration: number) => ({
      type: "Healthy",
      status: "True" as const,
      reason: "r",
      message: "",
      lastTransitionTime: "2030-01-01T00:00:00Z",
      observedGeneration,
    });
    assert.equal(reconciled({ metadata: { generation: 1 } }), false);
    assert.equal(reconciled({ metadata: { generation: 2 }, status: { conditions: [cond(1)] } }), false);
    assert.equal(reconciled({ metadata: { generation: 2 }, status: { conditions: [cond(2)] } }), true);
    assert.equal(reconciled({ metadata: { generation: 3 }, status: { observedGeneration: 3 } }), true);
    assert.equal(reconciled({ status: { observedGeneration: 1 } }), false);
  });

  test("objects: a policy probing nothing and an instance of its service, labelled, in the namespace", () => {
    const { name, policy, instance } = selftestObjects("ns1", "abc123");
    assert.equal(name, "roster-selftest-abc123");
    for (const o of [policy, instance]) {
      assert.equal(o.metadata.namespace, "ns1");
      assert.equal(o.metadata.name, name);
      assert.equal(o.metadata.labels["app.kubernetes.io/created-by"], "roster-selftest");
    }
    assert.deepEqual(policy.spec.healthCheck.probes, [{ type: "none", name: "none" }]);
    assert.equal(instance.spec.service, policy.spec.service);
  });

  test("namespace: flag, then the pod's, then the kubeconfig's, then default", () => {
    assert.equal(selftestNamespace("a", "b", "c"), "a");
    assert.equal(selftestNamespace(undefined, "b", "c"), "b");
    assert.equal(selftestNamespace(undefined, undefined, "c"), "c");
    assert.equal(selftestNamespace(undefined, undefined, undefined), "default");
  });
});

test("version line, with and without a commit", () => {
  assert.equal(versionLine("0.1.0", undefined), "roster 0.1.0");
  assert.equal(versionLine("0.1.0", "abc"), "roster 0.1.0 (commit abc)");
});
