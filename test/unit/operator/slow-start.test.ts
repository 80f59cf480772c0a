/**
 * Slow start (issue 19) past the pure ramp: the desired step publishes the
 * ramp start once (slowStartSince), re-plans during the window write
 * nothing, degraded weight and slow start combine, the client weighs by its
 * clock at pick time, and Envoy clusters alone get slow_start_config.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PUBLISH, Publish } from "../../../src/api/index.ts";
import {
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoints,
  type PublishedSlowStart,
  slowStartWeight,
} from "../../../src/api/published.ts";
import { seededRng } from "../../../src/balance/random.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { memorySource } from "../../../src/client/source.ts";
import type { ConfigMapObject, ServiceObject } from "../../../src/operator/context.ts";
import type { EffectiveSlowStart } from "../../../src/operator/effective.ts";
import { healthySince } from "../../../src/operator/instance-view.ts";
import {
  type PublicationInput,
  planConfigMapPublication,
  planServicePublication,
} from "../../../src/operator/publish-plan.ts";
import type { InstanceInput } from "../../../src/publish/index.ts";
import { buildServiceResources } from "../../../src/xds/resources.ts";
import { configMap, endpoint } from "../client/fixtures.ts";
import { NS, T0, verdict } from "./fixtures.ts";

const SS: EffectiveSlowStart = {
  windowMs: 30_000,
  aggression: 1,
  minWeightPercent: 10,
  notBeforeMs: T0 - 60_000,
};
const owner = { metadata: { name: "web", namespace: NS, uid: "svc-uid" } } as ServiceObject;

function inst(name: string, address: string, over: Partial<InstanceInput> = {}): InstanceInput {
  return {
    name,
    uid: `u-${name}`,
    addresses: [address],
    ports: [{ name: "http", port: 8080 }],
    verdict: "Healthy",
    ...over,
  };
}

function input(
  instances: InstanceInput[],
  now: number,
  over: Partial<PublicationInput> = {},
): PublicationInput {
  return {
    namespace: NS,
    service: "web",
    instances,
    servicePorts: instances.map((i) => ({ name: i.name, ports: i.ports })),
    publish: DEFAULT_PUBLISH,
    loadBalancing: { strategy: "RoundRobin" },
    slowStart: SS,
    now,
    existing: undefined,
    slices: [],
    configMaps: [],
    configMap: undefined,
    ...over,
  };
}

const since = (i: PublicationInput) =>
  Object.fromEntries(planServicePublication(i).desired.endpoints.map((e) => [e.instance, e.slowStartSince]));

describe("the desired step publishes the ramp start", () => {
  it("whole seconds from the healthy transition, only for Ready instances within the window", () => {
    const fleet = [
      inst("new", "198.18.0.1", { healthySince: T0 + 700 }),
      inst("old", "198.18.0.2", { healthySince: T0 - 120_000 }), // healthy before the policy
      inst("past", "198.18.0.3", { healthySince: T0 - 30_000 }), // window over at T0
      inst("drained", "198.18.0.4", { healthySince: T0, drain: true }),
      inst("down", "198.18.0.5", { verdict: "Unhealthy" }),
    ];
    assert.deepEqual(since(input(fleet, T0 + 5_000)), {
      new: "2030-01-01T00:00:00Z",
      old: undefined,
      past: undefined,
      drained: undefined,
      down: undefined,
    });
    // Without slow start nothing carries it; at the window's end the ramp is gone.
    assert.equal(since(input(fleet, T0 + 5_000, { slowStart: undefined })).new, undefined);
    assert.equal(since(input(fleet, T0 + 30_000)).new, undefined);
  });

  it("re-plans during the ramp write nothing; the end of the window writes once", () => {
    const fleet = [inst("a", "198.18.0.1"), inst("b", "198.18.0.2", { healthySince: T0 })];
    const plan = (now: number, configMap?: ConfigMapObject) => {
      const i = input(fleet, now, { configMap });
      return planConfigMapPublication(i, planServicePublication(i).desired, owner);
    };
    const first = plan(T0 + 1_000);
    assert.equal(first.steps.length, 1);
    const written = (first.steps[0] as { body: ConfigMapObject }).body;
    const live = { ...written, metadata: { ...written.metadata, uid: "cm1", resourceVersion: "1" } };
    assert.match(written.data!["endpoints.json"]!, /"slowStartSince":"2030-01-01T00:00:00Z"/);
    for (const t of [2_000, 10_000, 29_999])
      assert.deepEqual(plan(T0 + t, live).steps, [], `rewritten at +${t}ms`);
    const end = plan(T0 + 30_000, live);
    assert.equal(end.steps.length, 1, "the ramp's end drops slowStartSince in one write");
    assert.doesNotMatch(
      (end.steps[0] as { body: ConfigMapObject }).body.data!["endpoints.json"]!,
      /slowStartSince/,
    );
  });

  it("a degraded instance ramps to its degraded weight (the ramp scales the published weight)", () => {
    const publish = Publish.parse({ degradedWeightPercent: 50 });
    const i = input(
      [inst("a", "198.18.0.1", { weight: 100, degraded: true, healthySince: T0 })],
      T0 + 1_000,
      {
        publish,
      },
    );
    const [ep] = planServicePublication(i).desired.endpoints;
    assert.equal(ep?.weight, 50);
    assert.equal(ep?.degraded, true);
    assert.equal(ep?.slowStartSince, "2030-01-01T00:00:00Z");
    const ss: PublishedSlowStart = { windowMs: 30_000, aggression: 1, minWeightPercent: 10 };
    assert.equal(slowStartWeight(ep!, ss, T0 + 15_000), 25, "half of the window: half of 50");
    assert.equal(slowStartWeight(ep!, ss, T0 + 30_000), 50);
  });
});

describe("the ramp survives an operator restart", () => {
  it("the recorded healthy transition wins over a restarted engine's verdict time", () => {
    const restarted = verdict("Healthy", { since: T0 + 20_000 }); // the new process's first verdict
    const status = { healthy: true, lastTransitionTime: "2030-01-01T00:00:00Z" };
    assert.equal(healthySince(status, restarted), T0);
    // Not yet recorded (it just turned healthy): the verdict's time, which the status writer records.
    assert.equal(
      healthySince({ healthy: false, lastTransitionTime: "2029-12-31T23:00:00Z" }, restarted),
      T0 + 20_000,
    );
    assert.equal(healthySince(undefined, verdict("Unhealthy")), undefined);
  });
});

describe("the client weighs ramping endpoints by its clock", () => {
  it("pick shares at a few clock times: floor, half, full", async () => {
    let now = T0;
    const source = memorySource();
    const client = new RosterClient(undefined, { source, rng: seededRng(7), clock: { now: () => now } });
    const steady = endpoint({ instance: "steady", weight: 100 });
    const ramping = { ...endpoint({ instance: "new", weight: 100 }), slowStartSince: "2030-01-01T00:00:00Z" };
    source.apply(
      configMap({
        service: "web",
        revision: 1,
        loadBalancing: {
          strategy: "RoundRobin",
          slowStart: { windowMs: 100_000, aggression: 1, minWeightPercent: 10 },
        },
        endpoints: [steady, ramping],
      }),
    );
    await client.ready();
    const share = () => {
      let n = 0;
      for (let i = 0; i < 4000; i++) if (client.pick("web").endpoint.instance === "new") n++;
      return n / 4000;
    };
    // Weights 100 vs 10 (floor), 100 vs 50, then equal: shares 1/11, 1/3, 1/2.
    const floor = share();
    assert.ok(Math.abs(floor - 1 / 11) < 0.03, `at the start: ${floor}`);
    now = T0 + 50_000;
    const half = share();
    assert.ok(Math.abs(half - 1 / 3) < 0.03, `half way: ${half}`);
    now = T0 + 100_000;
    assert.equal(share(), 0.5, "after the window: plain round robin");
    client.close();
  });
});

describe("xDS", () => {
  const doc = (strategy: PublishedEndpoints["loadBalancing"]["strategy"]): PublishedEndpoints => ({
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision: 1,
    namespace: NS,
    service: "web",
    panic: false,
    loadBalancing: {
      strategy,
      zoneAware: false,
      slowStart: { windowMs: 1_500, aggression: 2, minWeightPercent: 5 },
    },
    endpoints: [],
  });
  const config = {
    slow_start_config: {
      slow_start_window: { seconds: "1", nanos: 500_000_000 },
      aggression: { default_value: 2, runtime_key: "roster.slow_start.aggression" },
      min_weight_percent: { value: 5 },
    },
  };

  it("Envoy round robin and least request clusters get slow_start_config; gRPC and random get none", () => {
    for (const s of ["RoundRobin", "WeightedRoundRobin"] as const)
      assert.deepEqual(buildServiceResources(doc(s)).cluster.envoy.round_robin_lb_config, config, s);
    assert.deepEqual(
      buildServiceResources(doc("LeastConnections")).cluster.envoy.least_request_lb_config,
      config,
    );
    for (const s of ["RoundRobin", "WeightedRoundRobin", "LeastConnections", "Random"] as const) {
      const r = buildServiceResources(doc(s));
      assert.doesNotMatch(JSON.stringify(r.cluster.grpc), /slow_start/, `grpc ${s}`);
      if (s === "Random") assert.doesNotMatch(JSON.stringify(r.cluster.envoy), /slow_start/);
    }
  });
});
