// `roster dev` (what `make run` does) on the data plane, as a child process
// with its own control plane and data plane in a temporary --dir: the demo's
// backends are test hosts at 198.18.x.y, and its traffic panel counts the
// connections a consumer in the node namespace opens to the shop's ClusterIP.
// With --once it exits once the panel agrees with the slices: traffic on the
// ready shop instances of the node's zone (zone-b), none on the failing
// shop-4; and beside it the xDS consumer's column (grpc-go over Roster's
// xDS server) with RPCs on exactly the healthy shop instances, in both
// zones, and none failed. Live, the printed curl command reaches a healthy backend by DNS
// name, and Ctrl-C removes every namespace and process it started. Needs
// root and network namespaces: skips with the reason otherwise (fails under
// CI=true).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { dataPlaneUnsupported } from "../../../src/dev/testhosts.ts";
import { exitsWithin, processesMentioning, startRoster } from "../../support/cli.ts";
import { eventually } from "../../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-cli-dev-dp-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
const env = { KUBECONFIG: undefined };

function supported(t: TestContext): boolean {
  const reason = dataPlaneUnsupported();
  if (!reason) return true;
  if (process.env.CI === "true") throw new Error(`CI=true but ${reason}`);
  t.skip(reason);
  return false;
}

interface PanelRow {
  address: string;
  zone: string;
  rate: number;
  /** RPCs/s the xDS consumer sent it. */
  xds: number;
  note: string;
}

/** The last traffic panel in the output: rows by instance name. */
function lastPanel(stdout: string): {
  header: string;
  rows: Map<string, PanelRow>;
  failed: number;
  xdsFailed: number;
} {
  const start = stdout.lastIndexOf("\ntraffic to ");
  assert.ok(start >= 0, `a traffic panel in:\n${stdout}`);
  const lines = stdout.slice(start + 1).split("\n");
  const rows = new Map<string, PanelRow>();
  let failed = Number.NaN;
  let xdsFailed = Number.NaN;
  for (const line of lines.slice(1)) {
    const row = /^ {2}(shop-\d) +(\S+) +(\S+) +([\d.]+) +#* +([\d.]+) +#* *(.*)$/.exec(line);
    if (row) {
      rows.set(row[1]!, {
        address: row[2]!,
        zone: row[3]!,
        rate: Number(row[4]),
        xds: Number(row[5]),
        note: row[6]!,
      });
    }
    const f = /^ {2}failed +([\d.]+) connections\/s/.exec(line);
    if (f) failed = Number(f[1]);
    const x = /^ +([\d.]+) xDS RPCs\/s failed \(grpc-go over xDS: xds:\/\/\/shop\.roster-demo/.exec(line);
    if (x) xdsFailed = Number(x[1]);
  }
  return { header: lines[0]!, rows, failed, xdsFailed };
}

const netnsOf = (prefix: string) =>
  execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(prefix));

/** The node namespace the demo printed (`node rst-<pid>-node (zone-b)`). */
const nodeNamespace = (stdout: string) => /^ {2}node (rst-\d+-node) \(zone-b\)/m.exec(stdout)?.[1];

function assertNothingLeft(sandboxDir: string, devPid: number, node: string) {
  assert.deepEqual(processesMentioning(sandboxDir), [], `processes of ${sandboxDir} left running`);
  assert.deepEqual(processesMentioning(`rst-${devPid}-`), [], "backends or consumers left running");
  assert.deepEqual(netnsOf(`rst-${devPid}-`), [], "test-host namespaces left");
  assert.deepEqual(netnsOf(node.replace(/node$/, "")), [], "the data plane's namespaces left");
}

