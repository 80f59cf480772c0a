// Clear errors when the CLI cannot do its job, each naming what fixes it:
// no kubeconfig, a cluster that does not answer, Roster's CRDs missing (a
// private sandbox without them), a bad operator config file.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { startSandbox } from "../../../src/dev/sandbox.ts";
import { freePort, roster } from "../../support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-cli-errors-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

function kubeconfigFor(server: string): string {
  const file = join(dir, `kubeconfig-${server.replace(/\W+/g, "-")}`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
      "current-context": "ctx",
    }),
  );
  return file;
}

describe("cluster access", { concurrency: true }, () => {
  test("no kubeconfig anywhere: says so and names KUBECONFIG, exit 1", async () => {
    const home = mkdtempSync(join(dir, "home-"));
    for (const args of [["status"], ["run", "-n", "x"]]) {
      const r = await roster(args, { env: { HOME: home, KUBERNETES_SERVICE_HOST: undefined } });
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^roster ${args[0]}: no kubeconfig: KUBECONFIG is not set`));
      assert.match(r.stderr, /Set KUBECONFIG or pass --kubeconfig/);
      // Not client-node's silent fallback to http://localhost:8080.
      assert.ok(!r.stderr.includes("localhost:8080"), r.stderr);
    }
  });

  test("KUBECONFIG naming a missing file: names the variable and the file, exit 1", async () => {
    const home = mkdtempSync(join(dir, "home-"));
    const r = await roster(["status"], { env: { KUBECONFIG: "/nonexistent", HOME: home } });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^roster status: cannot load the kubeconfig from KUBECONFIG=\/nonexistent: ENOENT/,
    );
    const flag = await roster(["status", "--kubeconfig", "/nonexistent"], { env: { HOME: home } });
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /cannot load the kubeconfig from --kubeconfig \/nonexistent: ENOENT/);
  });

  test("a cluster that does not answer: unreachable, with the server and the cause, exit 1", async () => {
    const refusedPort = await freePort();
    const cases: [string, RegExp][] = [
      // Port 1: fetch refuses it outright ("bad port").
      ["https://127.0.0.1:1", /is unreachable: /],
      // A free port: the connection is refused.
      [`https://127.0.0.1:${refusedPort}`, /is unreachable: connect ECONNREFUSED/],
    ];
    for (const [server, cause] of cases) {
      for (const command of ["status", "run"]) {
        const r = await roster([command], { env: { KUBECONFIG: kubeconfigFor(server) } });
        assert.equal(r.code, 1, `${command} ${server}: ${r.stderr}`);
        assert.match(
          r.stderr,
          new RegExp(
            `^roster ${command}: cluster ${server.replace(/\./g, "\\.")} \\(context ctx\\) ${cause.source}`,
          ),
        );
        assert.match(
          r.stderr,
          /Is it running, and is KUBECONFIG \(or --kubeconfig\) pointing at the right cluster\?/,
        );
        assert.ok(!r.stderr.includes("    at "), `no stack trace:\n${r.stderr}`);
      }
    }
  });
});

test("a cluster without Roster's CRDs: status and run name `roster crds`, exit 1", async (t) => {
  const sandbox = await startSandbox({ dir: join(dir, "no-crds") });
  t.after(() => sandbox.stop());
  for (const args of [["status"], ["status", "-A", "-o", "json"], ["run", "--no-leader-elect"]]) {
    const r = await roster(args, { env: { KUBECONFIG: sandbox.kubeconfigPath } });
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(
      r.stderr,
      `roster ${args[0]}: Roster's CRDs are not installed in ${sandbox.server}: ` +
        "run `roster crds | kubectl apply --server-side -f -` (or install the Helm chart)\n",
    );
    assert.equal(r.stdout, "");
  }
});

describe("roster run: a bad config file", { concurrency: true }, () => {
  const configFile = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  // Checked before the cluster is contacted: no kubeconfig needed.
  const cases: [string, string, RegExp[]][] = [
    [
      "typo.yaml",
      "probing:\n  maxConcurent: 5\n",
      [/invalid config .*typo\.yaml:/, /- probing\.maxConcurent: unknown field/],
    ],
    [
      "range.yaml",
      "publishing:\n  batchWindow: 1h\nprobing:\n  destinations:\n    deny: [not-a-cidr]\n",
      [/- publishing\.batchWindow: /, /- probing\.destinations\.deny\[0\]: must be an IP address or CIDR/],
    ],
    ["syntax.yaml", "probing: [unclosed\n", [/YAML syntax error at line \d+, column \d+/]],
  ];
  for (const [name, text, messages] of cases) {
    test(`${name}: exit 1 with a message naming the field`, async () => {
      const r = await roster(["run", "--config", configFile(name, text)], {
        env: { KUBECONFIG: "/nonexistent" },
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^roster run: invalid config /);
      for (const m of messages) assert.match(r.stderr, m);
      assert.equal(r.stdout, "", "nothing started");
    });
  }

  test("a missing config file: names it, exit 1", async () => {
    const r = await roster(["run", "--config", join(dir, "absent.yaml")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /absent\.yaml:\n {2}- cannot read the file: ENOENT/);
  });
});
