import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Publish } from "../../../src/api/index.ts";
import { DefaultPolicy } from "../../../src/config/schema.ts";
import {
  effectiveHealthCheckStatus,
  effectivePublish,
  effectiveSettings,
  governingPolicy,
  instanceTarget,
  rankPolicies,
  type SecretLookup,
  serviceKey,
} from "../../../src/operator/effective.ts";
import { check, instance, policy } from "./fixtures.ts";

const noSecrets: SecretLookup = () => undefined;

describe("rankPolicies", () => {
  it("puts the oldest first, then by name, without mutating the input", () => {
    const input = [
      policy("b", {}, "2030-01-02T00:00:00Z"),
      policy("c", {}, "2030-01-01T00:00:00Z"),
      policy("a", {}, "2030-01-02T00:00:00Z"),
    ];
    assert.deepEqual(
      rankPolicies(input).map((p) => p.metadata.name),
      ["c", "a", "b"],
    );
    assert.deepEqual(
      input.map((p) => p.metadata.name),
      ["b", "c", "a"],
    );
    assert.deepEqual(rankPolicies([]), []);
  });
});

describe("governingPolicy", () => {
  it("re-validates the governing policy; an invalid one is not used, its errors say why", () => {
    const good = policy("a", { healthCheck: { probes: [{ type: "http", http: { path: "/ready" } }] } });
    const bad = policy("old", {}, "2029-01-01T00:00:00Z");
    // What an older CRD could have let into the cache: a probe aimed by a malformed Secret name.
    (bad.spec as unknown as { healthCheck: unknown }).healthCheck = {
      probes: [
        {
          type: "http",
          http: { headers: [{ name: "X", valueFrom: { secretKeyRef: { name: "../../x", key: "k" } } }] },
        },
      ],
    };
    const g = governingPolicy([good, bad]);
    assert.deepEqual(
      g.ranked.map((p) => p.metadata.name),
      ["old", "a"],
    );
    assert.equal(g.policy, undefined, "an invalid governing policy is not used");
    assert.ok(
      g.invalid?.some((e) => e.path.includes("secretKeyRef.name")),
      JSON.stringify(g.invalid),
    );
    // The operator defaults apply, as for a service without a policy.
    assert.equal(effectiveSettings(g.policy, DefaultPolicy.parse({})).checkSource, "Default");

    const ok = governingPolicy([good]);
    assert.equal(ok.invalid, undefined);
    assert.equal(ok.policy?.metadata.name, "a");
    assert.deepEqual(governingPolicy([]), { ranked: [] });
  });
});

