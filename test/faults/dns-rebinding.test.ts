// DNS rebinding, end to end. A real DNS server on loopback (UDP) answers
// for *.rebind.test and the operator resolves through it (`probing.dnsServers`,
// `probing.dnsRefresh: 1s`, from a parsed config). The destination policy
// allows loopback but denies 127.0.0.66/32, where an HTTP server counts every
// TCP connection it accepts.
//
// - `api.rebind.test` first resolves to 127.0.0.65 (a healthy server): the
//   instance turns healthy and is published as ready (ConfigMap only:
//   loopback cannot go into EndpointSlices). Then the name is rebound to
//   127.0.0.66: the instance turns unhealthy with DestinationDenied naming the
//   address, and no connection ever reaches 127.0.0.66. Bound back, it heals.
// - `denied.rebind.test` resolves to 127.0.0.66 from the start: the same.
// - `gone.rebind.test` stops resolving (NXDOMAIN) and `missing.rebind.test`
//   never resolves: unhealthy with DNSFailure saying NXDOMAIN.
// A watch on the ConfigMap sees every version: 127.0.0.66 is never ready.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { TestContext } from "node:test";
import { test } from "node:test";
import { type V1ConfigMap, Watch } from "@kubernetes/client-node";
import { parsePublishedEndpoints } from "../../src/api/published.ts";
import { parseConfig } from "../../src/config/load.ts";
import { probingOptions } from "../../src/operator/settings.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { startDnsServer } from "../support/dns-server.ts";
import { FAST } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import { condition, createInstance, getInstance, publishedDocument } from "../support/roster.ts";
import { httpTargetsOn } from "../support/targets.ts";
import { metricSum, sleep } from "./support.ts";

const ALLOWED = "127.0.0.65";
const DENIED = "127.0.0.66";

/** An HTTP server on `host:port` that counts every TCP connection it accepts (and answers 200). */
async function countingServer(t: TestContext, host: string, port: number) {
  const counter = { connections: 0 };
  const server = createServer((_req, res) => res.end("ok"));
  server.on("connection", () => counter.connections++);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return counter;
}

