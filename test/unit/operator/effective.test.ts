import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DefaultPolicy } from "../../../src/config/schema.ts";
import {
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

  it("an instance override replaces the health check as a whole", () => {
    const p = policy("web", { healthCheck: { probes: [{ type: "http" }], interval: "5s" } });
    const si = instance({ healthCheck: { probes: [{ type: "tcp" }] } });
    const e = effectiveSettings(p, defaults, si);
    assert.equal(e.checkSource, "Instance");
    assert.equal(e.healthCheck, si.spec.healthCheck);
    assert.equal(e.healthCheck.interval, "10s", "nothing merged from the policy's check");
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
    const r = instanceTarget(
      si,
      check({
        probes: [{ type: "http", http: { port: "admin", path: "/healthz" } }, { type: "tcp" }],
        combine: "any",
        interval: "2s",
        timeout: "500ms",
        initialDelay: "1s",
        failureThreshold: 4,
        successThreshold: 2,
        jitter: 25,
        flapDamping: { maxTransitions: 3, window: "1m" },
      }),
      noSecrets,
    );
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
      bodyMatch: undefined,
      bodyRegex: undefined,
      maxBodyBytes: undefined,
      followRedirects: false,
      tls: undefined,
    });
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
    assert.deepEqual(asked, ["probe/token"]);

    const missing = instanceTarget(instance(), hc, noSecrets);
    assert.ok(!missing.ok);
    assert.equal(missing.reason, "SecretNotFound");
    assert.equal(missing.message, "header Authorization: key token of Secret probe not found");
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
