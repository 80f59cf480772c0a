// Hostile input: fast-check generates ServiceInstance and DiscoveryPolicy
// objects (mostly near-valid, with invalid, Unicode and oversized values
// mixed in) and sends them to the real API server while the operator runs.
// Each object is either rejected by admission (422/400) with a message that
// names a field, or accepted and then reconciled to a status with a Ready
// condition and a CamelCase reason. The operator never crashes, no key keeps
// failing (reconcile errors stop growing once everything is reconciled), and
// slice writes are never refused by the API server (an invalid EndpointSlice
// would be). FAULTS_SEED=N reproduces a run.
// The generated addresses (192.0.2.N, 2001:db8::N, 169.254.169.254, names)
// are never contacted: the operator's policy allows only loopback, names are
// resolved by a resolver that knows only localhost (no DNS query leaves), and
// the network jail refuses and records any other connection this process
// would open, which the test asserts never happened.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import fc from "fast-check";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { networkJail } from "../support/network-jail.ts";
import { startTestOperator } from "../support/operator.ts";
import { clients } from "../support/roster.ts";
import { api, metricSum, sleep } from "./support.ts";

const COUNT = 100;
const seed = Number(process.env.FAULTS_SEED ?? Date.now() % 1_000_000);

const unicode = fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 });
const oversized = fc.integer({ min: 300, max: 70_000 }).map((n) => "x".repeat(n));
const durationOk = fc.constantFrom("1s", "2s", "10s");

