// `roster status` against a namespace where the real operator (in-process)
// probed real loopback targets: the table, JSON and YAML show each instance's
// health, readiness and reason, and per service the policy, strategy,
// published revision (also for a service without a DiscoveryPolicy, read
// from its ConfigMap) and panic. An unknown service is an error.
import assert from "node:assert/strict";
import { test } from "node:test";
import { load } from "js-yaml";
import type { ServiceView } from "../../../src/cli/table.ts";
import { roster } from "../../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { httpCheck, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createPolicy,
  listInstances,
  publishedDocument,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("roster status: table, json and yaml of what the operator recorded; unknown service exit 1", async (t) => {
  const { kubeconfigPath } = await testCluster();
  const env = { KUBECONFIG: kubeconfigPath };
  const ns = await testNamespace(t, "cli-status");
  const targets = await httpTargets(t, 4);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web-policy", {
    service: "web",
    loadBalancing: { strategy: "WeightedRoundRobin" },
  });
  targets[1]!.healthy = false;
  await createInstance(ns, "web-1", webInstance(targets[0]!, 0, { weight: 300, zone: "zone-a" }));
  await createInstance(ns, "web-2", webInstance(targets[1]!, 1, { zone: "zone-b" }));
  await createInstance(ns, "web-3", webInstance(targets[2]!, 2, { drain: true }));
  // No DiscoveryPolicy for `api`: the default policy (its own check still probes loopback).
  await createInstance(ns, "api-1", {
    service: "api",
    address: "192.0.2.50",
    ports: [{ name: "http", port: targets[3]!.port }],
    healthCheck: httpCheck(targets[3]!),
  });

  // Settled: every verdict recorded and both services published with them.
  const settled = async () => {
    const items = await listInstances(ns);
    const by = new Map(items.map((i) => [i.metadata.name, i]));
    const ok =
      by.get("web-1")?.status?.healthy === true &&
      by.get("web-2")?.status?.healthy === false &&
      condition(by.get("web-3") ?? {}, "Ready")?.reason === "Draining" &&
      by.get("api-1")?.status?.healthy === true;
    if (!ok) return undefined;
    const web = await publishedDocument(ns, "web-roster");
    const api = await publishedDocument(ns, "api-roster");
    const states = web?.endpoints.map((e) => e.state).join();
    return states === "Ready,Unhealthy,Draining" && api?.endpoints[0]?.state === "Ready"
      ? { web, api }
      : undefined;
  };
  const docs = await eventually(settled, { timeoutMs: 20_000, what: "verdicts recorded and published" });

  // JSON: the whole view, as data.
  const json = await roster(["status", "-n", ns, "-o", "json"], { env });
  assert.equal(json.code, 0, json.stderr);
  const views = JSON.parse(json.stdout) as ServiceView[];
  assert.deepEqual(
    views.map((v) => [v.service, v.policy, v.strategy, v.healthy, v.total, v.panic]),
    [
      ["api", undefined, "RoundRobin", 1, 1, false],
      ["web", "web-policy", "WeightedRoundRobin", 2, 3, false],
    ],
  );
  assert.equal(
    views[0]!.revision,
    docs.api!.revision,
    "revision of a service without a policy, from its ConfigMap",
  );
  assert.equal(views[1]!.revision, docs.web!.revision);
  assert.deepEqual(views[1]!.instances, [
    {
      name: "web-1",
      address: "192.0.2.1",
      healthy: true,
      ready: "True",
      reason: "Healthy",
      probe: "ProbeSucceeded",
      weight: 300,
      zone: "zone-a",
    },
    {
      name: "web-2",
      address: "192.0.2.2",
      healthy: false,
      ready: "False",
      reason: "Unhealthy",
      probe: "HTTPStatus",
      weight: 100,
      zone: "zone-b",
    },
    {
      name: "web-3",
      address: "192.0.2.3",
      healthy: true,
      ready: "False",
      reason: "Draining",
      probe: "ProbeSucceeded",
      weight: 100,
      zone: "",
    },
  ]);
  for (const v of views) assert.equal(v.namespace, ns);

  // YAML: the same data.
  const yaml = await roster(["status", "-n", ns, "-o", "yaml"], { env });
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.deepEqual(load(yaml.stdout), JSON.parse(json.stdout));

  // The table (no colours: stdout is not a terminal).
  const table = await roster(["status", "-n", ns], { env });
  assert.equal(table.code, 0, table.stderr);
  assert.ok(!table.stdout.includes("\x1b["), "no escape codes when not a TTY");
  const lines = table.stdout.split("\n");
  assert.match(
    table.stdout,
    new RegExp(
      `^${ns}/web {2}policy=web-policy {2}strategy=WeightedRoundRobin {2}healthy=2/3 {2}revision=${docs.web!.revision}$`,
      "m",
    ),
  );
  assert.match(
    table.stdout,
    new RegExp(
      `^${ns}/api {2}policy=\\(default\\) {2}strategy=RoundRobin {2}healthy=1/1 {2}revision=${docs.api!.revision}$`,
      "m",
    ),
  );
  const row = (name: string) =>
    lines
      .find((l) => l.trimStart().startsWith(`${name} `))
      ?.trim()
      .split(/\s+/);
  assert.deepEqual(row("INSTANCE"), [
    "INSTANCE",
    "ADDRESS",
    "HEALTHY",
    "READY",
    "REASON",
    "PROBE",
    "WEIGHT",
    "ZONE",
  ]);
  assert.deepEqual(row("web-1"), [
    "web-1",
    "192.0.2.1",
    "true",
    "True",
    "Healthy",
    "ProbeSucceeded",
    "300",
    "zone-a",
  ]);
  assert.deepEqual(row("web-2"), [
    "web-2",
    "192.0.2.2",
    "false",
    "False",
    "Unhealthy",
    "HTTPStatus",
    "100",
    "zone-b",
  ]);
  assert.deepEqual(row("web-3"), [
    "web-3",
    "192.0.2.3",
    "true",
    "False",
    "Draining",
    "ProbeSucceeded",
    "100",
  ]);
  assert.deepEqual(row("api-1"), ["api-1", "192.0.2.50", "true", "True", "Healthy", "ProbeSucceeded", "100"]);

  // One service by name; and -A (every namespace) shows the same view for ours.
  const one = await roster(["status", "-n", ns, "web", "-o", "json"], { env });
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(
    (JSON.parse(one.stdout) as ServiceView[]).map((v) => v.service),
    ["web"],
  );
  const all = await roster(["status", "-A", "-o", "json"], { env });
  assert.equal(all.code, 0, all.stderr);
  const mine = (JSON.parse(all.stdout) as ServiceView[]).filter((v) => v.namespace === ns);
  assert.deepEqual(mine, views);

  // An unknown service: exit 1 naming it and the namespace.
  const unknown = await roster(["status", "-n", ns, "nope"], { env });
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stdout, "");
  assert.equal(unknown.stderr, `roster status: service nope not found in ${ns}\n`);
});

test("roster status of an empty namespace: says so, exit 0", async (t) => {
  const { kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "cli-empty");
  const r = await roster(["status", "-n", ns], { env: { KUBECONFIG: kubeconfigPath } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "No ServiceInstances or DiscoveryPolicies found.\n");
  const json = await roster(["status", "-n", ns, "-o", "json"], { env: { KUBECONFIG: kubeconfigPath } });
  assert.equal(json.stdout, "[]\n");
});