describe("effectiveSettings", () => {
  const defaults = DefaultPolicy.parse({});

  it("without a policy: the operator default", () => {
    const e = effectiveSettings(undefined, defaults, instance());
    assert.equal(e.checkSource, "Default");
    assert.equal(e.healthCheck, defaults.healthCheck);
    assert.deepEqual(e.loadBalancing, { strategy: "RoundRobin" });
    assert.equal(e.publish, defaults.publish);
    assert.equal(e.deregisterAfterMs, undefined);
    assert.equal(e.policy, undefined);
  });

  it("a policy's sections replace the default's, section by section", () => {
    const p = policy("web", {
      healthCheck: { probes: [{ type: "http", http: { path: "/ready" } }] },
      publish: { panicThreshold: 30 },
      deregisterAfter: "90m",
    });
    const e = effectiveSettings(p, defaults, instance());
    assert.equal(e.checkSource, "Policy");
    assert.equal(e.healthCheck, p.spec.healthCheck);
    assert.equal(e.publish.panicThreshold, 30);
    assert.deepEqual(e.loadBalancing, defaults.loadBalancing, "absent section: the default");
    assert.equal(e.deregisterAfterMs, 90 * 60_000);
    assert.equal(e.policy, p);
  });

  it("an instance override merges over the policy's check field by field", () => {
    const p = policy("web", {
      healthCheck: {
        probes: [
          { type: "http", http: { path: "/ready", port: "admin", headers: [{ name: "X-A", value: "1" }] } },
        ],
        interval: "5s",
        timeout: "2s",
        failureThreshold: 5,
        flapDamping: { maxTransitions: 3, window: "10m" },
      },
    });
    // Point the probe at another host: nothing else needs repeating.
    const si = instance({
      healthCheck: { probes: [{ type: "http", http: { host: "10.9.9.9" } }], timeout: "1s" },
    });
    const e = effectiveSettings(p, defaults, si);
    assert.equal(e.checkSource, "InstanceOverPolicy");
    assert.equal(e.healthCheckError, undefined);
    assert.deepEqual(e.healthCheck, {
      ...p.spec.healthCheck!,
      timeout: "1s",
      probes: [
        {
          type: "http",
          http: { ...(p.spec.healthCheck!.probes[0] as { http: object }).http, host: "10.9.9.9" },
        },
      ],
    });
    assert.equal(e.healthCheck.interval, "5s", "the policy's interval");
    assert.equal(e.healthCheck.failureThreshold, 5, "the policy's threshold");
    assert.deepEqual(e.healthCheck.flapDamping, { maxTransitions: 3, window: "10m" }, "the policy's damping");
  });

  it("probes merge by type (and name); unmatched policy probes stay, unmatched override probes are added", () => {
    const p = policy("web", {
      healthCheck: {
        probes: [
          { type: "http", name: "live", http: { path: "/live" } },
          { type: "http", name: "ready", http: { path: "/ready" } },
          { type: "tcp", tcp: { port: "db" } },
        ],
      },
    });
    const si = instance({
      ports: [
        { name: "http", port: 80 },
        { name: "db", port: 5432 },
      ],
      healthCheck: {
        probes: [
          { type: "http", name: "ready", http: { path: "/readyz" } },
          { type: "tcp", tcp: { host: "10.0.0.7" } },
        ],
        flapDamping: { window: "1m" },
      },
    });
    const hc = effectiveSettings(p, defaults, si).healthCheck;
    assert.deepEqual(
      hc.probes.map((x) => [
        x.type,
        x.name,
        x.type === "http" ? x.http.path : x.type === "tcp" ? x.tcp : undefined,
      ]),
      [
        ["http", "live", "/live"],
        ["http", "ready", "/readyz"],
        ["tcp", undefined, { port: "db", host: "10.0.0.7" }],
      ],
    );
    assert.deepEqual(
      hc.flapDamping,
      { maxTransitions: 4, window: "1m" },
      "damping turned on, defaults fill the rest",
    );
    const added = effectiveSettings(
      p,
      defaults,
      instance({ healthCheck: { probes: [{ type: "grpc" }] } }),
    ).healthCheck;
    assert.deepEqual(
      added.probes.map((x) => x.type),
      ["http", "http", "tcp", "grpc"],
    );
  });

  it("over the operator default: scalars merge, and probes the instance names replace the default's", () => {
    const e = effectiveSettings(undefined, defaults, instance({ healthCheck: { interval: "30s" } }));
    assert.equal(e.checkSource, "InstanceOverDefault");
    assert.deepEqual(e.healthCheck, { ...defaults.healthCheck, interval: "30s" });
    const named = effectiveSettings(
      policy("web"), // a policy without a health check: the default's
      defaults,
      instance({ healthCheck: { probes: [{ type: "http", http: { host: "127.0.0.9" } }], interval: "2s" } }),
    );
    assert.equal(named.checkSource, "InstanceOverDefault");
    assert.deepEqual(
      named.healthCheck.probes.map((p) => p.type),
      ["http"],
      "not the default's tcp probe next to it",
    );
    assert.equal(named.healthCheck.interval, "2s");
    assert.equal(named.healthCheck.failureThreshold, defaults.healthCheck.failureThreshold);
  });

  it("an override that sets every field (as objects stored before merging do) replaces the check as a whole", () => {
    const p = policy("web", {
      healthCheck: {
        probes: [{ type: "http" }],
        interval: "5s",
        flapDamping: { maxTransitions: 2, window: "1m" },
      },
    });
    // What the API server stored for `healthCheck: {probes: [{type: tcp}]}` when its CRD had defaults.
    const stored = {
      probes: [{ type: "tcp" as const, tcp: {} }],
      combine: "all" as const,
      interval: "10s",
      timeout: "1s",
      initialDelay: "0s",
      failureThreshold: 3,
      successThreshold: 1,
      jitter: 10,
    };
    const e = effectiveSettings(p, defaults, instance({ healthCheck: stored }));
    assert.equal(e.checkSource, "Instance");
    assert.deepEqual(e.healthCheck, { ...stored, probes: [{ type: "tcp", tcp: {} }] });
    assert.equal(e.healthCheck.flapDamping, undefined, "no damping from the policy");
  });

  it("a merge that breaks a rule neither side breaks is an error, not a check", () => {
    const p = policy("web", { healthCheck: { interval: "2s", timeout: "1s" } });
    const e = effectiveSettings(p, defaults, instance({ healthCheck: { timeout: "3s" } }));
    assert.match(e.healthCheckError ?? "", /healthCheck\.timeout: timeout must be less than interval/);
    assert.equal(e.healthCheck, p.spec.healthCheck, "the base check, unused (the instance is blocked)");
  });

  it("status.effectiveHealthCheck: one bounded line per probe, the source and the policy", () => {
    const p = policy("web", {
      healthCheck: { probes: [{ type: "http", http: { path: "/ready", port: "http" } }] },
    });
    const e = effectiveSettings(
      p,
      defaults,
      instance({ healthCheck: { probes: [{ type: "http", http: { host: "10.9.9.9" } }] } }),
    );
    assert.deepEqual(effectiveHealthCheckStatus(e), {
      source: "InstanceOverPolicy",
      policy: "web",
      probes: ["http GET http://10.9.9.9:http/ready (200-399)"],
      combine: "all",
      interval: "10s",
      timeout: "1s",
      initialDelay: "0s",
      failureThreshold: 3,
      successThreshold: 1,
      jitter: 10,
    });
  });

  it("deregisterAfter falls back to the default's", () => {
    const e = effectiveSettings(policy("web"), { ...defaults, deregisterAfter: "2h" });
    assert.equal(e.deregisterAfterMs, 2 * 3_600_000);
  });

  it("serviceKey", () => {
    assert.equal(serviceKey("shop", "web"), "shop/web");
  });
});

