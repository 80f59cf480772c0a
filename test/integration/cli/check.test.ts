// `roster check -f manifest.yaml` against real loopback targets: the probes
// of the manifest's policy (or the default policy) run from this machine and
// the table shows each verdict with its reason; the exit code says whether
// all are healthy. No cluster involved.
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createServer as createTlsServer } from "node:tls";
import { dump } from "js-yaml";
import { freePort, roster } from "../../support/cli.ts";
import { postgresCluster, redisServer, skipWithoutDatabases } from "../../support/databases.ts";
import { listen, testCerts } from "../../support/servers.ts";
import { type HttpTarget, httpTargets } from "../../support/targets.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-cli-check-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function manifest(docs: object[]): string {
  const file = join(dir, `manifest-${++files}.yaml`);
  writeFileSync(file, docs.map((d) => dump(d)).join("---\n"));
  return file;
}

const policy = {
  apiVersion: "roster.dev/v1alpha1",
  kind: "DiscoveryPolicy",
  metadata: { name: "web" },
  spec: {
    service: "web",
    healthCheck: {
      probes: [{ type: "http", http: { port: "http", path: "/healthz" } }],
      interval: "1s",
      timeout: "500ms",
      failureThreshold: 2,
    },
  },
};

function instance(name: string, address: string, port: number, service = "web") {
  return {
    apiVersion: "roster.dev/v1alpha1",
    kind: "ServiceInstance",
    metadata: { name },
    spec: { service, address, ports: [{ name: "http", port }] },
  };
}

/** The table's rows by instance name: [address, verdict, reason, message]. */
function rows(stdout: string): Map<string, string[]> {
  const lines = stdout.trimEnd().split("\n");
  assert.match(lines[0] ?? "", /^INSTANCE\s+ADDRESS\s+VERDICT\s+REASON\s+MESSAGE$/);
  return new Map(
    lines.slice(1).map((l) => {
      const [name, address, verdict, reason, ...message] = l.split(/\s+/);
      return [name!, [address!, verdict!, reason ?? "", message.join(" ")]];
    }),
  );
}

async function targets(t: Parameters<typeof httpTargets>[0]): Promise<[HttpTarget, HttpTarget, number]> {
  const [ok, failing] = await httpTargets(t, 2);
  failing!.healthy = false;
  return [ok!, failing!, await freePort("127.0.0.3")];
}

test("healthy, failing (503) and refused targets: verdicts with reasons, exit 1", async (t) => {
  const [ok, failing, refusedPort] = await targets(t);
  const file = manifest([
    policy,
    instance("ok", ok.host, ok.port),
    instance("failing", failing.host, failing.port),
    instance("refused", "127.0.0.3", refusedPort),
  ]);
  const r = await roster(["check", "-f", file, "--allow-loopback"]);
  assert.equal(r.code, 1, `one is unhealthy:\n${r.stdout}${r.stderr}`);
  const table = rows(r.stdout);
  assert.deepEqual([...table.keys()], ["ok", "failing", "refused"], "manifest order");
  assert.deepEqual(table.get("ok")!.slice(0, 3), ["127.0.0.1", "Healthy", "ProbeSucceeded"]);
  assert.equal(table.get("ok")![3], "HTTP 200");
  assert.deepEqual(table.get("failing")!.slice(0, 3), ["127.0.0.2", "Unhealthy", "HTTPStatus"]);
  assert.match(table.get("failing")![3]!, /HTTP 503/);
  assert.deepEqual(table.get("refused")!.slice(0, 3), ["127.0.0.3", "Unhealthy", "ConnectionRefused"]);
  assert.match(table.get("refused")![3]!, /ECONNREFUSED 127\.0\.0\.3:/);
  // The targets really were probed: at least failureThreshold times for the failing one.
  assert.ok(ok.hits >= 1 && failing.hits >= 2, `hits ok=${ok.hits} failing=${failing.hits}`);
});

test("all healthy, with the manifest's policy and with the default policy: exit 0", async (t) => {
  const [ok] = await httpTargets(t, 1);
  const file = manifest([
    policy,
    instance("web-1", ok!.host, ok!.port),
    // No DiscoveryPolicy for `tcp`: the operator's default (a TCP connect).
    instance("tcp-1", ok!.host, ok!.port, "tcp"),
  ]);
  const r = await roster(["check", "-f", file, "--allow-loopback"]);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  const table = rows(r.stdout);
  assert.deepEqual(table.get("web-1")!.slice(1, 3), ["Healthy", "ProbeSucceeded"]);
  assert.deepEqual(table.get("tcp-1")!.slice(1, 3), ["Healthy", "ProbeSucceeded"]);
  assert.equal(table.get("tcp-1")![3], "connected");
  assert.ok(ok!.hits >= 1, "the HTTP check reached the target");
});

