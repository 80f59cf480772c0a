// The roster view of `roster status` and the demo (rosterView, renderView)
// and the demo's settled test (demoSettled), on objects shaped as the API
// server returns them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Condition, DiscoveryPolicy, ServiceInstance } from "../../../src/api/index.ts";
import { demoSettled } from "../../../src/cli/dev.ts";
import { type InstanceView, renderView, rosterView, type ServiceView } from "../../../src/cli/table.ts";

const T = "2030-01-01T00:00:00Z";

function cond(type: string, status: Condition["status"], reason: string): Condition {
  return { type, status, reason, message: "", lastTransitionTime: T };
}

function si(
  name: string,
  spec: { service?: string; address?: string; weight?: number; zone?: string; namespace?: string } = {},
  status?: {
    healthy?: boolean;
    ready?: readonly [Condition["status"], string];
    health?: readonly [Condition["status"], string];
  },
): ServiceInstance {
  const conditions: Condition[] = [];
  if (status?.ready) conditions.push(cond("Ready", ...status.ready));
  if (status?.health) conditions.push(cond("Healthy", ...status.health));
  return {
    apiVersion: "roster.dev/v1alpha1",
    kind: "ServiceInstance",
    metadata: { name, namespace: spec.namespace ?? "ns" },
    spec: {
      service: spec.service ?? "web",
      address: spec.address ?? "192.0.2.1",
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      weight: spec.weight ?? 100,
      ...(spec.zone ? { zone: spec.zone } : {}),
      drain: false,
      tags: [],
    },
    ...(status ? { status: { healthy: status.healthy, conditions } } : {}),
  } as ServiceInstance;
}

function dp(
  name: string,
  service: string,
  extra: { strategy?: string; revision?: number; panic?: boolean; namespace?: string } = {},
): DiscoveryPolicy {
  return {
    apiVersion: "roster.dev/v1alpha1",
    kind: "DiscoveryPolicy",
    metadata: { name, namespace: extra.namespace ?? "ns" },
    spec: { service, ...(extra.strategy ? { loadBalancing: { strategy: extra.strategy } } : {}) },
    ...(extra.revision !== undefined || extra.panic !== undefined
      ? { status: { publishedRevision: extra.revision, panic: extra.panic } }
      : {}),
  } as DiscoveryPolicy;
}

const healthy = { healthy: true, ready: ["True", "Healthy"], health: ["True", "ProbeSucceeded"] } as const;
const failing = { healthy: false, ready: ["False", "Unhealthy"], health: ["False", "HTTPStatus"] } as const;
const draining = { healthy: true, ready: ["False", "Draining"], health: ["True", "ProbeSucceeded"] } as const;