describe("instanceTarget", () => {
  it("maps the health check to the engine's target at the instance address", () => {
    const si = instance({
      ports: [
        { name: "http", port: 8080 },
        { name: "admin", port: 9000 },
      ],
    });
    const hc = check({
      probes: [{ type: "http", http: { port: "admin", path: "/healthz" } }, { type: "tcp" }],
      combine: "any",
      interval: "2s",
      timeout: "500ms",
      initialDelay: "1s",
      failureThreshold: 4,
      successThreshold: 2,
      jitter: 25,
      flapDamping: { maxTransitions: 3, window: "1m" },
    });
    const r = instanceTarget(si, hc, noSecrets);
    assert.ok(r.ok);
    assert.equal(r.hostOverride, undefined);
    assert.equal(r.target.id, "shop/web-1");
    assert.equal(r.target.host, "192.0.2.1");
    assert.deepEqual(r.target.ports, { http: 8080, admin: 9000 });
    const c = r.target.check;
    assert.deepEqual(
      [
        c.combine,
        c.intervalMs,
        c.timeoutMs,
        c.initialDelayMs,
        c.failureThreshold,
        c.successThreshold,
        c.jitterMs,
      ],
      ["any", 2000, 500, 1000, 4, 2, 500],
    );
    assert.deepEqual(c.flapDamping, { maxTransitions: 3, windowMs: 60_000 });
    assert.deepEqual(c.probes[0], {
      type: "http",
      port: 9000,
      path: "/healthz",
      scheme: "HTTP",
      method: "GET",
      headers: {},
      expectedStatuses: [{ from: 200, to: 399 }],
      followRedirects: false,
    });
    // Parts most targets have in common are one shared, frozen object.
    const again = instanceTarget({ ...si, metadata: { ...si.metadata, name: "web-2" } }, hc, noSecrets);
    assert.ok(again.ok);
    assert.equal(again.target.ports, r.target.ports);
    const [p0, p1] = [r.target.check.probes[0], again.target.check.probes[0]];
    assert.ok(p0?.type === "http" && p1?.type === "http");
    assert.equal(p1.expectedStatuses, p0.expectedStatuses);
    assert.ok(Object.isFrozen(r.target.ports));
    assert.deepEqual(c.probes[1], { type: "tcp", port: 8080 }, "no port: the first one");
  });

  it("a host override probes another host; the same host in every probe is fine", () => {
    const r = instanceTarget(
      instance(),
      check({
        probes: [
          { type: "http", http: { host: "127.0.0.5", path: "/healthz" } },
          { type: "tcp", tcp: { host: "127.0.0.5" } },
          { type: "heartbeat" },
        ],
      }),
      noSecrets,
    );
    assert.ok(r.ok);
    assert.equal(r.hostOverride, "127.0.0.5");
    assert.equal(r.target.host, "127.0.0.5");
    assert.deepEqual(r.target.check.probes[2], {
      type: "heartbeat",
      lease: { namespace: "shop", name: "web-1" },
    });
  });

  it("probes naming different hosts are refused", () => {
    const r = instanceTarget(
      instance(),
      check({
        probes: [
          { type: "http", http: { host: "127.0.0.5" } },
          { type: "grpc", grpc: { host: "sidecar.local" } },
        ],
      }),
      noSecrets,
    );
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.reason === "InvalidHealthCheck");
    assert.match(!r.ok ? r.message : "", /127\.0\.0\.5, sidecar\.local/);
  });

  it("header values come from the Secret lookup", () => {
    const hc = check({
      probes: [
        {
          type: "http",
          http: {
            headers: [
              { name: "Authorization", valueFrom: { secretKeyRef: { name: "probe", key: "token" } } },
              { name: "X-Env", value: "prod" },
            ],
          },
        },
      ],
    });
    const asked: string[] = [];
    const lookup: SecretLookup = (name, key) => {
      asked.push(`${name}/${key}`);
      return name === "probe" && key === "token" ? "Bearer t" : undefined;
    };
    const r = instanceTarget(instance(), hc, lookup);
    assert.ok(r.ok);
    const probe = r.target.check.probes[0]!;
    assert.ok(probe.type === "http");
    assert.deepEqual(probe.headers, { Authorization: "Bearer t", "X-Env": "prod" });
    // Named so that a redirect to another origin does not carry them.
    assert.deepEqual(probe.secretHeaders, ["Authorization"]);
    assert.deepEqual(asked, ["probe/token"]);

    const missing = instanceTarget(instance(), hc, noSecrets);
    assert.ok(!missing.ok);
    assert.equal(missing.reason, "SecretNotFound");
    assert.equal(missing.message, "header Authorization: key token of Secret probe not found");
  });

  it("a CA bundle comes from a Secret or a ConfigMap key; a missing one is a reason naming it", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const lookup: SecretLookup = (name, key, kind) =>
      key === "ca.crt" &&
      ((kind === "ConfigMap" && name === "ca-cm") || (kind !== "ConfigMap" && name === "ca-s"))
        ? pem
        : undefined;
    const https = (caBundleFrom: object) =>
      check({
        probes: [{ type: "http", http: { scheme: "HTTPS", tls: { caBundleFrom, expiryWarning: "336h" } } }],
      });
    for (const from of [
      { secretKeyRef: { name: "ca-s", key: "ca.crt" } },
      { configMapKeyRef: { name: "ca-cm", key: "ca.crt" } },
    ]) {
      const r = instanceTarget(instance(), https(from), lookup);
      assert.ok(r.ok);
      const probe = r.target.check.probes[0]!;
      assert.ok(probe.type === "http");
      assert.equal(probe.tls?.caBundle, pem);
      assert.equal(probe.tls?.expiryWarningMs, 336 * 3_600_000);
    }
    const grpc = check({
      probes: [
        {
          type: "grpc",
          grpc: { tls: { caBundleFrom: { configMapKeyRef: { name: "nope", key: "ca.crt" } } } },
        },
      ],
    });
    const missing = instanceTarget(instance(), grpc, lookup);
    assert.ok(!missing.ok);
    assert.equal(missing.reason, "ConfigMapNotFound");
    assert.equal(missing.message, "tls.caBundleFrom: key ca.crt of ConfigMap nope not found");
    const mtls = check({
      probes: [{ type: "grpc", grpc: { tls: { clientCertificate: { secretName: "client" } } } }],
    });
    const withCert = instanceTarget(instance(), mtls, (name, key) =>
      name === "client" ? `${key} pem` : undefined,
    );
    assert.ok(withCert.ok);
    const g = withCert.target.check.probes[0]!;
    assert.ok(g.type === "grpc" && typeof g.tls === "object");
    assert.deepEqual(g.tls.clientCert, { cert: "tls.crt pem", key: "tls.key pem" });
    const noKey = instanceTarget(instance(), mtls, (_name, key) => (key === "tls.crt" ? "pem" : undefined));
    assert.ok(!noKey.ok);
    assert.equal(noKey.reason, "SecretNotFound");
    assert.equal(noKey.message, "tls.clientCertificate: key tls.key of Secret client not found");
    const secretMissing = instanceTarget(
      instance(),
      https({ secretKeyRef: { name: "x", key: "ca.crt" } }),
      lookup,
    );
    assert.ok(!secretMissing.ok);
    assert.equal(secretMissing.reason, "SecretNotFound");
  });

  it("postgres and redis passwords come from the Secret lookup; udp payloads are encoded", () => {
    const ref = { secretKeyRef: { name: "db", key: "password" } };
    const hc = check({
      probes: [
        { type: "postgres", postgres: { user: "monitor", passwordFrom: ref, expectRole: "primary" } },
        { type: "redis", redis: { passwordFrom: ref } },
        { type: "udp", udp: { payloadBase64: "AAH/" } },
      ],
    });
    const lookup: SecretLookup = (name, key) => (name === "db" && key === "password" ? "s3cret" : undefined);
    const r = instanceTarget(instance(), hc, lookup);
    assert.ok(r.ok);
    const [pg, redis, udp] = r.target.check.probes;
    assert.deepEqual(
      { ...pg },
      {
        type: "postgres",
        port: 8080,
        database: "postgres",
        user: "monitor",
        password: "s3cret",
        expectRole: "primary",
      },
    );
    assert.deepEqual({ ...redis }, { type: "redis", port: 8080, password: "s3cret" });
    assert.ok(udp?.type === "udp");
    assert.deepEqual([...udp.payload], [0, 1, 255]);

    const missing = instanceTarget(instance(), hc, noSecrets);
    assert.ok(!missing.ok);
    assert.equal(missing.reason, "SecretNotFound");
    assert.equal(missing.message, "postgres password: key password of Secret db not found");
  });

  it("a probe port name the instance lacks is reported", () => {
    const r = instanceTarget(
      instance(),
      check({ probes: [{ type: "tcp", tcp: { port: "metrics" } }] }),
      noSecrets,
    );
    assert.ok(!r.ok);
    assert.equal(r.reason, "InvalidHealthCheck");
    assert.match(r.message, /metrics is not among the instance's ports/);
  });

  it("gRPC TLS, HTTPS options and none probes", () => {
    const r = instanceTarget(
      instance(),
      check({
        probes: [
          {
            type: "http",
            http: {
              scheme: "HTTPS",
              tls: { serverName: "web.example", insecureSkipVerify: true },
              bodyMatch: { substring: "ok" },
            },
          },
          { type: "grpc", grpc: { service: "shop.Web", tls: {} } },
        ],
      }),
      noSecrets,
    );
    assert.ok(r.ok);
    const [http, grpc] = r.target.check.probes;
    assert.ok(http?.type === "http");
    assert.deepEqual(http.tls, { serverName: "web.example", caBundle: undefined, insecureSkipVerify: true });
    assert.equal(http.bodyMatch, "ok");
    assert.equal(http.maxBodyBytes, 4096);
    assert.deepEqual(grpc, {
      type: "grpc",
      port: 8080,
      service: "shop.Web",
      tls: { serverName: undefined, caBundle: undefined, insecureSkipVerify: false },
    });
    const none = instanceTarget(instance(), check({ probes: [{ type: "none" }] }), noSecrets);
    assert.ok(none.ok);
    assert.deepEqual(none.target.check.probes, [{ type: "none" }]);
  });
});

describe("effectivePublish", () => {
  it("translates the deprecated zoneHints into trafficDistribution PreferClose; an explicit value wins", () => {
    const of = (publish: object) => effectivePublish(Publish.parse(publish));
    assert.equal(of({}).trafficDistribution, undefined);
    assert.equal(of({ zoneHints: false }).trafficDistribution, undefined);
    assert.equal(of({ zoneHints: true }).trafficDistribution, "PreferClose");
    assert.equal(
      of({ zoneHints: true, trafficDistribution: "PreferSameZone" }).trafficDistribution,
      "PreferSameZone",
    );
    assert.equal(of({ trafficDistribution: "PreferSameZone" }).trafficDistribution, "PreferSameZone");
    assert.ok(!("zoneHints" in of({ zoneHints: true })), "the engine never sees zoneHints");
  });

  it("applies to the operator default's publish section too", () => {
    const defaults = DefaultPolicy.parse({ publish: { zoneHints: true } });
    assert.equal(effectiveSettings(undefined, defaults).publish.trafficDistribution, "PreferClose");
  });
});
