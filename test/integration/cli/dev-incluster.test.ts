// `roster dev --in-cluster --once` (what `make run-in-cluster` does), as a
// child process with its own sandbox node in a temporary --dir: the image
// built offline and imported into the node's containerd, the chart installed
// by bin/helm with the demo's values, the operator pods Ready, then the same
// demo objects, view and traffic panel as the data-plane demo. With --once it
// exits once the view and the panel agree: traffic on the ready shop
// instances of the node's zone (zone-a) only, none on the failing shop-4.
// Needs root and the node's tools: skips with the reason otherwise (fails
// under CI=true).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { exitsWithin, processesMentioning, startRoster } from "../../support/cli.ts";
import { eventually } from "../../support/cluster.ts";
import { nodeUnsupported } from "../node/support.ts";

// Short: the node's containerd socket lives under it.
const dir = mkdtempSync("/tmp/rst-dev-ic-");
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

function supported(t: TestContext): boolean {
  const reason = nodeUnsupported();
  if (!reason) return true;
  if (process.env.CI === "true") throw new Error(`CI=true but ${reason}`);
  t.skip(reason);
  return false;
}

test("roster dev --in-cluster --once: the operator as Helm-installed pods, Ready; the panel counts only healthy backends", async (t) => {
  if (!supported(t)) return;
  const sandboxDir = join(dir, "sb");
  const dev = startRoster(
    t,
    ["dev", "--in-cluster", "--once", "--no-tty", "--timeout", "180", "--dir", sandboxDir],
    { env: { KUBECONFIG: undefined } },
  );
  const r = await exitsWithin(dev, 600_000);
  assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  // The header names the pods and the release.
  const header =
    /^ {2}the operator runs as pods (\S+), (\S+) \(Ready\), installed by Helm: release roster in namespace roster-system$/m.exec(
      r.stdout,
    );
  assert.ok(header, `the header names the operator pods and the Helm release:\n${r.stdout}`);
  for (const pod of [header[1]!, header[2]!]) assert.match(pod, /^roster-[a-z0-9]+-[a-z0-9]+$/);
  assert.ok(!r.stdout.includes("No data plane"));

  const start = r.stdout.lastIndexOf("\ntraffic to ");
  assert.ok(start >= 0, `a traffic panel in:\n${r.stdout}`);
  const lines = r.stdout.slice(start + 1).split("\n");
  assert.match(
    lines[0]!,
    /^traffic to shop\.roster-demo\.svc\.cluster\.local:8080 \(ClusterIP 198\.19\.\d+\.\d+\) {2}from \S+ \(zone-a\)/,
  );
  const rows = new Map<string, { rate: number; line: string }>();
  for (const line of lines) {
    const m = /^ {2}(shop-\d) +198\.1[89]\.\S+ +(zone-[ab]) +([\d.]+)/.exec(line);
    if (m) rows.set(m[1]!, { rate: Number(m[3]), line });
  }
  assert.deepEqual([...rows.keys()], ["shop-1", "shop-2", "shop-3", "shop-4", "shop-5"], lines.join("\n"));
  const failed = lines.map((l) => /^ {2}failed +([\d.]+) connections\/s/.exec(l)).find(Boolean);
  assert.equal(Number(failed?.[1]), 0, "no connection failed");
  // shop-1 and shop-2: healthy, in the node's zone: served.
  for (const name of ["shop-1", "shop-2"]) assert.ok(rows.get(name)!.rate > 0, rows.get(name)!.line);
  // shop-4 fails its check (probed from the pods): never published, never served.
  assert.equal(rows.get("shop-4")!.rate, 0);
  assert.match(rows.get("shop-4")!.line, /no traffic: not published \(Unhealthy\)/);
  // shop-3 is healthy but in zone-b: the zone hints keep zone-a's traffic in zone-a.
  assert.equal(rows.get("shop-3")!.rate, 0, rows.get("shop-3")!.line);
  assert.deepEqual(processesMentioning(sandboxDir), [], `processes of ${sandboxDir} left running`);
});

test("roster dev --in-cluster live: Ctrl-C uninstalls the release and stops the sandbox with its node", async (t) => {
  if (!supported(t)) return;
  const sandboxDir = join(dir, "live");
  const dev = startRoster(t, ["dev", "--in-cluster", "--no-tty", "--dir", sandboxDir], {
    env: { KUBECONFIG: undefined },
    detached: true,
  });
  // The image built by the first test is reused (same commit) unless the checkout is dirty.
  await dev.waitForOutput(/^ {2}shop-1 +198\.\S+ +zone-a +[1-9][\d.]*(?: |$)/m, 300_000);
  assert.match(dev.stdout(), /^ {2}the operator runs as pods \S+, \S+ \(Ready\), installed by Helm/m);
  process.kill(-dev.pid, "SIGINT");
  const r = await exitsWithin(dev, 120_000);
  assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
  assert.match(
    r.stdout,
    /Stopping the operator \(helm uninstall\), the demo backends, the data plane and the local control plane with its node\.\.\./,
  );
  await eventually(() => (processesMentioning(sandboxDir).length === 0 ? true : undefined), {
    timeoutMs: 5000,
    what: "no process of the sandbox or its node",
  }).catch(() => undefined);
  assert.deepEqual(processesMentioning(sandboxDir), [], `processes of ${sandboxDir} left running`);
});
