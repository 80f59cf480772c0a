// `roster` help, usage errors and `roster crds`: exit codes 0 (ok), 1
// (failure), 2 (usage), help that names every command and flag, and CRDs
// that are exactly the committed files and that the API server accepts.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadAll } from "js-yaml";
import { crdDir } from "../../../src/dev/crds.ts";
import { kubeClient } from "../../../src/kube/client.ts";
import { roster } from "../../support/cli.ts";
import { testCluster } from "../../support/cluster.ts";

const commands = ["run", "dev", "status", "check", "crds", "selftest", "version"];

describe("help and usage errors", { concurrency: true }, () => {
  test("roster --help lists every command, exit 0", async () => {
    for (const flag of ["--help", "-h", "help"]) {
      const r = await roster([flag]);
      assert.equal(r.code, 0, `roster ${flag}: ${r.stderr}`);
      assert.match(r.stdout, /^roster: a health-checked roster of service instances/);
      assert.match(r.stdout, /Usage: roster <command> \[flags\]/);
      for (const c of commands) assert.match(r.stdout, new RegExp(`^  ${c}\\s+\\S`, "m"), `lists ${c}`);
      assert.equal(r.stderr, "");
    }
  });

  test("no command: the help, exit 2", async () => {
    const r = await roster([]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /Commands:/);
  });

  test("unknown command: names it and shows the help on stderr, exit 2", async () => {
    const r = await roster(["deploy"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^roster: unknown command "deploy"/);
    assert.match(r.stderr, /Commands:\n {2}run/);
  });

  test("roster run --help: every flag, exit 0", async () => {
    const r = await roster(["run", "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: roster run \[flags\]/);
    for (const flag of [
      "--kubeconfig",
      "--config",
      "--namespace",
      "--[no-]leader-elect",
      "--metrics-port",
      "--health-port",
      "--log-level",
    ]) {
      assert.ok(r.stdout.includes(flag), `run --help mentions ${flag}`);
    }
  });

  test("each command has --help, exit 0", async () => {
    for (const c of commands) {
      const r = await roster([c, "--help"]);
      assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: roster ${c}\\b`), `${c} --help`);
    }
  });

  test("an unknown flag or a bad flag value: the message and the usage once, exit 2", async () => {
    const cases: [string[], RegExp][] = [
      [["run", "--bogus"], /Unknown option '--bogus'/],
      [["run", "--metrics-port", "http"], /--metrics-port must be a port number/],
      [["run", "--log-level", "loud"], /--log-level must be one of trace, debug, info/],
      [["status", "-o", "xml"], /-o must be table, json or yaml/],
      [["check"], /-f FILE is required/],
      [["dev", "--timeout", "soon"], /--timeout must be a positive number of seconds/],
      [["dev", "--dir", "/tmp/x", "--kubeconfig", "/tmp/y"], /--dir and --kubeconfig exclude each other/],
      [["selftest", "--timeout", "soon"], /--timeout: invalid duration "soon"/],
    ];
    for (const [args, message] of cases) {
      const r = await roster(args);
      assert.equal(r.code, 2, `roster ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^roster ${args[0]}: ${message.source}`), args.join(" "));
      // The usage appears once, not as "Usage: roster run Usage: roster run".
      assert.ok(!/Usage: roster \w+ Usage:/.test(r.stderr), r.stderr);
    }
  });
});

describe("roster crds", () => {
  test("prints exactly the committed CRDs", async () => {
    const r = await roster(["crds"]);
    assert.equal(r.code, 0, r.stderr);
    const files = readdirSync(crdDir)
      .filter((f) => f.endsWith(".yaml"))
      .sort();
    assert.equal(files.length, 2);
    const expected = files.flatMap((f) => loadAll(readFileSync(join(crdDir, f), "utf8")));
    const printed = loadAll(r.stdout);
    assert.deepEqual(printed, expected);
    assert.deepEqual(printed.map((d) => (d as { metadata: { name: string } }).metadata.name).sort(), [
      "discoverypolicies.roster.dev",
      "serviceinstances.roster.dev",
    ]);
  });

  test("the output applies: the API server accepts each CRD (server-side apply, dry run)", async () => {
    const { kc } = await testCluster();
    const client = kubeClient(kc);
    const r = await roster(["crds"]);
    assert.equal(r.code, 0, r.stderr);
    const docs = loadAll(r.stdout) as { kind: string; metadata: { name: string } }[];
    assert.equal(docs.length, 2);
    for (const doc of docs) {
      assert.equal(doc.kind, "CustomResourceDefinition");
      const applied = await client.request<{ metadata: { name: string } }>({
        method: "PATCH",
        path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${doc.metadata.name}`,
        query: { fieldManager: "roster-cli-test", dryRun: "All", force: true },
        contentType: "application/apply-patch+yaml",
        body: doc,
      });
      assert.equal(applied.metadata.name, doc.metadata.name);
    }
  });
});