describe("rosterView", () => {
  test("groups instances by namespace and service, sorted; counts healthy; reasons as the table shows them", () => {
    const views = rosterView(
      [
        si("web-2", { address: "192.0.2.2", zone: "b" }, { ...failing }),
        si("web-1", { weight: 300, zone: "a" }, { ...healthy }),
        si("web-3", { address: "192.0.2.3" }, { ...draining }),
        si("api-1", { service: "api", address: "192.0.2.9" }),
        si("web-1", { namespace: "another" }, { ...healthy }),
      ],
      [dp("web-policy", "web", { strategy: "WeightedRoundRobin", revision: 7 })],
    );
    assert.deepEqual(
      views.map((v) => `${v.namespace}/${v.service}`),
      ["another/web", "ns/api", "ns/web"],
    );
    const web = views[2]!;
    assert.deepEqual(
      { ...web, instances: undefined },
      {
        namespace: "ns",
        service: "web",
        policy: "web-policy",
        strategy: "WeightedRoundRobin",
        healthy: 2,
        total: 3,
        revision: 7,
        panic: false,
        instances: undefined,
      },
    );
    assert.deepEqual(web.instances, [
      {
        name: "web-1",
        address: "192.0.2.1",
        healthy: true,
        ready: "True",
        reason: "Healthy",
        probe: "ProbeSucceeded",
        weight: 300,
        zone: "a",
      },
      {
        name: "web-2",
        address: "192.0.2.2",
        healthy: false,
        ready: "False",
        reason: "Unhealthy",
        probe: "HTTPStatus",
        weight: 100,
        zone: "b",
      },
      {
        name: "web-3",
        address: "192.0.2.3",
        healthy: true,
        ready: "False",
        reason: "Draining",
        probe: "ProbeSucceeded",
        weight: 100,
        zone: "",
      },
    ] satisfies InstanceView[]);
    // No status yet, no policy: awaiting its first probe, default strategy, no revision.
    const api = views[1]!;
    assert.equal(api.policy, undefined);
    assert.equal(api.strategy, "RoundRobin");
    assert.equal(api.revision, undefined);
    assert.deepEqual(api.instances[0], {
      name: "api-1",
      address: "192.0.2.9",
      healthy: undefined,
      ready: "Unknown",
      reason: "AwaitingProbe",
      probe: "AwaitingProbe",
      weight: 100,
      zone: "",
    });
    // The other namespace's web is its own service, without the policy.
    assert.equal(views[0]!.policy, undefined);
  });

  test("a not-ready reason other than Unhealthy (Conflict, NotResolved...) is shown as is", () => {
    const [view] = rosterView(
      [si("web-1", {}, { healthy: true, ready: ["False", "Conflict"], health: ["True", "ProbeSucceeded"] })],
      [],
    );
    assert.equal(view!.instances[0]!.reason, "Conflict");
  });

  test("REASON is the Ready condition's reason, as kubectl's: a ConfigMap-only instance says NotInEndpointSlices", () => {
    const [view] = rosterView(
      [
        si(
          "web-1",
          {},
          { healthy: true, ready: ["True", "NotInEndpointSlices"], health: ["True", "ProbeSucceeded"] },
        ),
      ],
      [],
    );
    assert.deepEqual(
      [view!.instances[0]!.ready, view!.instances[0]!.reason, view!.instances[0]!.probe],
      ["True", "NotInEndpointSlices", "ProbeSucceeded"],
    );
  });

  test("the first policy of a service governs; a policy without instances still shows", () => {
    const views = rosterView(
      [],
      [dp("first", "web", { strategy: "Random" }), dp("second", "web", { strategy: "ConsistentHash" })],
    );
    assert.equal(views.length, 1);
    assert.deepEqual([views[0]!.policy, views[0]!.strategy, views[0]!.total], ["first", "Random", 0]);
  });

  test("published ConfigMaps give revision, panic and strategy, only for services that exist", () => {
    const views = rosterView(
      [si("web-1", {}, { ...healthy }), si("api-1", { service: "api" }, { ...healthy })],
      [dp("web-policy", "web", { strategy: "WeightedRoundRobin", revision: 3, panic: false })],
      [
        { namespace: "ns", service: "web", revision: 4, panic: true, strategy: "WeightedRoundRobin" },
        { namespace: "ns", service: "api", revision: 2, panic: false, strategy: "LeastConnections" },
        { namespace: "ns", service: "gone", revision: 9, panic: false, strategy: "RoundRobin" },
      ],
    );
    assert.deepEqual(
      views.map((v) => [v.service, v.revision, v.panic, v.strategy]),
      [
        ["api", 2, false, "LeastConnections"],
        ["web", 4, true, "WeightedRoundRobin"],
      ],
    );
  });
});

