/** The API helpers and the behaviour of the schemas beyond the corpus: defaults, unions, error paths. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  API_VERSION,
  addressKind,
  configMapName,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_LOAD_BALANCING,
  DEFAULT_PUBLISH,
  DiscoveryPolicyResource,
  fieldPathSegments,
  formatDuration,
  formatPath,
  isIP,
  isUnspecifiedIP,
  isValidRegex,
  Metadata,
  parseDuration,
  portSummary,
  probePort,
  resolveProbePort,
  ServiceInstanceResource,
  tryParseDuration,
  validateDiscoveryPolicy,
  validateDiscoveryPolicySpec,
  validateHealthCheck,
  validateRosterObject,
  validateServiceInstance,
  validateServiceInstanceSpec,
  writtenSize,
} from "../../../src/api/index.ts";
import { canonicalJson } from "../../../src/api/published.ts";

const instance = (spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: "ServiceInstance",
  metadata: { name: "x" },
  spec: { service: "web", address: "10.0.0.1", ports: [{ name: "http", port: 80 }], ...spec },
});

describe("durations", () => {
  test("parseDuration", () => {
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("1m30s"), 90_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    assert.equal(parseDuration("2h45m10s250ms"), 2 * 3_600_000 + 45 * 60_000 + 10_250);
    assert.equal(parseDuration("0s"), 0);
    for (const bad of [
      "",
      "10",
      "1d",
      "-1s",
      " 1s",
      "1s ",
      "1.s",
      ".5s",
      "1 s",
      "1S",
      "1us",
      `${"9".repeat(40)}s`,
    ]) {
      assert.throws(() => parseDuration(bad), RangeError, bad);
      assert.equal(tryParseDuration(bad), undefined);
    }
  });

  test("formatDuration", () => {
    assert.equal(formatDuration(0), "0s");
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(1500), "1.5s");
    assert.equal(formatDuration(90_000), "1m30s");
    assert.equal(formatDuration(3_600_000), "1h");
    assert.throws(() => formatDuration(-1), RangeError);
  });

  test("formatDuration and parseDuration round-trip", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 * 3_600_000 }),
        (ms) => parseDuration(formatDuration(ms)) === ms,
      ),
    );
  });
});

describe("addresses", () => {
  test("isIP agrees with the API server's CEL isIP()", () => {
    const cases: [string, boolean][] = [
      ["10.0.0.1", true],
      ["255.255.255.255", true],
      ["10.0.0.256", false],
      ["10.0.0.01", false],
      ["1.2.3", false],
      ["::1", true],
      ["2001:db8::1", true],
      ["1:2:3:4:5:6:7:8", true],
      ["64:ff9b::1.2.3.4", true],
      ["::1.2.3.4", true],
      ["::ffff:1.2.3.4", false],
      ["::ffff:a00:1", false],
      ["fe80::1%eth0", false],
      [":::1", false],
      ["db.example.com", false],
    ];
    for (const [s, want] of cases) assert.equal(isIP(s), want, s);
  });

  test("unspecified addresses and address kinds", () => {
    assert.ok(isUnspecifiedIP("0.0.0.0"));
    assert.ok(isUnspecifiedIP("::"));
    assert.ok(isUnspecifiedIP("0:0:0:0:0:0:0:0"));
    assert.ok(!isUnspecifiedIP("::1"));
    assert.equal(addressKind("10.0.0.1"), "IPv4");
    assert.equal(addressKind("fd00::1"), "IPv6");
    assert.equal(addressKind("db-1.example.com"), "DNS");
    assert.equal(addressKind("localhost"), "DNS");
    assert.equal(addressKind("10.0.0"), undefined);
    assert.equal(addressKind("DB.example.com"), undefined);
  });

  test("random IPv4 addresses are accepted as instance addresses", () => {
    fc.assert(
      fc.property(
        fc.ipV4(),
        (ip) => ip === "0.0.0.0" || validateServiceInstance(instance({ address: ip })).ok,
      ),
    );
  });
});

describe("defaults", () => {
  test("a minimal instance gets the same defaults as from the API server", () => {
    const r = validateServiceInstance(instance({}));
    assert.ok(r.ok);
    assert.equal(r.value.spec.weight, 100);
    assert.equal(r.value.spec.drain, false);
    assert.equal(r.value.spec.ports[0]!.protocol, "TCP");
    assert.equal(r.value.spec.healthCheck, undefined);
    assert.equal(r.value.spec.tags, undefined);
  });

  test("the default health check, load balancing and publish settings", () => {
    assert.deepEqual(DEFAULT_HEALTH_CHECK, {
      probes: [{ type: "tcp", tcp: {} }],
      combine: "all",
      interval: "10s",
      timeout: "1s",
      initialDelay: "0s",
      failureThreshold: 3,
      successThreshold: 1,
      jitter: 10,
    });
    assert.deepEqual(DEFAULT_LOAD_BALANCING, { strategy: "RoundRobin" });
    assert.deepEqual(DEFAULT_PUBLISH, {
      service: true,
      endpointSlices: true,
      configMap: { enabled: true },
      maxEndpointsPerSlice: 100,
      panicThreshold: 0,
      degradedWeightPercent: 50,
      headless: false,
    });
  });

  test("probe members are filled in, with their defaults", () => {
    const r = validateHealthCheck({
      probes: [{ type: "http" }, { type: "grpc", name: "g" }, { type: "heartbeat" }],
      combine: "any",
    });
    assert.ok(r.ok, JSON.stringify(r));
    const [http, grpc, hb] = r.value.probes;
    assert.deepEqual(http, {
      type: "http",
      http: {
        path: "/",
        scheme: "HTTP",
        method: "GET",
        expectedStatuses: [{ min: 200, max: 399 }],
        followRedirects: false,
      },
    });
    assert.deepEqual(grpc, { type: "grpc", name: "g", grpc: { service: "" } });
    assert.deepEqual(hb, { type: "heartbeat", heartbeat: {} });
  });

  test("consistent hash defaults to the source IP and a ring", () => {
    const r = validateDiscoveryPolicySpec({
      service: "web",
      loadBalancing: { strategy: "ConsistentHash", consistentHash: {} },
    });
    assert.ok(r.ok);
    assert.deepEqual(r.value.loadBalancing?.consistentHash, {
      key: { source: "SourceIP" },
      algorithm: "Ring",
    });
  });
});

describe("probes", () => {
  test("the union narrows on type", () => {
    const r = validateHealthCheck({
      probes: [
        { type: "http", http: { port: "admin", path: "/healthz" } },
        { type: "tcp", tcp: { port: 5432 } },
        { type: "heartbeat" },
      ],
    });
    assert.ok(r.ok);
    const described = r.value.probes.map((p) => {
      switch (p.type) {
        case "http":
          return `http ${p.http.path}`;
        case "tcp":
          return `tcp ${p.tcp.port}`;
        case "heartbeat":
          return `heartbeat ${p.heartbeat.leaseName ?? "<instance name>"}`;
        default:
          return p.type;
      }
    });
    assert.deepEqual(described, ["http /healthz", "tcp 5432", "heartbeat <instance name>"]);
    assert.deepEqual(r.value.probes.map(probePort), ["admin", 5432, undefined]);
  });

  test("resolveProbePort: numbers as is, names looked up, none means the first port", () => {
    const ports = [
      { name: "http", port: 8080 },
      { name: "admin", port: 9090 },
    ];
    assert.equal(resolveProbePort(1234, ports), 1234);
    assert.equal(resolveProbePort("admin", ports), 9090);
    assert.equal(resolveProbePort(undefined, ports), 8080);
    assert.equal(resolveProbePort("metrics", ports), undefined);
  });

  test("an instance override may name its own ports, or give numbers", () => {
    const ok = validateServiceInstance(
      instance({
        ports: [
          { name: "http", port: 80 },
          { name: "admin", port: 9000 },
        ],
        healthCheck: {
          probes: [
            { type: "http", http: { port: "admin" } },
            { type: "tcp", tcp: { port: 22 } },
          ],
        },
      }),
    );
    assert.ok(ok.ok, JSON.stringify(ok));
    const bad = validateServiceInstanceSpec({
      service: "web",
      address: "10.0.0.1",
      ports: [{ name: "http", port: 80 }],
      healthCheck: { probes: [{ type: "tcp" }, { type: "grpc", grpc: { port: "grpc" } }] },
    });
    assert.ok(!bad.ok);
    assert.deepEqual(
      bad.errors.map((e) => e.path),
      ["spec.healthCheck.probes[1].grpc.port"],
    );
  });

  test("regexes: RE2-compatible JavaScript only", () => {
    assert.ok(isValidRegex("^ok\\s+(ready|serving)$"));
    assert.ok(!isValidRegex("("));
    assert.ok(!isValidRegex("a(?=b)"));
    assert.ok(!isValidRegex("a(?<!b)"));
    assert.ok(!isValidRegex("(a)\\1"));
  });
});

describe("validation results", () => {
  test("errors name fields the Kubernetes way, one per unknown key", () => {
    const r = validateServiceInstance({ ...instance({ colour: "blue", size: 3 }), extra: true });
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map((e) => e.path).sort(), ["extra", "spec.colour", "spec.size"]);
    assert.ok(r.errors.every((e) => e.message === "unknown field"));
  });

  test("several errors are reported at once", () => {
    const r = validateServiceInstance(
      instance({ weight: -1, zone: "a b", ports: [{ name: "HTTP", port: 0 }] }),
    );
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map((e) => e.path).sort(), [
      "spec.ports[0].name",
      "spec.ports[0].port",
      "spec.weight",
      "spec.zone",
    ]);
  });

  test("formatPath", () => {
    assert.equal(formatPath(["spec", "ports", 1, "name"]), "spec.ports[1].name");
    assert.equal(formatPath(["spec", "metadata", "example.com/owner"]), 'spec.metadata["example.com/owner"]');
    assert.equal(
      formatPath(["probes", 0], "defaultPolicy.healthCheck"),
      "defaultPolicy.healthCheck.probes[0]",
    );
    assert.equal(formatPath([]), "");
  });

  test("a spec validated alone reports paths under the given base", () => {
    const r = validateDiscoveryPolicySpec(
      { service: "web", healthCheck: { interval: "5s", timeout: "5s" } },
      "defaultPolicy",
    );
    assert.ok(!r.ok);
    assert.deepEqual(r.errors, [
      {
        path: "defaultPolicy.healthCheck.timeout",
        message: "timeout must be less than interval (timeout defaults to 1s, interval to 10s)",
      },
    ]);
  });

  test("validateRosterObject dispatches on kind", () => {
    const dp = validateRosterObject({
      apiVersion: API_VERSION,
      kind: "DiscoveryPolicy",
      metadata: { name: "web" },
      spec: { service: "web" },
    });
    assert.ok(dp.ok && dp.value.kind === "DiscoveryPolicy");
    const other = validateRosterObject({ apiVersion: "v1", kind: "Service" });
    assert.deepEqual(other, {
      ok: false,
      errors: [{ path: "kind", message: "must be ServiceInstance or DiscoveryPolicy" }],
    });
    const wrongVersion = validateDiscoveryPolicy({
      apiVersion: "roster.dev/v1",
      kind: "DiscoveryPolicy",
      metadata: {},
      spec: { service: "web" },
    });
    assert.ok(!wrongVersion.ok && wrongVersion.errors[0]!.path === "apiVersion");
  });

  test("status is validated too", () => {
    const r = validateServiceInstance({
      ...instance({}),
      status: {
        healthy: true,
        portSummary: "80/TCP",
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "Healthy",
            message: "",
            lastTransitionTime: "2025-01-02T03:04:05Z",
          },
          {
            type: "Ready",
            status: "False",
            reason: "not camel",
            message: "",
            lastTransitionTime: "yesterday",
          },
        ],
      },
    });
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map((e) => e.path).sort(), [
      "status.conditions[1].lastTransitionTime",
      "status.conditions[1].reason",
      "status.conditions[1].type", // a second Ready condition
    ]);
  });
});

describe("helpers", () => {
  test("resource coordinates", () => {
    assert.equal(ServiceInstanceResource.plural, "serviceinstances");
    assert.equal(DiscoveryPolicyResource.plural, "discoverypolicies");
    assert.equal(API_VERSION, "roster.dev/v1alpha1");
  });

  test("configMapName and portSummary", () => {
    assert.equal(configMapName("web"), "web-roster");
    assert.equal(configMapName("web", { configMap: { enabled: true, name: "custom" } }), "custom");
    assert.equal(
      portSummary([
        { port: 80, protocol: "TCP" },
        { port: 53, protocol: "UDP" },
      ]),
      "80/TCP,53/UDP",
    );
  });

  test("fieldPathSegments", () => {
    assert.deepEqual(fieldPathSegments(".healthCheck.probes"), ["healthCheck", "probes"]);
    assert.deepEqual(fieldPathSegments(".metadata['a.b'].c"), ["metadata", "a.b", "c"]);
    assert.deepEqual(fieldPathSegments(undefined), []);
    assert.throws(() => fieldPathSegments("timeout"));
  });
});

describe("metadata size as published", () => {
  test("the counted size is what the published document writes, for every value the rules accept", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (v) => {
        const accepted = Metadata.safeParse({ k: v }).success;
        // Control characters (whose JSON escapes cost more than counted) are refused.
        if ([...v].some((c) => c.charCodeAt(0) < 0x20)) assert.equal(accepted, false);
        if (!accepted) return;
        const written = Buffer.byteLength(canonicalJson({ k: v }), "utf8") - '{"k":""}'.length;
        assert.equal(writtenSize(v), written);
      }),
      { numRuns: 2000 },
    );
  });

  test("the total counts UTF-8 bytes and escapes; control characters are refused naming the key", () => {
    assert.equal(writtenSize("é"), 2);
    assert.equal(writtenSize("😀"), 4);
    assert.equal(writtenSize('"\\'), 4);
    assert.equal(Metadata.safeParse({ a: "😀".repeat(1023) }).success, true);
    assert.equal(Metadata.safeParse({ a: "😀".repeat(1024) }).success, false);
    const r = validateServiceInstance(instance({ metadata: { ok: "fine", note: "two\nlines" } }));
    assert.equal(r.ok, false);
    assert.ok(
      !r.ok && r.errors.some((e) => e.path === "spec.metadata.note" && /control characters/.test(e.message)),
      JSON.stringify(!r.ok && r.errors),
    );
  });
});
