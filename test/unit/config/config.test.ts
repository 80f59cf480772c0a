import assert from "node:assert/strict";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ConfigError, loadConfig, parseConfig } from "../../../src/config/load.ts";
import { applyConfigChange, managerOptions } from "../../../src/config/runtime.ts";
import type { OperatorConfig } from "../../../src/config/schema.ts";
import { watchConfig } from "../../../src/config/watch.ts";
import { createLogger } from "../../../src/kube/log.ts";
import type { ManagerSettings } from "../../../src/kube/manager.ts";
import { probingOptions } from "../../../src/operator/settings.ts";

function problems(text: string): string[] {
  try {
    parseConfig(text, "test.yaml");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /^invalid config test\.yaml:/);
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

describe("config: parsing and validation", () => {
  test("an empty file is the default config", () => {
    const c = parseConfig("", "empty.yaml");
    assert.equal(c.logLevel, "info");
    assert.equal(c.metrics.port, 8080);
    assert.equal(c.health.port, 8081);
    assert.deepEqual(
      [c.leaderElection.leaseDuration, c.leaderElection.renewDeadline, c.leaderElection.retryPeriod],
      ["15s", "10s", "2s"],
    );
    assert.equal(c.leaderElection.enabled, true);
    assert.equal(c.concurrency.default, 4);
    assert.deepEqual(c.namespaces, []);
    assert.equal(c.defaultPolicy.healthCheck.interval, "10s");
    assert.equal(c.defaultPolicy.healthCheck.probes[0]!.type, "tcp");
    assert.equal(c.defaultPolicy.loadBalancing.strategy, "RoundRobin");
    assert.equal(c.defaultPolicy.publish.endpointSlices, true);
  });

  test("a full file is read as written", () => {
    const c = parseConfig(`
logLevel: debug
metrics: { port: 9090, bindAddress: 127.0.0.1 }
health: { port: 9091 }
leaderElection: { namespace: ops, leaseName: roster, leaseDuration: 30s, renewDeadline: 20s, retryPeriod: 4s }
concurrency: { default: 8, perController: { serviceinstance: 16 } }
namespaces: [team-a, team-b]
watch: { inactivityTimeout: 1m, resyncPeriod: 10m }
defaultPolicy:
  healthCheck:
    probes: [{ type: http, http: { path: /healthz, port: http } }]
    interval: 5s
    timeout: 2s
  loadBalancing: { strategy: WeightedRoundRobin }
`);
    assert.equal(c.logLevel, "debug");
    assert.equal(c.concurrency.perController.serviceinstance, 16);
    assert.deepEqual(c.namespaces, ["team-a", "team-b"]);
    assert.equal(c.defaultPolicy.healthCheck.interval, "5s");
    assert.equal(c.defaultPolicy.loadBalancing.strategy, "WeightedRoundRobin");
    const m = managerOptions(c);
    assert.deepEqual(m.leaderElection, {
      enabled: true,
      namespace: "ops",
      name: "roster",
      leaseDurationMs: 30_000,
      renewDeadlineMs: 20_000,
      retryPeriodMs: 4_000,
    });
    assert.deepEqual(m.informerDefaults, { inactivityTimeoutMs: 60_000, resyncPeriodMs: 600_000 });
    assert.equal(m.metricsPort, 9090);
    assert.equal(m.metricsBindAddress, "127.0.0.1");
    assert.equal(
      m.healthBindAddress,
      "0.0.0.0",
      "health keeps its own bind address: the kubelet must reach it",
    );
    assert.equal(m.metricsAuth, "none");
  });

  test("metrics auth and TLS reach the manager", () => {
    const m = managerOptions(
      parseConfig("metrics: { auth: kubernetes, tls: { certFile: /tls/tls.crt, keyFile: /tls/tls.key } }\n"),
    );
    assert.equal(m.metricsAuth, "kubernetes");
    assert.deepEqual(m.metricsTls, { certFile: "/tls/tls.crt", keyFile: "/tls/tls.key" });
  });

  test("errors name the field and say what is wrong", () => {
    assert.deepEqual(problems("logLevl: debug"), ["logLevl: unknown field"]);
    assert.match(
      problems("leaderElection: { leaseDuration: fifteen }")[0]!,
      /^leaderElection\.leaseDuration: must be a duration/,
    );
    assert.deepEqual(problems("leaderElection: { leaseDuration: 5s }"), [
      "leaderElection.renewDeadline: must be less than leaseDuration",
    ]);
    assert.match(problems("metrics: { port: 70000 }")[0]!, /^metrics\.port: /);
    assert.match(problems("metrics: { auth: tls }")[0]!, /^metrics\.auth: /);
    assert.deepEqual(problems("metrics: { port: 9000, bindAddress: 127.0.0.1 }\nhealth: { port: 9000 }"), [
      "metrics.bindAddress: must equal health.bindAddress when metrics.port equals health.port (one listener)",
    ]);
    assert.deepEqual(
      problems("metrics: { port: 9000, tls: { certFile: c, keyFile: k } }\nhealth: { port: 9000 }"),
      [
        "metrics.tls: needs a metrics.port other than health.port (the kubelet probes health over plain HTTP)",
      ],
    );
    assert.match(problems("concurrency: { default: 0 }")[0]!, /^concurrency\.default: /);
    assert.match(problems("namespaces: [Bad_Name]")[0]!, /^namespaces\[0\]: must be a namespace name/);
    assert.match(
      problems("defaultPolicy: { healthCheck: { interval: 1s, timeout: 2s } }")[0]!,
      /^defaultPolicy\.healthCheck\.timeout: timeout must be less than interval/,
    );
    assert.match(problems("defaultPolicy: { service: web }")[0]!, /^defaultPolicy\.service: unknown field/);
  });

  test("probing.dnsServers and dnsRefresh: validated, and mapped to the engine's resolver", () => {
    const defaults = probingOptions(parseConfig(""));
    assert.equal(defaults.resolver, undefined, "empty: the system resolver");
    assert.equal(defaults.dnsRefreshMs, 30_000);
    const c = parseConfig(
      'probing: { dnsServers: ["10.0.0.10", "10.0.0.11:5353", "[fd00::10]:53"], dnsRefresh: 5s }',
    );
    assert.deepEqual(c.probing.dnsServers, ["10.0.0.10", "10.0.0.11:5353", "[fd00::10]:53"]);
    const p = probingOptions(c);
    assert.equal(typeof p.resolver, "function");
    assert.equal(p.dnsRefreshMs, 5000);
    assert.match(
      problems('probing: { dnsServers: ["10.0.0.10", "dns.example"] }')[0]!,
      /^probing\.dnsServers\[1\]: must be an IPv4 or IPv6 address/,
    );
    assert.match(
      problems('probing: { dnsServers: ["10.0.0.10:0"] }')[0]!,
      /^probing\.dnsServers\[0\]: port must be/,
    );
    const nine = Array.from({ length: 9 }, (_, i) => `"10.0.0.${i + 1}"`).join(", ");
    assert.match(problems(`probing: { dnsServers: [${nine}] }`)[0]!, /^probing\.dnsServers: /);
    assert.match(problems("probing: { dnsRefresh: 100ms }")[0]!, /^probing\.dnsRefresh: /);
  });

  test("YAML syntax errors give line and column; non-mappings are refused", () => {
    assert.match(
      problems("logLevel: debug\nmetrics: [1, 2\n")[0]!,
      /^YAML syntax error at line \d+, column \d+/,
    );
    assert.deepEqual(problems("- a\n- b\n"), [
      "the document must be a mapping (key: value), not a list or a scalar",
    ]);
  });

  test("the config reference in docs/runtime.md is a valid config equal to the defaults it documents", () => {
    const doc = readFileSync(join(import.meta.dirname, "../../../docs/runtime.md"), "utf8");
    const yaml = /```yaml\n(logLevel:[\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(yaml, "docs/runtime.md has the config example");
    const documented = parseConfig(yaml, "docs/runtime.md");
    const defaults = parseConfig("");
    assert.deepEqual({ ...documented, concurrency: defaults.concurrency }, defaults);
  });

  test("a missing file is a ConfigError naming it", () => {
    assert.throws(
      () => loadConfig("/nonexistent/roster.yaml"),
      /invalid config \/nonexistent\/roster\.yaml:\n {2}- cannot read the file/,
    );
  });
});

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "roster-config-"));
  dirs.push(d);
  return d;
}

function waitFor<T>(get: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const v = get();
      if (v !== undefined) return resolve(v);
      if (Date.now() > deadline) return reject(new Error("timed out"));
      setTimeout(poll, 20);
    };
    poll();
  });
}

describe("config: hot reload", () => {
  test("a valid change is applied with the changed sections; a bad file keeps the previous config", async () => {
    const dir = tmp();
    const file = join(dir, "roster.yaml");
    writeFileSync(file, "logLevel: info\nconcurrency: { default: 2 }\n");
    const changes: string[][] = [];
    const errors: string[] = [];
    const w = watchConfig({
      path: file,
      debounceMs: 20,
      pollIntervalMs: 200,
      onChange: (_n, _p, changed) => void changes.push(changed),
      onError: (e) => void errors.push(e.problems.join("; ")),
    });
    try {
      assert.equal(w.current().concurrency.default, 2);
      writeFileSync(file, "logLevel: debug\nconcurrency: { default: 2 }\n");
      await waitFor(() => (changes.length === 1 ? true : undefined));
      assert.deepEqual(changes[0], ["logLevel"]);
      assert.equal(w.current().logLevel, "debug");

      writeFileSync(file, "logLevel: loud\n");
      await waitFor(() => (errors.length === 1 ? true : undefined));
      assert.match(errors[0]!, /^logLevel: /);
      assert.equal(w.current().logLevel, "debug", "the bad file did not replace the good config");
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(errors.length, 1, "the same bad content is reported once");

      writeFileSync(file, "logLevel: warn\nconcurrency: { default: 6 }\n");
      await waitFor(() => (changes.length === 2 ? true : undefined));
      assert.deepEqual(changes[1]!.sort(), ["concurrency", "logLevel"]);
      assert.equal(w.current().concurrency.default, 6);
    } finally {
      w.close();
    }
  });

  test("a Kubernetes ConfigMap volume update (..data symlink swap) is picked up", async () => {
    const dir = tmp();
    const v1 = join(dir, "..2026_01_01_v1");
    mkdirSync(v1);
    writeFileSync(join(v1, "roster.yaml"), "logLevel: info\n");
    symlinkSync("..2026_01_01_v1", join(dir, "..data"));
    symlinkSync("..data/roster.yaml", join(dir, "roster.yaml"));
    let seen: OperatorConfig | undefined;
    const w = watchConfig({
      path: join(dir, "roster.yaml"),
      debounceMs: 20,
      pollIntervalMs: 0,
      onChange: (next) => {
        seen = next;
      },
    });
    try {
      const v2 = join(dir, "..2026_01_01_v2");
      mkdirSync(v2);
      writeFileSync(join(v2, "roster.yaml"), "logLevel: error\n");
      symlinkSync("..2026_01_01_v2", join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
      const next = await waitFor(() => seen);
      assert.equal(next.logLevel, "error");
    } finally {
      w.close();
    }
  });

  test("applyConfigChange reconfigures live settings and reports restart-only sections", async () => {
    const calls: ManagerSettings[] = [];
    const next = parseConfig(
      "logLevel: debug\nleaderElection: { leaseName: other }\nconcurrency: { default: 3 }\n",
    );
    const out = await applyConfigChange({ reconfigure: async (s) => void calls.push(s) }, next, [
      "logLevel",
      "leaderElection",
      "concurrency",
    ]);
    assert.deepEqual(out, { applied: ["logLevel", "concurrency"], needsRestart: ["leaderElection"] });
    assert.equal(calls[0]!.logLevel, "debug");
    assert.deepEqual(calls[0]!.concurrency, { default: 3, perController: {} });
  });

  test("a reload that changes restart-only fields of a live section warns naming each field", async () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const manager = { reconfigure: async () => {} };
    const prev = parseConfig("probing: { maxPerHost: 16 }");
    const limits = parseConfig('probing: { maxPerHost: 4, maxConcurrent: 100, dnsServers: ["10.0.0.10"] }');
    const out = await applyConfigChange(manager, limits, ["probing"], { log, prev });
    assert.deepEqual(out, {
      applied: [],
      needsRestart: ["probing.maxConcurrent", "probing.maxPerHost", "probing.dnsServers"],
    });
    assert.equal(lines.length, 1);
    const warning = JSON.parse(lines[0]!) as { level: string; msg: string };
    assert.equal(warning.level, "warn");
    assert.match(warning.msg, /probing\.maxConcurrent, probing\.maxPerHost, probing\.dnsServers/);
    assert.match(warning.msg, /only on restart/);

    // Destinations apply live: no warning for them, but one for the limit changed with them.
    lines.length = 0;
    const mixed = parseConfig("probing: { maxPerHost: 4, destinations: { allowLoopback: true } }");
    const out2 = await applyConfigChange(manager, mixed, ["probing"], { log, prev });
    assert.deepEqual(out2, { applied: ["probing"], needsRestart: ["probing.maxPerHost"] });
    assert.match(lines[0]!, /probing\.maxPerHost/);

    lines.length = 0;
    const live = parseConfig("probing: { destinations: { allowLoopback: true } }");
    const out3 = await applyConfigChange(manager, live, ["probing"], { log, prev });
    assert.deepEqual(out3, { applied: ["probing"], needsRestart: [] });
    assert.deepEqual(lines, [], "a live-only change warns about nothing");
  });
});