describe("renderView", () => {
  const views = rosterView(
    [
      si("web-1", { weight: 300, zone: "zone-a" }, { ...healthy }),
      si("web-22", { address: "192.0.2.22" }, { ...failing }),
      si("web-3", { address: "192.0.2.3" }),
    ],
    [dp("web-policy", "web", { strategy: "WeightedRoundRobin", revision: 5, panic: true })],
  );

  test("a summary line per service and an aligned table of its instances", () => {
    assert.equal(
      renderView(views),
      [
        "ns/web  policy=web-policy  strategy=WeightedRoundRobin  healthy=1/3  revision=5  PANIC",
        "  INSTANCE  ADDRESS     HEALTHY  READY    REASON         PROBE           WEIGHT  ZONE",
        "  web-1     192.0.2.1   true     True     Healthy        ProbeSucceeded  300     zone-a",
        "  web-22    192.0.2.22  false    False    Unhealthy      HTTPStatus      100",
        "  web-3     192.0.2.3   ?        Unknown  AwaitingProbe  AwaitingProbe   100",
        "",
      ].join("\n"),
    );
  });

  test("a service without policy or revision says so", () => {
    const out = renderView(rosterView([si("api-1", { service: "api" })], []));
    assert.match(
      out,
      /^ns\/api {2}policy=\(default\) {2}strategy=RoundRobin {2}healthy=0\/1 {2}revision=-\n/,
    );
    assert.ok(!out.includes("PANIC"));
  });

  test("colours only when asked: green healthy, red unhealthy, yellow unknown, bold summary", () => {
    assert.ok(!renderView(views).includes("\x1b["));
    const lines = renderView(views, { color: true }).split("\n");
    const esc = "\x1b[";
    assert.ok(lines[0]!.startsWith(`${esc}1m`) && lines[0]!.includes(`${esc}31mPANIC${esc}0m`), lines[0]);
    assert.ok(lines[2]!.startsWith(`${esc}32m  web-1 `), "healthy: green");
    assert.ok(lines[3]!.startsWith(`${esc}31m  web-22 `), "unhealthy: red");
    assert.ok(lines[4]!.startsWith(`${esc}33m  web-3 `), "unknown: yellow");
  });

  test("nothing to show", () => {
    assert.equal(renderView([]), "No ServiceInstances or DiscoveryPolicies found.\n");
  });
});

describe("demoSettled", () => {
  function demo(overrides: Record<string, Partial<InstanceView>> = {}): ServiceView[] {
    const inst = (name: string, healthyFlag: boolean, reason: string): InstanceView => ({
      name,
      address: "192.0.2.1",
      healthy: healthyFlag,
      ready: healthyFlag && reason !== "Draining" ? "True" : "False",
      reason,
      probe: healthyFlag ? "ProbeSucceeded" : "HTTPStatus",
      weight: 100,
      zone: "zone-a",
      ...overrides[name],
    });
    const base = { namespace: "roster-demo", strategy: "RoundRobin", healthy: 0, total: 0, panic: false };
    return [
      {
        ...base,
        service: "inventory",
        instances: [inst("inventory-1", true, "ProbeSucceeded"), inst("inventory-2", true, "Draining")],
      },
      {
        ...base,
        service: "shop",
        policy: "shop",
        revision: 3,
        instances: [
          inst("shop-1", true, "ProbeSucceeded"),
          inst("shop-2", true, "ProbeSucceeded"),
          inst("shop-3", true, "ProbeSucceeded"),
          inst("shop-4", false, "HTTPStatus"),
          inst("shop-5", true, "ProbeSucceeded"),
        ],
      },
    ];
  }

  test("true in the demo's expected state, whatever the flapping shop-5 does", () => {
    assert.equal(demoSettled(demo()), true);
    assert.equal(demoSettled(demo({ "shop-5": { healthy: false, reason: "HTTPStatus" } })), true);
    assert.equal(demoSettled(demo({ "shop-5": { healthy: undefined, reason: "AwaitingProbe" } })), true);
  });

  test("false until each expectation holds", () => {
    const unpublished = demo();
    unpublished[1]!.revision = undefined;
    assert.equal(demoSettled(unpublished), false, "shop not published yet");
    assert.equal(
      demoSettled(demo({ "shop-4": { healthy: undefined, reason: "AwaitingProbe" } })),
      false,
      "shop-4 not probed",
    );
    assert.equal(demoSettled(demo({ "shop-4": { healthy: true } })), false, "shop-4 not failed yet");
    assert.equal(demoSettled(demo({ "shop-2": { healthy: undefined } })), false, "shop-2 not healthy yet");
    assert.equal(demoSettled(demo({ "inventory-1": { healthy: false } })), false, "gRPC backend not healthy");
    assert.equal(
      demoSettled(demo({ "inventory-2": { reason: "ProbeSucceeded" } })),
      false,
      "not drained yet",
    );
    assert.equal(demoSettled([]), false, "nothing registered");
  });
});
