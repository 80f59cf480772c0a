// A DNS-named instance. `localhost` resolves to loopback only, which the API
// server refuses in EndpointSlices: Roster probes the resolved address,
// publishes it in the ConfigMap (a same-host client can use it), keeps it
// out of the slices, and says so in the instance's status.
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  getInstance,
  publishedDocument,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargetsOn } from "../../support/targets.ts";

test("a DNS name resolving to loopback is probed, in the ConfigMap, and reported as not in the slices", async (t) => {
  const resolved = (await lookup("localhost", { all: true })).map((a) => a.address).sort();
  // One server on every address localhost resolves to, all on one port.
  const servers = await httpTargetsOn(t, resolved);
  const port = servers[0]!.port;
  const [ip] = await httpTargetsOn(t, ["127.0.0.9"]);
  const ns = await testNamespace(t, "dns");
  await startTestOperator(t, { namespaces: [ns] });
  await createInstance(ns, "web-ip", webInstance(ip!, 0));
  // No probe host: the probes go to the addresses the name resolves to.
  await createInstance(ns, "web-local", {
    service: "web",
    address: "localhost",
    ports: [{ name: "http", port }],
    healthCheck: { probes: [{ type: "http", http: { port: "http", path: "/healthz" } }], ...FAST },
  });

  const si = await eventually(
    async () => {
      const s = await getInstance(ns, "web-local");
      return s.status?.healthy === true ? s : undefined;
    },
    { timeoutMs: 15_000, what: "web-local healthy" },
  );
  assert.ok(
    servers.every((s) => s.hits > 0),
    "every resolved address was probed",
  );
  assert.deepEqual([...(si.status?.addresses ?? [])].sort(), resolved);
  assert.equal(condition(si, "Resolved")?.status, "True");
  assert.match(condition(si, "Resolved")?.message ?? "", /localhost resolved to 127\.0\.0\.1/);
  const ready = condition(si, "Ready");
  assert.equal(ready?.status, "True", "published as ready (in the ConfigMap)");
  assert.equal(ready?.reason, "NotInEndpointSlices");
  assert.match(ready?.message ?? "", /127\.0\.0\.1.*loopback/);

  const doc = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      return d?.endpoints.length === 1 + resolved.length ? d : undefined;
    },
    { timeoutMs: 5000, what: "the ConfigMap to list web-local" },
  );
  const local = doc.endpoints.filter((e) => e.instance === "web-local");
  assert.deepEqual(local.map((e) => e.address).sort(), resolved);
  assert.ok(local.every((e) => e.ready && e.state === "Ready"));
  // Only the documentation-range address is in the slices.
  assert.deepEqual(await readyAddresses(ns, "web"), ["192.0.2.1"]);
});
