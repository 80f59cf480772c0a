// `roster dev` (what `make run` does) as a child process with its own local
// control plane in a temporary --dir (never the developer's .sandbox/dev):
// with --once it exits 0 once the demo reached its expected state and prints
// it; live, SIGINT (Ctrl-C) stops everything. Either way no process of its
// control plane is left behind. These run the loopback demo (--loopback, what
// runs without root); dev-dataplane.test.ts runs the demo on the data plane.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { exitsWithin, processesMentioning, roster, startRoster } from "../../support/cli.ts";
import { eventually } from "../../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-cli-dev-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

// Not the test runner's cluster: `roster dev` starts its own.
const env = { KUBECONFIG: undefined };

/** Rows of the printed view by instance name: [address, healthy, ready, reason, weight, zone]. */
function instanceRows(block: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of block.split("\n")) {
    const cells = line.trim().split(/\s+/);
    if (/^(shop|inventory)-\d$/.test(cells[0] ?? "")) rows.set(cells[0]!, cells.slice(1));
  }
  return rows;
}

function assertNothingLeft(sandboxDir: string) {
  assert.deepEqual(processesMentioning(sandboxDir), [], `processes of ${sandboxDir} left running`);
}

test("roster dev --once --no-tty: reaches the demo's expected state, prints it, exits 0, leaves nothing", async () => {
  const sandboxDir = join(dir, "once");
  const r = await roster(
    ["dev", "--once", "--no-tty", "--loopback", "--timeout", "90", "--dir", sandboxDir],
    {
      env,
      timeoutMs: 150_000,
    },
  );
  assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.match(r.stdout, /Starting the local control plane/);
  assert.match(r.stdout, /^No data plane \(--loopback\): demo backends on loopback, no traffic panel\.$/m);
  assert.ok(!r.stdout.includes("traffic to "), "no traffic panel");
  assert.ok(r.stdout.includes(`export KUBECONFIG=${sandboxDir}/kubeconfig`), "prints the KUBECONFIG line");
  assert.ok(!r.stdout.includes("\x1b["), "--no-tty: no escape codes");

  const shopHead =
    /^roster-demo\/shop {2}policy=shop {2}strategy=WeightedRoundRobin {2}healthy=(\d)\/5 {2}revision=(\d+)/m;
  const head = shopHead.exec(r.stdout);
  assert.ok(head, `shop's summary line:\n${r.stdout}`);
  assert.ok(Number(head[2]) >= 1, "shop's published revision is set");
  assert.match(
    r.stdout,
    /^roster-demo\/inventory {2}policy=\(default\) {2}strategy=RoundRobin {2}healthy=2\/2 {2}revision=\d+/m,
  );

  const rows = instanceRows(r.stdout);
  for (const name of ["shop-1", "shop-2", "shop-3"]) {
    assert.deepEqual(rows.get(name)?.slice(1, 5), ["true", "True", "Healthy", "ProbeSucceeded"], name);
  }
  assert.deepEqual(
    rows.get("shop-4")?.slice(1, 5),
    ["false", "False", "Unhealthy", "HTTPStatus"],
    "shop-4 fails (503)",
  );
  assert.deepEqual(rows.get("shop-1")?.slice(5), ["300", "zone-a"], "weights and zones");
  assert.ok(rows.has("shop-5"), "the flapping one is listed (its state depends on the moment)");
  assert.deepEqual(
    rows.get("inventory-1")?.slice(1, 5),
    ["true", "True", "Healthy", "ProbeSucceeded"],
    "gRPC backend",
  );
  assert.deepEqual(
    rows.get("inventory-2")?.slice(1, 5),
    ["true", "False", "Draining", "ProbeSucceeded"],
    "drained",
  );

  assertNothingLeft(sandboxDir);
});

test("roster dev live: SIGINT stops the operator, the backends and the control plane, exit 0", async (t) => {
  const sandboxDir = join(dir, "live");
  const dev = startRoster(t, ["dev", "--no-tty", "--loopback", "--dir", sandboxDir], { env });
  // The live view refreshes every second; wait for one showing the demo settled enough.
  await dev.waitForOutput(/^ {2}shop-4 +192\.0\.2\.13 +false /m, 120_000);
  assert.match(dev.stdout(), /^--- \d{4}-\d\d-\d\dT/m, "--no-tty: timestamped plain refreshes");
  assert.ok(processesMentioning(sandboxDir).length > 0, "its control plane runs meanwhile");

  // SIGINT to the CLI alone (like `kill -INT`): it must stop its control plane itself.
  dev.proc.kill("SIGINT");
  const r = await exitsWithin(dev, 30_000);
  assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
  assert.match(r.stdout, /Stopping the operator, the demo backends and the local control plane\.\.\./);
  // The sandbox is stopped before the CLI exits; allow the kernel a moment to reap.
  await eventually(() => (processesMentioning(sandboxDir).length === 0 ? true : undefined), {
    timeoutMs: 5000,
    what: "no process of the control plane",
  }).catch(() => assertNothingLeft(sandboxDir));
});

test("roster dev live: Ctrl-C (SIGINT to the whole process group) stops everything, exit 0", async (t) => {
  const sandboxDir = join(dir, "ctrl-c");
  // Its own process group, as a shell job in a terminal.
  const dev = startRoster(t, ["dev", "--no-tty", "--loopback", "--dir", sandboxDir], {
    env,
    detached: true,
  });
  await dev.waitForOutput(/^ {2}shop-1 +192\.0\.2\.10 +true /m, 120_000);
  process.kill(-dev.pid, "SIGINT");
  const r = await exitsWithin(dev, 30_000);
  assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
  await eventually(() => (processesMentioning(sandboxDir).length === 0 ? true : undefined), {
    timeoutMs: 5000,
    what: "no process of the control plane",
  }).catch(() => assertNothingLeft(sandboxDir));
});