/** Every version of a ConfigMap's ready endpoints, from a watch started now. */
async function watchReady(namespace: string, name: string) {
  const { kc } = await testCluster();
  const versions: { instance: string; address: string }[][] = [];
  let failure: unknown;
  let stopped = false;
  const controller = await new Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/configmaps`,
    { fieldSelector: `metadata.name=${name}` },
    (type: string, cm: V1ConfigMap) => {
      if (type !== "ADDED" && type !== "MODIFIED") return;
      const doc = parsePublishedEndpoints(cm.data);
      versions.push(
        doc.endpoints.filter((e) => e.ready).map((e) => ({ instance: e.instance, address: e.address })),
      );
    },
    (err: unknown) => {
      if (!stopped) failure = err ?? new Error("ConfigMap watch ended early");
    },
  );
  return {
    versions,
    stop() {
      stopped = true;
      controller.abort();
      if (failure) throw failure;
    },
  };
}

test("a name rebound to a denied address is never connected to; names that stop resolving fail cleanly", async (t) => {
  const ns = await testNamespace(t, "rebind");
  const [healthy] = await httpTargetsOn(t, [ALLOWED]);
  const port = healthy!.port;
  // Same port as the healthy server: a probe that slipped past the guard would land here.
  const trap = await countingServer(t, DENIED, port);
  const dns = await startDnsServer(t, {
    "api.rebind.test": [ALLOWED],
    "gone.rebind.test": [ALLOWED],
    "denied.rebind.test": [DENIED],
  });
  const config = parseConfig(
    [
      "probing:",
      `  dnsServers: ["${dns.address}"]`,
      "  dnsRefresh: 1s",
      "  destinations:",
      "    allowLoopback: true",
      `    deny: [169.254.0.0/16, "fe80::/10", ${DENIED}/32]`,
    ].join("\n"),
  );
  const operator = await startTestOperator(t, { namespaces: [ns], probing: probingOptions(config) });
  const watch = await watchReady(ns, "api-roster");
  t.after(() => watch.stop());

  const spec = (address: string) => ({
    service: "api",
    address,
    ports: [{ name: "http", port }],
    healthCheck: { probes: [{ type: "http" as const, http: { port: "http", path: "/healthz" } }], ...FAST },
  });
  for (const name of ["api", "gone", "denied", "missing"]) {
    await createInstance(ns, name, spec(`${name}.rebind.test`));
  }

  const healthyCondition = async (name: string) => {
    const si = await getInstance(ns, name);
    return { si, healthy: si.status?.healthy, c: condition(si, "Healthy") };
  };
  const deniedNow = async (name: string) => {
    const { healthy: h, c } = await healthyCondition(name);
    return h === false && c?.reason === "DestinationDenied" ? c : undefined;
  };
  const dnsFailed = async (name: string) => {
    const { healthy: h, c } = await healthyCondition(name);
    return h === false && c?.reason === "DNSFailure" ? c : undefined;
  };

  // Phase 1: resolved through the test DNS server.
  await eventually(
    async () => {
      for (const name of ["api", "gone"])
        if ((await healthyCondition(name)).healthy !== true) return undefined;
      return (await deniedNow("denied")) && (await dnsFailed("missing"));
    },
    { timeoutMs: 20_000, intervalMs: 200, what: "api, gone healthy; denied refused; missing not resolving" },
  );
  const api = await getInstance(ns, "api");
  assert.deepEqual(api.status?.addresses, [ALLOWED]);
  assert.equal(condition(api, "Ready")?.status, "True");
  assert.match(condition(await getInstance(ns, "denied"), "Healthy")?.message ?? "", /127\.0\.0\.66.*denied/);
  assert.match((await dnsFailed("missing"))?.message ?? "", /NXDOMAIN/);
  await eventually(
    async () => {
      const doc = await publishedDocument(ns, "api-roster");
      const ready = doc?.endpoints.filter((e) => e.ready).map((e) => `${e.instance}@${e.address}`);
      return ready?.join() === `api@${ALLOWED},gone@${ALLOWED}` ? ready : undefined;
    },
    { timeoutMs: 10_000, what: "api and gone ready in the ConfigMap" },
  );
  assert.ok(healthy!.hits > 0, "the allowed address was probed");

  // Phase 2: rebind api to the denied address; gone stops existing.
  const queriesBefore = dns.queries.length;
  dns.records.set("api.rebind.test", [DENIED]);
  dns.records.delete("gone.rebind.test");
  const rebound = await eventually(() => deniedNow("api"), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: "api DestinationDenied after the rebinding",
  });
  assert.match(rebound.message ?? "", /127\.0\.0\.66 is in denied range 127\.0\.0\.66\/32/);
  const gone = await eventually(() => dnsFailed("gone"), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: "gone DNSFailure after NXDOMAIN",
  });
  assert.match(gone.message ?? "", /gone\.rebind\.test.*NXDOMAIN/);
  const apiNow = await getInstance(ns, "api");
  assert.deepEqual(apiNow.status?.addresses, [DENIED], "the new address is reported");
  assert.equal(condition(apiNow, "Ready")?.status, "False");
  assert.equal(condition(await getInstance(ns, "gone"), "Ready")?.status, "False");

  // Several more probe intervals (1 s) and DNS refreshes (1 s): still nothing may reach 127.0.0.66.
  await sleep(4000);
  assert.ok(dns.queries.length - queriesBefore >= 6, "names were re-resolved meanwhile");
  assert.equal(trap.connections, 0, "no connection ever reached the denied address");
  assert.ok((await deniedNow("api")) && (await deniedNow("denied")) && (await dnsFailed("gone")));
  const doc = await publishedDocument(ns, "api-roster");
  assert.deepEqual(
    doc?.endpoints.filter((e) => e.ready),
    [],
    "nothing is ready: denied and unresolvable names are not published as ready",
  );

  // Bound back to an allowed address, the instance heals: the guard judged the address, not the name.
  dns.records.set("api.rebind.test", [ALLOWED]);
  await eventually(async () => ((await healthyCondition("api")).healthy === true ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: "api healthy again",
  });
  assert.equal(trap.connections, 0, "still no connection to the denied address");

  watch.stop();
  assert.ok(watch.versions.length > 0, "the ConfigMap watch saw the published versions");
  for (const ready of watch.versions) {
    assert.ok(
      ready.every((e) => e.address !== DENIED),
      `${DENIED} never published as ready (${JSON.stringify(ready)})`,
    );
  }
  // Denied and unresolvable names are verdicts, not errors. (The publisher may retry a
  // write conflict now and then; that is not what this test is about.)
  assert.equal(
    await metricSum(operator, "controller_runtime_reconcile_errors_total", { controller: "serviceinstance" }),
    0,
    "no instance reconcile failed on denied or missing names",
  );
});
