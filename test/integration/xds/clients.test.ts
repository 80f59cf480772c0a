// Real xDS clients nobody here wrote — grpc-go (xds-client/,
// bin/roster-xds-client) and @grpc/grpc-js-xds — dial xds:///echo.<ns>
// through the operator's xDS server and send RPCs to real grpc-js backends on
// loopback: only healthy ones answer, a failing one and a drained one stop
// receiving, weights show in the distribution, and ring hash keeps a header
// value on one backend.
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import type { ServiceInstanceInput } from "../../../src/api/index.ts";
import type { Operator } from "../../../src/operator/operator.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { type GrpcBackend, grpcBackends } from "../../support/grpc-backends.ts";
import { FAST, INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstance, createPolicy, patchInstanceSpec, patchPolicySpec } from "../../support/roster.ts";
import { type RpcResult, startXdsClient, type XdsClientKind } from "../../support/xds-client.ts";

function echoInstance(
  b: GrpcBackend,
  extra: Partial<ServiceInstanceInput["spec"]> = {},
): ServiceInstanceInput["spec"] {
  return {
    service: "echo",
    address: b.host,
    ports: [{ name: "grpc", port: b.port }],
    healthCheck: { probes: [{ type: "grpc", grpc: { port: "grpc" } }], ...FAST },
    ...extra,
  };
}

/** roster_xds_push_latency_seconds' count and sum now. */
async function pushLatency(operator: Operator): Promise<{ count: number; sum: number }> {
  const metric = await operator.manager.metrics.registry
    .getSingleMetric("roster_xds_push_latency_seconds")!
    .get();
  const value = (suffix: string) =>
    metric.values.find(
      (v) => (v as { metricName?: string }).metricName === `roster_xds_push_latency_seconds_${suffix}`,
    )?.value ?? 0;
  return { count: value("count"), sum: value("sum") };
}

const answered = (r: RpcResult) => Object.keys(r.counts).sort();
const total = (r: RpcResult) => Object.values(r.counts).reduce((a, b) => a + b, 0);

for (const [kind, firstHost] of [
  ["grpc-go", 21],
  ["grpc-js", 31],
] as [XdsClientKind, number][]) {
  test(`${kind} over xDS: health, drain, weights and ring hash follow Roster`, (t) =>
    scenario(t, kind, firstHost));
}