// A near-valid base (Unicode allowed where the API allows free text), then 0-2 hostile mutations.
const validInstance = fc.record({
  service: fc.constantFrom("web", "api", "db"),
  address: fc.oneof(
    fc.integer({ min: 1, max: 254 }).map((n) => `192.0.2.${n}`),
    fc.integer({ min: 1, max: 65535 }).map((n) => `2001:db8::${n.toString(16)}`),
    fc.constantFrom("db.invalid", "xn--bcher-kva.example"),
  ),
  ports: fc.constantFrom(
    [{ name: "http", port: 8080 }],
    [
      { name: "pg", port: 5432 },
      { name: "metrics", port: 9090 },
    ],
  ),
  weight: fc.integer({ min: 0, max: 10_000 }),
  zone: fc.constantFrom("zone-a", "eu-west-1a"),
  tags: fc.array(fc.oneof(fc.stringMatching(/^[a-z]{1,8}$/), unicode), { maxLength: 3 }),
  metadata: fc.dictionary(
    fc.stringMatching(/^[a-z]{1,8}$/),
    fc.oneof(fc.string({ maxLength: 20 }), unicode),
    {
      maxKeys: 3,
    },
  ),
  drain: fc.boolean(),
  healthCheck: fc.constant({ probes: [{ type: "tcp" }], interval: "1s", timeout: "500ms" }),
});
const validPolicy = fc.record({
  service: fc.constantFrom("web", "api", "db"),
  healthCheck: fc.record({
    probes: fc.constant([{ type: "tcp" }]),
    interval: durationOk,
    timeout: fc.constant("500ms"),
  }),
  loadBalancing: fc.record({
    strategy: fc.constantFrom(
      "RoundRobin",
      "WeightedRoundRobin",
      "LeastConnections",
      "Random",
      "ConsistentHash",
    ),
  }),
  publish: fc.record(
    {
      panicThreshold: fc.integer({ min: 0, max: 100 }),
      zoneHints: fc.boolean(),
      trafficDistribution: fc.constantFrom("PreferSameZone", "PreferClose"),
      headless: fc.boolean(),
    },
    { requiredKeys: ["panicThreshold"] },
  ),
});
const instanceMutation = fc.oneof(
  fc.record({
    path: fc.constant("service"),
    value: fc.oneof(unicode, fc.constantFrom("Web", "1web", "web-", "a".repeat(64), "")),
  }),
  fc.record({
    path: fc.constant("address"),
    value: fc.oneof(
      unicode,
      oversized,
      fc.constantFrom(
        "256.1.1.1",
        "10.0.0.1/24",
        " 10.0.0.1",
        "169.254.169.254",
        "fe80::1",
        "::ffff:10.0.0.1",
        "localhost",
        "",
      ),
    ),
  }),
  fc.record({
    path: fc.constant("ports"),
    value: fc.oneof(
      fc.constant([]),
      fc.array(
        fc.record({
          name: fc.oneof(unicode, fc.constantFrom("HTTP", "-x", "a".repeat(16), "ünï")),
          port: fc.integer({ min: -1, max: 70_000 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      fc.constant([
        { name: "http", port: 80 },
        { name: "http", port: 81 },
      ]),
      fc.constant([{ name: "http", port: 80, protocol: "ICMP" }]),
      fc.constant([{ name: "http", port: 80, appProtocol: "x".repeat(300) }]),
    ),
  }),
  fc.record({ path: fc.constant("weight"), value: fc.constantFrom(-1, 10_001, 2 ** 40, 1.5, "100") }),
  fc.record({ path: fc.constant("zone"), value: fc.oneof(unicode, oversized) }),
  fc.record({
    path: fc.constant("tags"),
    value: fc.array(fc.oneof(oversized, unicode), { minLength: 1, maxLength: 300 }),
  }),
  fc.record({
    path: fc.constant("metadata"),
    value: fc.oneof(
      fc.dictionary(unicode, fc.string(), { minKeys: 1, maxKeys: 3 }),
      oversized.map((v) => ({ big: v })),
      fc.constant(Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, "v".repeat(100)]))),
    ),
  }),
  fc.record({
    path: fc.constant("healthCheck"),
    value: fc.record(
      {
        probes: fc.array(
          fc.oneof(
            fc.record({ type: fc.constantFrom("grpc", "heartbeat", "none", "icmp", "http") }),
            fc.record({
              type: fc.constant("http"),
              http: fc.record({
                path: fc.oneof(fc.constant("/healthz"), unicode, oversized, fc.constant("no-slash")),
                port: fc.oneof(fc.constantFrom("http", "nope"), fc.integer({ min: -1, max: 70_000 })),
                headers: fc.array(
                  fc.record({
                    name: fc.oneof(fc.constant("X-A"), unicode),
                    value: fc.oneof(fc.string(), oversized),
                  }),
                  { maxLength: 2 },
                ),
              }),
            }),
            fc.record({
              type: fc.constant("http"),
              http: fc.record({
                bodyMatch: fc.record({ regex: fc.constantFrom("^ok$", "(a+)+$", "(?<=x)y", "[", "\\p{L}+") }),
              }),
            }),
          ),
          { maxLength: 3 },
        ),
        combine: fc.constantFrom("all", "any", "most"),
        interval: fc.constantFrom("1s", "500ms", "0s", "1h", "5", "-1s", "10x", ""),
        timeout: fc.constantFrom("1s", "500ms", "2s", "0s", "zzz"),
        failureThreshold: fc.integer({ min: -1, max: 200 }),
        jitter: fc.constantFrom(0, 0.5, 1, 2, -0.1),
      },
      { requiredKeys: [] },
    ),
  }),
);
const policyMutation = fc.oneof(
  fc.record({
    path: fc.constant("service"),
    value: fc.oneof(unicode, fc.constantFrom("Web", "a".repeat(64), "")),
  }),
  fc.record({
    path: fc.constant("healthCheck"),
    value: fc.record({
      interval: fc.constantFrom("1s", "0s", "1x"),
      timeout: fc.constantFrom("2s", "10s", "-1s"),
      probes: fc.constant([{ type: "tcp" }]),
    }),
  }),
  fc.record({
    path: fc.constant("loadBalancing"),
    value: fc.record(
      {
        strategy: fc.constantFrom("ConsistentHash", "Fastest", "RoundRobin"),
        consistentHash: fc.record(
          {
            key: fc.record(
              {
                source: fc.constantFrom("Header", "Cookie", "SourceIP", "Moon"),
                name: fc.oneof(fc.constant("x-user"), unicode),
              },
              { requiredKeys: ["source"] },
            ),
            algorithm: fc.constantFrom("Ring", "Maglev", "Jump"),
            tableSize: fc.constantFrom(65537, 100, 0, 131071, 7),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ["strategy"] },
    ),
  }),
  fc.record({
    path: fc.constant("publish"),
    value: fc.record(
      {
        endpointSlices: fc.boolean(),
        configMap: fc.record(
          { enabled: fc.boolean(), name: fc.oneof(fc.constant("custom-cm"), unicode) },
          { requiredKeys: [] },
        ),
        maxEndpointsPerSlice: fc.integer({ min: -1, max: 2000 }),
        panicThreshold: fc.integer({ min: -1, max: 101 }),
      },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    path: fc.constant("deregisterAfter"),
    value: fc.constantFrom("1m", "72h", "30s", "9000h", "soon"),
  }),
);
const mutate = ([base, mutations]: [Record<string, unknown>, { path: string; value: unknown }[]]) => {
  const spec: Record<string, unknown> = { ...base };
  for (const m of mutations) spec[m.path] = m.value;
  return spec;
};
const objectName = fc.oneof(
  { weight: 8, arbitrary: fc.constant("") }, // replaced by a unique valid name
  { weight: 1, arbitrary: unicode },
  { weight: 1, arbitrary: fc.constantFrom("UPPER", "a".repeat(254), "dots.are.ok", "-lead") },
);
const object = fc.oneof(
  fc.record({
    kind: fc.constant("ServiceInstance" as const),
    name: objectName,
    spec: fc.tuple(validInstance, fc.array(instanceMutation, { maxLength: 2 })).map(mutate),
  }),
  fc.record({
    kind: fc.constant("DiscoveryPolicy" as const),
    name: objectName,
    spec: fc.tuple(validPolicy, fc.array(policyMutation, { maxLength: 2 })).map(mutate),
  }),
);

function rejection(err: unknown): { code: number; message: string } {
  if (!(err instanceof ApiException)) throw err;
  const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
  try {
    return { code: err.code, message: (JSON.parse(body) as { message?: string }).message ?? body };
  } catch {
    return { code: err.code, message: body };
  }
}

test(`${COUNT} generated objects: rejected naming a field, or reconciled to a condition with a reason`, async (t) => {
  t.diagnostic(`seed ${seed} (FAULTS_SEED=${seed} reproduces)`);
  const ns = await testNamespace(t, "fuzz");
  const { kc } = await testCluster();
  const k = api(kc);
  const jail = networkJail();
  t.after(() => jail.release());
  const operator = await startTestOperator(t, {
    kubeConfig: kc,
    namespaces: [ns],
    settings: { startupHoldMs: 1000 },
    destinations: { allowLoopback: true, allow: ["127.0.0.0/8", "::1/128"] },
    probing: {
      resolver: async (host) => {
        if (host === "localhost") return ["127.0.0.1"];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
      },
    },
  });
  let done: string | undefined;
  void operator.manager.done.then((outcome) => {
    done = String(outcome);
  });
  const { custom } = await clients();
  const samples = fc.sample(object, { numRuns: COUNT, seed });
  const accepted: { kind: string; name: string }[] = [];
  const badRejections: string[] = [];
  for (const [i, o] of samples.entries()) {
    const name = o.name === "" ? `${o.kind === "ServiceInstance" ? "si" : "dp"}-${i}` : o.name;
    const plural = o.kind === "ServiceInstance" ? "serviceinstances" : "discoverypolicies";
    try {
      await custom.createNamespacedCustomObject({
        group: "roster.dev",
        version: "v1alpha1",
        namespace: ns,
        plural,
        body: { apiVersion: "roster.dev/v1alpha1", kind: o.kind, metadata: { name }, spec: o.spec },
      });
      accepted.push({ kind: o.kind, name });
    } catch (err) {
      const { code, message } = rejection(err);
      // 409: two generated policies/instances with the same (invalid-looking but accepted) name.
      if (code === 409) continue;
      if ((code !== 422 && code !== 400) || !/\b(spec|metadata)(\.|\[)\w/.test(message))
        badRejections.push(`#${i} HTTP ${code}: ${message.slice(0, 300)}`);
    }
  }
  t.diagnostic(`${accepted.length} accepted, ${COUNT - accepted.length} rejected`);
  assert.deepEqual(badRejections, [], "every rejection is a 422/400 naming a field");
  assert.ok(
    accepted.length >= 10 && accepted.length <= COUNT - 10,
    `both outcomes occur (${accepted.length})`,
  );

  const unreconciled = async (): Promise<string[]> => {
    const missing: string[] = [];
    const instances = await k.listInstances(ns);
    const policies = (
      (await custom.listNamespacedCustomObject({
        group: "roster.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "discoverypolicies",
      })) as {
        items: {
          metadata: { name: string; generation?: number };
          status?: { observedGeneration?: number; conditions?: { type: string; reason: string }[] };
        }[];
      }
    ).items;
    for (const o of [...instances, ...policies]) {
      const ready = o.status?.conditions?.find((c) => c.type === "Ready");
      if (
        !ready ||
        !/^[A-Z][A-Za-z0-9]*$/.test(ready.reason) ||
        o.status?.observedGeneration !== o.metadata.generation
      )
        missing.push(`${o.metadata.name}: ${JSON.stringify(o.status ?? {}).slice(0, 200)}`);
    }
    return missing;
  };
  await eventually(async () => ((await unreconciled()).length === 0 ? true : undefined), {
    timeoutMs: 45_000,
    intervalMs: 500,
    what: "a Ready condition with a reason on every accepted object",
  }).catch(async (err: unknown) => {
    throw new Error(`${err}\n${(await unreconciled()).join("\n")}`);
  });

  // Nothing keeps failing: reconcile errors stop growing once everything is reconciled.
  const errorsAt = await metricSum(operator, "controller_runtime_reconcile_errors_total");
  await sleep(5000);
  const errorsAfter = await metricSum(operator, "controller_runtime_reconcile_errors_total");
  t.diagnostic(`reconcile errors: ${errorsAt} when reconciled, ${errorsAfter} 5 s later`);
  assert.equal(errorsAfter, errorsAt, "no key keeps failing");
  // A slice or ConfigMap the API server refused would be a publisher error.
  const publisherErrors = await metricSum(operator, "controller_runtime_reconcile_errors_total", {
    controller: "service-publisher",
  });
  assert.equal(publisherErrors, 0, "no published object was ever refused by the API server");
  assert.equal(done, undefined, "the operator is still running");
  assert.deepEqual(jail.blocked, [], "no connection was ever attempted off loopback");
});
