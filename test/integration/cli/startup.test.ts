// `roster run` start-up failures, each with a real process against the
// sandbox: a metrics or health port in use, an identity the API server
// refuses (RBAC). Each must end the process with exit 1 and one line on
// stderr naming the cause, even with a config file (whose watcher, and the
// signal handlers, once kept a failed process alive and deaf to SIGTERM).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { CoreV1Api } from "@kubernetes/client-node";
import { serviceAccountKubeConfig } from "../../faults/support.ts";
import { exitsWithin, startRoster } from "../../support/cli.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-cli-startup-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

const config = join(dir, "config.yaml");
writeFileSync(config, "logLevel: info\n");

/** A listener on a free port of every IPv4 address (the operator's default bind address), closed after the test. */
async function occupiedPort(t: TestContext): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((done) => server.listen(0, "0.0.0.0", done));
  t.after(() => new Promise<void>((done) => server.close(() => done())));
  return (server.address() as { port: number }).port;
}

/** Generous: "it exited" rather than a timing claim (it takes about a second). */
const EXITS_MS = 30_000;

for (const flag of ["--metrics-port", "--health-port"]) {
  test(`${flag} in use: exit 1 with one line naming the port`, async (t) => {
    const { kubeconfigPath } = await testCluster();
    const ns = await testNamespace(t, "cli-startup");
    const busy = await occupiedPort(t);
    const ports = { "--metrics-port": "0", "--health-port": "0", [flag]: String(busy) };
    const p = startRoster(
      t,
      ["run", "--config", config, "--no-leader-elect", "-n", ns, ...Object.entries(ports).flat()],
      { env: { KUBECONFIG: kubeconfigPath } },
    );
    const r = await exitsWithin(p, EXITS_MS);
    assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}`);
    const what = flag === "--metrics-port" ? "/metrics" : "/healthz and /readyz";
    assert.equal(
      r.stderr,
      `roster run: start-up failed: cannot serve ${what} on 0.0.0.0:${busy}: the port is in use ` +
        "(another roster? choose another port in the config or with --metrics-port/--health-port)\n",
    );
  });
}

test("an identity without Roster's RBAC: exit 1 with one line naming the refused request", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "cli-rbac");
  // A ServiceAccount bound to nothing: it may read /version and API discovery, nothing else.
  await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccount({
    namespace: ns,
    body: { metadata: { name: "nobody" } },
  });
  const sa = await serviceAccountKubeConfig(kc, ns, "nobody", 600);
  const saPath = join(dir, `kubeconfig-${ns}`);
  writeFileSync(saPath, sa.exportConfig());
  const p = startRoster(
    t,
    ["run", "--config", config, "--no-leader-elect", "-n", ns, "--metrics-port", "0", "--health-port", "0"],
    { env: { KUBECONFIG: saPath } },
  );
  const r = await exitsWithin(p, EXITS_MS);
  assert.equal(r.code, 1, `exit code; stderr:\n${r.stderr}`);
  assert.equal(r.stderr.split("\n").length, 2, `one line:\n${r.stderr}`);
  assert.match(
    r.stderr,
    new RegExp(
      `^roster run: start-up failed: the API server refused the operator's requests \\(GET \\S+: 403 Forbidden: .*"system:serviceaccount:${ns}:nobody" cannot list .*\\); give its identity Roster's RBAC`,
    ),
  );
});

test("SIGTERM ends a standby replica (leader election held by another): exit 0", async (t) => {
  const { kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "cli-standby");
  const config = join(dir, `config-${ns}.yaml`);
  writeFileSync(config, `leaderElection:\n  enabled: true\n  namespace: ${ns}\nnamespaces: [${ns}]\n`);
  const args = ["run", "--config", config, "--metrics-port", "0", "--health-port", "0"];
  const env = { env: { KUBECONFIG: kubeconfigPath } };
  const leader = startRoster(t, args, env);
  await leader.waitForOutput(/"msg":"became leader"/, EXITS_MS);
  const standby = startRoster(t, args, env);
  await standby.waitForOutput(/"msg":"new leader observed"/, EXITS_MS);
  standby.proc.kill("SIGTERM");
  const r = await exitsWithin(standby, EXITS_MS);
  assert.equal(r.code, 0, `exit code; stderr:\n${r.stderr}`);
  assert.match(r.stdout, /"reason":"SIGTERM".*"msg":"roster stopped"/);
  assert.doesNotMatch(r.stdout, /"msg":"became leader"/, "it stayed a standby");
  leader.proc.kill("SIGTERM");
  assert.equal((await exitsWithin(leader, EXITS_MS)).code, 0);
});