async function scenario(t: TestContext, kind: XdsClientKind, firstHost: number): Promise<void> {
  const ns = await testNamespace(t, kind === "grpc-go" ? "xdsgo" : "xdsjs");
  const backends = await grpcBackends(t, 3, firstHost);
  const [b1, b2, b3] = backends as [GrpcBackend, GrpcBackend, GrpcBackend];
  const operator = await startTestOperator(t, {
    namespaces: [ns],
    xds: { enabled: true, port: 0, bindAddress: "127.0.0.1" },
  });
  const xdsPort = operator.xds!.port()!;
  await createPolicy(ns, "echo", { service: "echo", loadBalancing: { strategy: "RoundRobin" } });
  for (const [i, b] of backends.entries()) await createInstance(ns, `echo-${i + 1}`, echoInstance(b));

  const client = startXdsClient(t, { kind, xdsPort, target: `xds:///echo.${ns}`, nodeId: `test/${ns}` });
  const all = [b1.address, b2.address, b3.address].sort();
  await eventually(
    async () => {
      const r = await client.rpcs(30);
      return answered(r).join() === all.join() && total(r) === 30 ? r : undefined;
    },
    { timeoutMs: 20_000, what: "all three backends answering" },
  );
  // Round robin: 30 RPCs over three ready backends, 10 each.
  assert.deepEqual(Object.values((await client.rpcs(30)).counts), [10, 10, 10]);
  assert.ok(b1.served >= 10 && b2.served >= 10 && b3.served >= 10, "the backends saw the RPCs");

  // A failing backend stops receiving once the probe's verdict is pushed.
  const latencyBefore = await pushLatency(operator);
  const failedAt = Date.now();
  b3.healthy = false;
  await eventually(
    async () => {
      const r = await client.rpcs(20);
      return answered(r).join() === [b1.address, b2.address].sort().join() ? r : undefined;
    },
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS + 5000, what: "echo-3 to stop receiving after failing" },
  );
  const afterFail = await client.rpcs(40);
  assert.equal(afterFail.counts[b3.address], undefined);
  assert.equal(total(afterFail), 40, "no RPC fails: the failing backend is out of the picker");
  // That push was timed from the verdict, which came after the health check
  // began failing: every new observation is within the time since then.
  const latencyAfter = await pushLatency(operator);
  const pushesTimed = latencyAfter.count - latencyBefore.count;
  assert.ok(pushesTimed > 0, "the verdict's push is in roster_xds_push_latency_seconds");
  assert.ok(
    latencyAfter.sum - latencyBefore.sum <= (pushesTimed * (Date.now() - failedAt)) / 1000,
    "timed from the verdict (not from an earlier time)",
  );

  // A drained backend gets no new RPCs.
  await patchInstanceSpec(ns, "echo-2", { drain: true });
  await eventually(
    async () => {
      const r = await client.rpcs(20);
      return answered(r).join() === b1.address ? r : undefined;
    },
    { timeoutMs: MARGIN_MS + 5000, what: "echo-2 to stop receiving once drained" },
  );
  const served2 = b2.served;
  assert.deepEqual((await client.rpcs(30)).counts, { [b1.address]: 30 });
  assert.equal(b2.served, served2, "the drained backend served nothing more");

  // Weights: echo-1 100, echo-2 300, Random (gRPC: ring_hash with a random
  // hash per RPC, i.e. weighted random). 2000 RPCs: echo-2's share is 0.75
  // with a standard deviation of 0.01; the tolerance is ±0.06.
  b3.healthy = true;
  await patchInstanceSpec(ns, "echo-2", { drain: false, weight: 300 });
  await patchInstanceSpec(ns, "echo-3", { weight: 0 });
  await patchPolicySpec(ns, "echo", { loadBalancing: { strategy: "Random" } });
  await eventually(
    async () => {
      const r = await client.rpcs(200);
      const share = (r.counts[b2.address] ?? 0) / 200;
      return answered(r).join() === [b1.address, b2.address].sort().join() && share > 0.6 ? r : undefined;
    },
    { timeoutMs: MARGIN_MS + 10_000, what: "the weighted policy to reach the client" },
  );
  const weighted = await client.rpcs(2000);
  const share = (weighted.counts[b2.address] ?? 0) / 2000;
  assert.ok(Math.abs(share - 0.75) <= 0.06, `echo-2 (weight 300 of 400) got ${share} of the RPCs`);
  assert.equal(weighted.counts[b3.address], undefined, "weight 0 receives nothing");

  // Ring hash on a header: one value always reaches one backend; values spread.
  await patchInstanceSpec(ns, "echo-2", { weight: 100 });
  await patchInstanceSpec(ns, "echo-3", { weight: 100 });
  await patchPolicySpec(ns, "echo", {
    loadBalancing: {
      strategy: "ConsistentHash",
      consistentHash: { algorithm: "Ring", key: { source: "Header", name: "x-user" } },
    },
  });
  // Which backend a key lands on depends on the ring, and the ring on the
  // backends' ports, which are random: with 12 keys a backend got none in
  // about 3·(2/3)^12 ≈ 2% of runs. With 48 keys that is 3·(2/3)^48 ≈ 1e-8.
  await eventually(
    async () => {
      // Three healthy, weight-100 backends, and every key sticks to one.
      const seen = new Set<string>();
      for (let u = 0; u < 48; u++) {
        const r = await client.rpcs(5, `x-user=user-${u}`);
        if (answered(r).length !== 1 || total(r) !== 5) return undefined;
        seen.add(answered(r)[0]!);
      }
      return seen.size === 3 ? seen : undefined;
    },
    { timeoutMs: MARGIN_MS + 10_000, what: "ring hash: each key on one backend, keys on all three" },
  );
  for (let u = 0; u < 5; u++) {
    const first = answered(await client.rpcs(5, `x-user=user-${u}`));
    const again = answered(await client.rpcs(20, `x-user=user-${u}`));
    assert.deepEqual(again, first, `user-${u} stays on ${first}`);
  }
  const stats = operator.xds!.stats();
  assert.equal(stats.nacks, 0, `${kind} accepted every resource`);
  assert.ok(stats.pushes > 4);
}