test("the policy and the instances may come from separate files (-f twice)", async (t) => {
  const [, failing] = await httpTargets(t, 2);
  failing!.healthy = false;
  const r = await roster([
    "check",
    "-f",
    manifest([policy]),
    "-f",
    manifest([instance("failing", failing!.host, failing!.port)]),
    "--allow-loopback",
  ]);
  assert.equal(r.code, 1);
  assert.deepEqual(rows(r.stdout).get("failing")!.slice(1, 3), ["Unhealthy", "HTTPStatus"]);
});

test("an invalid manifest: every problem with its field, nothing probed, exit 1", async (t) => {
  const [ok] = await httpTargets(t, 1);
  const bad = instance("bad", ok!.host, 70_000);
  (bad.spec as Record<string, unknown>).weight = -1;
  const file = manifest([
    instance("good", ok!.host, ok!.port),
    bad,
    { kind: "Deployment", metadata: { name: "x" } },
  ]);
  const r = await roster(["check", "-f", file, "--allow-loopback"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^roster check: invalid objects:\n/);
  assert.match(r.stderr, /manifest-\d+\.yaml: bad:\n(.*\n)*spec\.ports\[0\]\.port: Too big/);
  assert.match(r.stderr, /spec\.weight: Too small/);
  assert.match(r.stderr, /: x:\nkind: must be ServiceInstance or DiscoveryPolicy/);
  assert.equal(ok!.hits, 0, "nothing probed");
});

test("a file that is not YAML, or has no instance: exit 1 naming the file", async () => {
  const notYaml = join(dir, "broken.yaml");
  writeFileSync(notYaml, "kind: [unclosed\n");
  const r = await roster(["check", "-f", notYaml]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^roster check: .*broken\.yaml: /);
  const onlyPolicy = await roster(["check", "-f", manifest([policy])]);
  assert.equal(onlyPolicy.code, 1);
  assert.match(onlyPolicy.stderr, /no ServiceInstance in the given files/);
});

test("loopback targets without --allow-loopback: DestinationDenied and a hint, nothing probed, exit 1", async (t) => {
  const [ok] = await httpTargets(t, 1);
  const r = await roster(["check", "-f", manifest([policy, instance("ok", ok!.host, ok!.port)])]);
  assert.equal(r.code, 1);
  const row = rows(r.stdout).get("ok")!;
  assert.deepEqual(row.slice(1, 3), ["Unhealthy", "DestinationDenied"]);
  assert.match(row[3]!, /loopback/);
  assert.match(r.stderr, /pass --allow-loopback/);
  assert.equal(ok!.hits, 0, "the destination policy stopped the probe");
});

test("a udp probe: an echo server is healthy, a closed port is PortUnreachable", async (t) => {
  const echo = createSocket("udp4");
  echo.on("message", (msg, from) =>
    echo.send(Buffer.concat([Buffer.from("pong "), msg]), from.port, from.address),
  );
  await new Promise<void>((resolve) => echo.bind(0, "127.0.0.1", resolve));
  t.after(() => echo.close());
  const closed = createSocket("udp4");
  await new Promise<void>((resolve) => closed.bind(0, "127.0.0.1", resolve));
  const closedPort = closed.address().port;
  await new Promise<void>((resolve) => closed.close(resolve));
  const udpPolicy = {
    ...policy,
    metadata: { name: "dns" },
    spec: {
      service: "dns",
      healthCheck: {
        probes: [{ type: "udp", udp: { port: "http", payload: "ping", expectRegex: "^pong ping$" } }],
        interval: "1s",
        timeout: "500ms",
        failureThreshold: 1,
      },
    },
  };
  const file = manifest([
    udpPolicy,
    instance("echo", "127.0.0.1", echo.address().port, "dns"),
    instance("closed", "127.0.0.1", closedPort, "dns"),
  ]);
  const r = await roster(["check", "-f", file, "--allow-loopback"]);
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  const table = rows(r.stdout);
  assert.deepEqual(table.get("echo")!.slice(1, 3), ["Healthy", "ProbeSucceeded"]);
  assert.deepEqual(table.get("closed")!.slice(1, 3), ["Unhealthy", "PortUnreachable"]);
});

/** An instance of service `service` with its own health check of one probe on its port "http". */
function probed(name: string, port: number, service: string, probe: object) {
  const si = instance(name, "127.0.0.1", port, service);
  return {
    ...si,
    spec: {
      ...si.spec,
      healthCheck: { probes: [probe], interval: "1s", timeout: "900ms", failureThreshold: 1 },
    },
  };
}

/** A --secrets directory: DIR/NAME/KEY for each Secret key. */
function secretsDir(secrets: Record<string, Record<string, string>>): string {
  const root = join(dir, `secrets-${++files}`);
  for (const [name, keys] of Object.entries(secrets)) {
    mkdirSync(join(root, name), { recursive: true });
    for (const [key, value] of Object.entries(keys)) writeFileSync(join(root, name, key), value);
  }
  return root;
}

test("a tcp probe with tls: CA bundle, client certificate from --secrets, expiryWarning; refused with a hint without --secrets", async (t) => {
  const { ca, cert, key } = testCerts();
  const server = createTlsServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (s) =>
    s.end(),
  );
  server.on("tlsClientError", () => {});
  const port = await listen(server);
  t.after(() => server.close());
  const tls = { caBundle: ca, serverName: "localhost" };
  const file = manifest([
    probed("mtls", port, "db", {
      type: "tcp",
      tcp: {
        port: "http",
        tls: { ...tls, clientCertificate: { secretName: "probe-client" }, expiryWarning: "72h" },
      },
    }),
    probed("nocert", port, "db", { type: "tcp", tcp: { port: "http", tls } }),
  ]);
  const secrets = secretsDir({ "probe-client": { "tls.crt": cert, "tls.key": key } });
  const r = await roster(["check", "-f", file, "--allow-loopback", "--secrets", secrets]);
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  const table = rows(r.stdout);
  // The test certificate is valid for 2 days: within the 72h warning, and still healthy.
  assert.deepEqual(table.get("mtls")!.slice(1, 3), ["Healthy", "CertificateExpiresSoon"]);
  assert.deepEqual(table.get("nocert")!.slice(1, 3), ["Unhealthy", "TLSError"]);
  assert.match(table.get("nocert")![3]!, /CERTIFICATE_REQUIRED/);

  const without = await roster(["check", "-f", file, "--allow-loopback"]);
  assert.equal(without.code, 1);
  const refused = rows(without.stdout).get("mtls")!;
  assert.equal(refused[1], "Refused");
  assert.match(refused[3]!, /Secret probe-client not found .*pass --secrets DIR/);
});

