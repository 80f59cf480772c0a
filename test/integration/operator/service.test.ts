// The selector-less Service follows the instances' named ports: a port that
// no instance has any more leaves the Service, a renumbered port replaces
// the old number. Instances here use `none` probes (registration only), so
// nothing is probed and they are healthy as soon as they are registered.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PatchStrategy, setHeaderOptions, type V1Service } from "@kubernetes/client-node";
import { publishedLabels } from "../../../src/publish/index.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  clients,
  createInstance,
  getService,
  patchInstanceSpec,
  readyAddresses,
} from "../../support/roster.ts";

const registrationOnly = { probes: [{ type: "none" as const }], interval: "1s", timeout: "500ms" };

function ports(service: Awaited<ReturnType<typeof getService>>) {
  return (service?.spec?.ports ?? []).map((p) => `${p.name}:${p.port}/${p.protocol}`).sort();
}

test("the Service follows the instances' ports", async (t) => {
  const ns = await testNamespace(t, "svc");
  await startTestOperator(t, { namespaces: [ns] });
  for (const i of [1, 2]) {
    await createInstance(ns, `api-${i}`, {
      service: "api",
      address: `192.0.2.${i}`,
      ports: [
        { name: "http", port: 8080 },
        { name: "metrics", port: 9090 },
      ],
      healthCheck: registrationOnly,
    });
  }
  // Registration-only instances are published within a batch window and a few watch round trips.
  await eventually(async () => ((await readyAddresses(ns, "api")).length === 2 ? true : undefined), {
    timeoutMs: MARGIN_MS,
    what: "two registration-only instances published",
  });
  assert.deepEqual(ports(await getService(ns, "api")), ["http:8080/TCP", "metrics:9090/TCP"]);

  // Move both instances to another http port and drop the metrics port.
  for (const i of [1, 2]) {
    await patchInstanceSpec(ns, `api-${i}`, { ports: [{ name: "http", port: 8081 }] });
  }
  await eventually(
    async () => {
      const p = ports(await getService(ns, "api"));
      return p.length === 1 && p[0] === "http:8081/TCP" ? true : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the Service to have only http:8081" },
  );
});

test("a Service created and applied by an earlier Roster still follows the ports", async (t) => {
  const ns = await testNamespace(t, "svc-old");
  const { core } = await clients();
  // What an earlier Roster left: created with POST, then server-side applied, by field manager "roster".
  const body: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "api", namespace: ns, labels: publishedLabels("api") },
    spec: {
      type: "ClusterIP",
      ports: [
        { name: "http", port: 8080, targetPort: 8080 },
        { name: "metrics", port: 9090, targetPort: 9090 },
      ],
    },
  };
  await core.createNamespacedService({ namespace: ns, body, fieldManager: "roster" });
  await core.patchNamespacedService(
    { namespace: ns, name: "api", body, fieldManager: "roster", force: true },
    setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
  );
  await startTestOperator(t, { namespaces: [ns] });
  await createInstance(ns, "api-1", {
    service: "api",
    address: "192.0.2.1",
    ports: [{ name: "http", port: 8081 }],
    healthCheck: registrationOnly,
  });
  await eventually(
    async () => {
      const p = ports(await getService(ns, "api"));
      return p.length === 1 && p[0] === "http:8081/TCP" ? true : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "the Service to have only http:8081" },
  );
  assert.deepEqual(await readyAddresses(ns, "api"), ["192.0.2.1"]);
});
