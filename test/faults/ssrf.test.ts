// SSRF guard, end to end. The operator's destination policy denies
// 127.0.0.66/32 (standing in for the cloud metadata endpoint), 127.0.0.1/32
// and ::1/128, with loopback otherwise allowed: the denied addresses are
// loopback recorders that count connections, so that if the guard ever
// regressed, this test's probes would still never leave the machine (the
// real metadata addresses, 169.254.169.254, fd00:ec2::254, and their IPv6
// embeddings, are checked as pure decisions in test/unit/health/policy.test.ts,
// never connected to). Recorders on 127.0.0.66, 127.0.0.1 and ::1 must see no
// connection at all while instances aim at them as the instance address (an
// IP, a DNS name resolving to it), through the probe host, and through a DNS
// name as probe host. Each gets
// DestinationDenied and none is ever published as ready; a control instance
// on an allowed loopback address (127.0.0.2) is probed and published.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { test } from "node:test";
import type { ServiceInstanceInput } from "../../src/api/index.ts";
import { defaultDeny } from "../../src/health/index.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { FAST, webInstance } from "../support/instances.ts";
import {
  condition,
  createInstance,
  createPolicy,
  getInstance,
  publishedDocument,
  sliceEndpoints,
  watchSlices,
} from "../support/roster.ts";
import { httpTargetsOn } from "../support/targets.ts";
import { sleep, startOperatorOn } from "./support.ts";

/** Denied by the test's policy, where a recorder listens: a stand-in for 169.254.169.254. */
const METADATA = "127.0.0.66";

async function recorder(
  host: string,
  port: number,
): Promise<{ server: Server; connections: number } | undefined> {
  const r = { server: createServer(), connections: 0 };
  r.server.on("connection", (s) => {
    r.connections++;
    s.destroy();
  });
  return new Promise((done) => {
    r.server.once("error", () => done(undefined)); // e.g. no IPv6 loopback
    r.server.listen(port, host, () => done(r));
  });
}

test("denied destinations are never connected to and never published", async (t) => {
  const ns = await testNamespace(t, "ssrf");
  const [control] = await httpTargetsOn(t, ["127.0.0.2"]);
  // The recording listener shares the control target's port on 127.0.0.1 and ::1, so a probe
  // that slipped past the guard to a denied address would land here.
  const port = control!.port;
  const v4 = await recorder("127.0.0.1", port);
  assert.ok(v4, "listening on 127.0.0.1");
  const metadata = await recorder(METADATA, port);
  assert.ok(metadata, `listening on ${METADATA}`);
  const v6 = await recorder("::1", port);
  const recorders = [v4, metadata, ...(v6 ? [v6] : [])];
  t.after(() => Promise.all(recorders.map((r) => new Promise((done) => r.server.close(done)))));

  const { kc } = await testCluster();
  const deny = [...defaultDeny, `${METADATA}/32`, "127.0.0.1/32", "::1/128"];
  await startOperatorOn(t, kc, { namespaces: [ns], destinations: { deny, allowLoopback: true } });
  await createPolicy(ns, "web", { service: "web" });
  const http = (host: string | undefined) => ({
    probes: [{ type: "http" as const, http: { ...(host ? { host } : {}), port: "http", path: "/healthz" } }],
    ...FAST,
  });
  const tcp = { probes: [{ type: "tcp" as const }], ...FAST };
  const denied: Record<string, ServiceInstanceInput["spec"]> = {
    // The stand-in for the metadata endpoint, as the instance address (HTTP and TCP probes)...
    metadata: {
      service: "web",
      address: METADATA,
      ports: [{ name: "http", port }],
      healthCheck: http(undefined),
    },
    "metadata-tcp": {
      service: "web",
      address: METADATA,
      ports: [{ name: "http", port }],
      healthCheck: tcp,
    },
    // ...and as the probe host of an instance published elsewhere; and a denied IPv6 address.
    // (The API refuses IPv4-mapped instance addresses; the engine's tests cover that form.)
    "metadata-host": {
      service: "web",
      address: "192.0.2.52",
      ports: [{ name: "http", port }],
      healthCheck: http(METADATA),
    },
    "denied-v6": {
      service: "web",
      address: "::1",
      ports: [{ name: "http", port }],
      healthCheck: tcp,
    },
    // A denied CIDR through the probe host override.
    "denied-cidr": {
      service: "web",
      address: "192.0.2.50",
      ports: [{ name: "http", port }],
      healthCheck: http("127.0.0.1"),
    },
    // DNS names that resolve to denied addresses: as probe host and as the instance address.
    "denied-dns-host": {
      service: "web",
      address: "192.0.2.51",
      ports: [{ name: "http", port }],
      healthCheck: http("localhost"),
    },
    "denied-dns-address": {
      service: "web",
      address: "localhost",
      ports: [{ name: "http", port }],
      healthCheck: tcp,
    },
  };
  const watch = await watchSlices(ns, "web");
  await createInstance(ns, "control", webInstance(control!, 0));
  const rejected: string[] = [];
  for (const [name, spec] of Object.entries(denied)) {
    // Admission may refuse some of these outright (also a pass: never probed).
    await createInstance(ns, name, spec).catch((err: unknown) => {
      rejected.push(`${name}: ${(err as { body?: string }).body ?? err}`);
    });
  }
  for (const r of rejected) t.diagnostic(`rejected by admission: ${r.slice(0, 300)}`);
  const accepted = Object.keys(denied).filter((n) => !rejected.some((r) => r.startsWith(`${n}:`)));

  await eventually(
    async () => {
      for (const name of accepted) {
        const si = await getInstance(ns, name);
        if (condition(si, "Healthy")?.reason !== "DestinationDenied" || si.status?.healthy !== false)
          return undefined;
      }
      return (await getInstance(ns, "control")).status?.healthy === true ? true : undefined;
    },
    {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "DestinationDenied on every denied instance, control healthy",
    },
  );
  await sleep(3000); // more probe rounds: still nothing may connect
  watch.stop();

  assert.deepEqual(
    recorders.map((r) => r.connections),
    recorders.map(() => 0),
    "no connection ever reached a denied address",
  );
  assert.ok(control!.hits > 0, "the allowed control target was probed");
  const deniedAddresses = [METADATA, "192.0.2.50", "192.0.2.51", "192.0.2.52", "127.0.0.1", "::1"];
  for (const e of watch.events) {
    for (const a of deniedAddresses)
      assert.ok(!e.ready.includes(a), `${a} never published ready (${e.ready})`);
  }
  const eps = await sliceEndpoints(ns, "web");
  assert.deepEqual(
    eps.filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
    ["192.0.2.1"],
    "only the control instance is ready",
  );
  const doc = await publishedDocument(ns, "web-roster");
  assert.deepEqual(
    doc?.endpoints.filter((e) => e.ready).map((e) => e.instance),
    ["control"],
  );
  assert.ok(accepted.length >= 3, `most denied instances reach the operator (${accepted.join()})`);
});
