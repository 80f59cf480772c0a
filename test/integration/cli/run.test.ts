// `roster run` as a real process against the sandbox: with a config file
// (loopback probing allowed, as in local development), namespace scope,
// no leader election and ephemeral ports, it probes an instance, publishes
// it, follows a failure, ignores namespaces it does not serve, and stops
// cleanly (exit 0) on SIGTERM.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { exitsWithin, startRoster } from "../../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { createInstance, getInstance, publishedDocument, readyAddresses } from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-cli-run-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

test("roster run reconciles an instance to healthy, follows a failure, and exits 0 on SIGTERM", async (t) => {
  const { kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "cli-run");
  const other = await testNamespace(t, "cli-other");
  const [target] = await httpTargets(t, 1);
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      "logLevel: info",
      "probing:",
      "  destinations:",
      "    allowLoopback: true",
      "publishing:",
      "  batchWindow: 10ms",
      "  startupHold: 5s",
      "",
    ].join("\n"),
  );
  const operator = startRoster(
    t,
    ["run", "--config", config, "--no-leader-elect", "-n", ns, "--metrics-port", "0", "--health-port", "0"],
    { env: { KUBECONFIG: kubeconfigPath } },
  );
  await operator.waitForOutput(/"msg":"roster started"/, 30_000);

  await createInstance(ns, "web-1", webInstance(target!, 0));
  await createInstance(other, "web-1", webInstance(target!, 0));
  await eventually(
    async () => ((await getInstance(ns, "web-1")).status?.healthy === true ? true : undefined),
    {
      timeoutMs: 15_000,
      what: "web-1 healthy",
    },
  );
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.1" ? true : undefined),
    { timeoutMs: 5000, what: "web-1 published in the EndpointSlice" },
  );
  // The ConfigMap is written after the slices: wait for it too.
  await eventually(
    async () =>
      (await publishedDocument(ns, "web-roster"))?.endpoints.find((e) => e.instance === "web-1")?.state ===
      "Ready"
        ? true
        : undefined,
    { timeoutMs: 5000, what: "web-1 Ready in the ConfigMap" },
  );
  assert.ok(target!.hits > 0, "probed at its loopback address");

  // A failure: the process keeps probing and publishes the change.
  target!.healthy = false;
  await eventually(
    async () => ((await getInstance(ns, "web-1")).status?.healthy === false ? true : undefined),
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS + 2000, what: "web-1 unhealthy" },
  );

  // Scoped with -n: the other namespace's instance is never touched.
  assert.equal((await getInstance(other, "web-1")).status, undefined, "not reconciled outside -n");

  operator.proc.kill("SIGTERM");
  const r = await exitsWithin(operator, 15_000);
  assert.equal(r.code, 0, `exit code after SIGTERM; stderr:\n${r.stderr}`);
  assert.match(r.stdout, /"reason":"SIGTERM".*"msg":"roster stopped"/);
  // No error-level (50+) logs during the whole run.
  const errors = r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => l.level >= 50);
  assert.deepEqual(errors, []);
});