test("roster dev --once on the data plane: the traffic panel shows traffic on the routed healthy backends only", async (t) => {
  if (!supported(t)) return;
  const sandboxDir = join(dir, "once");
  const dev = startRoster(t, ["dev", "--once", "--no-tty", "--timeout", "120", "--dir", sandboxDir], { env });
  const r = await exitsWithin(dev, 180_000);
  assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const node = nodeNamespace(r.stdout);
  assert.ok(node, `the data plane's node namespace is printed:\n${r.stdout}`);
  assert.ok(
    r.stdout.includes(`  ip netns exec ${node} curl http://shop.roster-demo.svc.cluster.local:8080/\n`),
    "prints the curl command",
  );
  assert.ok(!r.stdout.includes("No data plane"));

  const panel = lastPanel(r.stdout);
  assert.match(
    panel.header,
    /^traffic to shop\.roster-demo\.svc\.cluster\.local:8080 \(ClusterIP 198\.19\.\d+\.\d+\) {2}from rst-\d+-node \(zone-b\)/,
  );
  assert.deepEqual([...panel.rows.keys()], ["shop-1", "shop-2", "shop-3", "shop-4", "shop-5"]);
  for (const [name, row] of panel.rows) {
    assert.match(row.address, /^198\.1[89]\./, `${name} lives at a test-host address`);
  }
  assert.equal(panel.failed, 0, "no connection failed");
  // shop-3: healthy, in the node's zone.
  assert.ok(panel.rows.get("shop-3")!.rate > 0, "the healthy backend in the node's zone is served");
  assert.equal(panel.rows.get("shop-3")!.note, "");
  // shop-4 fails its health check: never published, never served.
  assert.deepEqual(
    { rate: panel.rows.get("shop-4")!.rate, note: panel.rows.get("shop-4")!.note },
    { rate: 0, note: "no traffic: not published (Unhealthy)" },
  );
  // shop-1 and shop-2 are healthy but in zone-a: the zone hints keep zone-b's traffic in zone-b.
  for (const name of ["shop-1", "shop-2"]) {
    const row = panel.rows.get(name)!;
    assert.deepEqual(
      { rate: row.rate, note: row.note },
      { rate: 0, note: "no traffic: zone-a: the node's zone zone-b has ready endpoints" },
      name,
    );
  }
  // shop-5 flaps: served exactly when kube-proxy routes to it (--once waits for that to agree).
  const five = panel.rows.get("shop-5")!;
  assert.ok(five.rate > 0 ? five.note === "" : five.note.startsWith("no traffic: "), JSON.stringify(five));
  // The xDS consumer follows Roster in every zone: RPCs on the healthy
  // instances of both zones (weights, not zones, decide its spread), none on
  // the failing shop-4, shop-5 exactly while it is published, none failed.
  assert.equal(panel.xdsFailed, 0, "no xDS RPC failed");
  for (const name of ["shop-1", "shop-2", "shop-3"]) {
    assert.ok(
      panel.rows.get(name)!.xds > 0,
      `${name} answers xDS RPCs: ${JSON.stringify(panel.rows.get(name))}`,
    );
  }
  assert.equal(panel.rows.get("shop-4")!.xds, 0, "the failing shop-4 gets no xDS RPCs");
  assert.equal(
    five.xds > 0,
    five.note === "",
    `shop-5 over xDS exactly while published: ${JSON.stringify(five)}`,
  );
  assertNothingLeft(sandboxDir, dev.pid, node);
});

test("roster dev live on the data plane: the printed curl reaches a healthy backend; Ctrl-C removes everything", async (t) => {
  if (!supported(t)) return;
  const sandboxDir = join(dir, "live");
  const dev = startRoster(t, ["dev", "--no-tty", "--dir", sandboxDir], { env, detached: true });
  await dev.waitForOutput(/^ {2}shop-3 +198\.\S+ +zone-b +[1-9][\d.]*(?: |$)/m, 150_000);
  const node = nodeNamespace(dev.stdout())!;
  const command = /^ {2}(ip netns exec \S+ curl \S+)$/m.exec(dev.stdout())![1]!.split(" ");
  // What a newcomer pastes: served by a healthy backend of the node's zone.
  const answer = execFileSync(command[0]!, [...command.slice(1), "-s", "--max-time", "5"], {
    encoding: "utf8",
  });
  assert.match(answer, /^shop-[35] 8080 198\.18\.\d+\.\d+\n$/);

  process.kill(-dev.pid, "SIGINT");
  const r = await exitsWithin(dev, 30_000);
  assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
  assert.match(
    r.stdout,
    /Stopping the operator, the demo backends, the data plane and the local control plane\.\.\./,
  );
  await eventually(
    () =>
      processesMentioning(sandboxDir).length === 0 && netnsOf(node.replace(/node$/, "")).length === 0
        ? true
        : undefined,
    { timeoutMs: 5000, what: "no process or namespace of the demo" },
  ).catch(() => assertNothingLeft(sandboxDir, dev.pid, node));
  assertNothingLeft(sandboxDir, dev.pid, node);
});
