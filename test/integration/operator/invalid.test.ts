// Input that admission cannot catch lands as a condition on the instance:
// a probe header from a Secret that does not exist, probes naming two
// different hosts, an address the destination policy refuses. Such instances
// are never published; the operator keeps running and the other instances of
// the service are unaffected. A missing Secret, once created, is picked up.
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultDeny } from "../../../src/health/index.ts";
import { SECRET_RETRY_MS } from "../../../src/operator/targets.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST, INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createSecret,
  getInstance,
  publishedDocument,
  readyAddresses,
} from "../../support/roster.ts";
import { connectionRecorder } from "../../support/servers.ts";
import { httpTargets } from "../../support/targets.ts";

async function blockedWith(ns: string, name: string, reason: string) {
  return eventually(
    async () => {
      const s = await getInstance(ns, name);
      return condition(s, "Ready")?.reason === reason ? s : undefined;
    },
    { timeoutMs: 15_000, what: `${name} Ready condition ${reason}` },
  );
}

test("invalid instances get a condition and are never published; the rest is unaffected", async (t) => {
  const ns = await testNamespace(t, "invalid");
  const targets = await httpTargets(t, 4);
  // The refused address is a loopback recorder (standing in for 169.254.169.254, which a test must
  // never aim at: a regression would send traffic off the machine).
  const metadata = await connectionRecorder("127.0.0.66");
  t.after(() => metadata.close());
  await startTestOperator(t, {
    namespaces: [ns],
    destinations: { allowLoopback: true, deny: [...defaultDeny, "127.0.0.66/32"] },
  });
  await createInstance(ns, "web-1", webInstance(targets[0]!, 0));
  await createInstance(
    ns,
    "web-secret",
    webInstance(targets[1]!, 1, {
      healthCheck: {
        probes: [
          {
            type: "http",
            http: {
              host: targets[1]!.host,
              port: "http",
              path: "/healthz",
              headers: [
                { name: "Authorization", valueFrom: { secretKeyRef: { name: "probe-token", key: "token" } } },
              ],
            },
          },
        ],
        ...FAST,
      },
    }),
  );
  await createInstance(
    ns,
    "web-hosts",
    webInstance(targets[2]!, 2, {
      healthCheck: {
        probes: [
          { type: "http", http: { host: "127.0.0.3", port: "http", path: "/healthz" } },
          { type: "tcp", tcp: { host: "127.0.0.4", port: "http" } },
        ],
        ...FAST,
      },
    }),
  );
  // An address the destination policy refuses (never connected to).
  await createInstance(ns, "web-metadata", {
    service: "web",
    address: "127.0.0.66",
    ports: [{ name: "http", port: metadata.port }],
    healthCheck: { probes: [{ type: "tcp" }], ...FAST },
  });

  const secret = await blockedWith(ns, "web-secret", "SecretNotFound");
  assert.equal(condition(secret, "Ready")?.status, "False");
  assert.equal(condition(secret, "Healthy")?.reason, "SecretNotFound");
  assert.match(condition(secret, "Healthy")?.message ?? "", /Secret probe-token/);
  assert.equal(secret.status?.healthy, false);

  const hosts = await blockedWith(ns, "web-hosts", "InvalidHealthCheck");
  assert.match(condition(hosts, "Ready")?.message ?? "", /different hosts/);

  const refused = await eventually(
    async () => {
      const s = await getInstance(ns, "web-metadata");
      return s.status?.healthy === false ? s : undefined;
    },
    { timeoutMs: 5000, what: "web-metadata refused" },
  );
  assert.equal(condition(refused, "Healthy")?.reason, "DestinationDenied");
  assert.equal(condition(refused, "Ready")?.status, "False");

  // The valid instance is published as usual, and only it.
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.1" ? true : undefined),
    {
      timeoutMs: MARGIN_MS,
      what: "web-1 published",
    },
  );
  const doc = await publishedDocument(ns, "web-roster");
  assert.deepEqual(
    doc?.endpoints.filter((e) => e.ready).map((e) => e.instance),
    ["web-1"],
  );
  assert.equal(targets[1]!.hits + targets[2]!.hits + targets[3]!.hits, 0, "blocked instances are not probed");
  assert.equal(metadata.connections(), 0, "the refused address was never connected to");

  // The operator keeps working: a new instance is published...
  await createInstance(ns, "web-4", webInstance(targets[3]!, 3));
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "web-4 published",
  });
  // ...and the missing Secret, once created, is used.
  await createSecret(ns, "probe-token", { token: "Bearer s3cret" });
  await eventually(async () => ((await readyAddresses(ns, "web")).includes("192.0.2.2") ? true : undefined), {
    timeoutMs: SECRET_RETRY_MS + INTERVAL_MS + MARGIN_MS,
    what: "web-secret published",
  });
  await eventually(
    async () =>
      condition(await getInstance(ns, "web-secret"), "Ready")?.status === "True" ? true : undefined,
    { timeoutMs: MARGIN_MS, what: "web-secret Ready" },
  );
  assert.equal(targets[1]!.lastHeaders?.authorization, "Bearer s3cret", "the header value from the Secret");
});
