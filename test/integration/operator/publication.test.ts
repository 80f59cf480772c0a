// The publication policy: an instance probed through a `host` override is
// published at its own address, which must pass the destination policy (a
// denied range, the metadata address) and lie outside the cluster networks
// unless its namespace is allowed that range (CVE-2021-25740). A refused
// instance gets Ready=False/AddressNotPermitted and is published nowhere.
// Probes go only to the loopback targets; the refused addresses are never
// connected to.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator, testSettings } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  getInstance,
  publishedDocument,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("addresses the publication policy refuses are never published, even with an allowed probe host", async (t) => {
  const ns = await testNamespace(t, "publication");
  const targets = await httpTargets(t, 4);
  // The sandbox's Service range (sandbox/main.go); configured, not assumed by the operator.
  const publication = { clusterNetworks: ["10.0.0.0/16"], allow: {} };
  const operator = await startTestOperator(t, {
    namespaces: [ns],
    destinations: { allowLoopback: true, deny: ["169.254.0.0/16", "fe80::/10", "192.0.2.66/32"] },
    settings: { publication },
  });
  await createInstance(ns, "web-1", webInstance(targets[0]!, 0));
  await createInstance(ns, "web-denied", webInstance(targets[1]!, 1, { address: "192.0.2.66" }));
  await createInstance(ns, "web-metadata", webInstance(targets[2]!, 2, { address: "169.254.169.254" }));
  await createInstance(ns, "web-cluster", webInstance(targets[3]!, 3, { address: "10.0.0.50" }));

  for (const [name, pattern] of [
    ["web-denied", /192\.0\.2\.66 is in denied range 192\.0\.2\.66\/32/],
    ["web-metadata", /169\.254\.169\.254 is in denied range 169\.254\.0\.0\/16/],
    ["web-cluster", /10\.0\.0\.50 is inside the cluster network/],
  ] as const) {
    const si = await eventually(
      async () => {
        const s = await getInstance(ns, name);
        return condition(s, "Ready")?.reason === "AddressNotPermitted" ? s : undefined;
      },
      { timeoutMs: 15_000, what: `${name} AddressNotPermitted` },
    );
    assert.equal(condition(si, "Ready")?.status, "False");
    assert.match(condition(si, "Ready")?.message ?? "", pattern);
  }
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.1" ? true : undefined),
    {
      timeoutMs: MARGIN_MS * 2,
      what: "only web-1 published",
    },
  );
  const doc = await publishedDocument(ns, "web-roster");
  assert.deepEqual(
    doc?.endpoints.map((e) => e.instance),
    ["web-1"],
    "refused instances are not in the ConfigMap in any state",
  );

  // The administrator allows the range for this namespace: published.
  operator.updateSettings(
    testSettings({ publication: { ...publication, allow: { [ns]: ["10.0.0.0/24"] } } }),
  );
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "10.0.0.50,192.0.2.1" ? true : undefined),
    { timeoutMs: MARGIN_MS * 4, what: "web-cluster published once allowed" },
  );
  assert.equal(condition(await getInstance(ns, "web-denied"), "Ready")?.reason, "AddressNotPermitted");
});