test("postgres and redis probes with passwords from --secrets and expectRole", {
  skip: skipWithoutDatabases(),
}, async (t) => {
  const pg = await postgresCluster(t);
  const redis = await redisServer(t, { password: "secret" });
  const passwordFrom = { secretKeyRef: { name: "db-probe", key: "password" } };
  const file = manifest([
    probed("pg", pg.primary.port, "orders-db", {
      type: "postgres",
      postgres: { port: "http", user: pg.user, passwordFrom, expectRole: "primary" },
    }),
    probed("pg-replica", pg.primary.port, "orders-db", {
      type: "postgres",
      postgres: { port: "http", user: pg.user, passwordFrom, expectRole: "replica" },
    }),
    probed("cache", redis.port, "cache", {
      type: "redis",
      redis: { port: "http", passwordFrom, expectRole: "primary" },
    }),
  ]);
  const r = await roster([
    "check",
    "-f",
    file,
    "--allow-loopback",
    "--secrets",
    secretsDir({ "db-probe": { password: pg.password } }),
  ]);
  const table = rows(r.stdout);
  assert.deepEqual(table.get("pg")!.slice(1, 3), ["Healthy", "ProbeSucceeded"], r.stdout);
  assert.deepEqual(table.get("pg-replica")!.slice(1, 3), ["Unhealthy", "RoleMismatch"], r.stdout);
  assert.deepEqual(table.get("cache")!.slice(1, 3), ["Healthy", "ProbeSucceeded"], r.stdout);
  assert.equal(r.code, 1);
});
