/**
 * Database roles (issue 19): the role a probe learnt, combined per address,
 * decided once per instance by the instance view, recorded in status.role,
 * carried to the ConfigMap and xDS, and publish.role keeping only that role.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PUBLISH, Publish, validateDiscoveryPolicy } from "../../../src/api/index.ts";
import { PUBLISHED_FORMAT_VERSION, publishedEndpointSchema } from "../../../src/api/published.ts";
import { destinationPolicy } from "../../../src/health/policy.ts";
import { ok, Reason } from "../../../src/health/reasons.ts";
import { combineResults } from "../../../src/health/verdict.ts";
import type { InstanceObject, OperatorContext } from "../../../src/operator/context.ts";
import { instanceRole, instanceView, learnsRole } from "../../../src/operator/instance-view.ts";
import { publicationPolicy } from "../../../src/operator/publication.ts";
import { type PublicationInput, planServicePublication } from "../../../src/operator/publish-plan.ts";
import { runtimeStore } from "../../../src/operator/runtime.ts";
import { instanceStatus, policyStatus, ROLE_UNKNOWN } from "../../../src/operator/status.ts";
import type { InstanceVerdict } from "../../../src/operator/verdicts.ts";
import type { InstanceInput } from "../../../src/publish/index.ts";
import { buildServiceResources } from "../../../src/xds/resources.ts";
import { instance, NS, policy, T0, verdict } from "./fixtures.ts";

function setup(owned = true) {
  const verdicts = new Map<string, InstanceVerdict>();
  const policy = publicationPolicy(destinationPolicy({ deny: [] }), { clusterNetworks: [], allow: {} });
  const ctx = {
    shards: { owns: () => owned },
    verdicts: { get: (k: string) => verdicts.get(k), subscribe: () => () => {} },
    publication: () => policy,
  } as unknown as OperatorContext;
  const runtimes = runtimeStore();
  return { view: instanceView(ctx, runtimes), runtimes, verdicts };
}

const si = (name: string, status?: InstanceObject["status"]) =>
  instance({ address: "db.example" }, { name, status }) as InstanceObject;

describe("the role of a probe run", () => {
  it("combined probes keep the role a database probe learnt, whichever outcome wins", () => {
    const failed = { ok: false, reason: Reason.ConnectionRefused, message: "refused" };
    const primary = { ...ok("session opened, primary"), role: "primary" as const };
    assert.equal(combineResults([failed, primary], "all").role, "primary");
    assert.equal(combineResults([failed, primary], "all").ok, false);
    assert.equal(combineResults([primary, ok()], "any").role, "primary");
    assert.equal(combineResults([ok(), ok()], "all").role, undefined);
  });
});

describe("the instance view decides the role", () => {
  it("one role shared by every address, else unknown", () => {
    assert.equal(instanceRole([{ address: "a", verdict: "Healthy", role: "primary" }]), "primary");
    assert.equal(
      instanceRole([
        { address: "a", verdict: "Healthy", role: "primary" },
        { address: "b", verdict: "Healthy", role: "replica" },
      ]),
      undefined,
    );
    assert.equal(
      instanceRole([
        { address: "a", verdict: "Healthy", role: "primary" },
        { address: "b", verdict: "Unhealthy" },
      ]),
      undefined,
    );
    assert.equal(instanceRole([]), undefined);
  });

  it("an owned instance: the role of its published addresses, none while blocked or unprobed", () => {
    const { view, runtimes, verdicts } = setup();
    const key = `${NS}/a`;
    runtimes.set(key, { generation: 1 });
    assert.equal(view.published(si("a")).role, undefined, "not probed yet");
    verdicts.set(
      key,
      verdict("Healthy", {
        addresses: [
          { address: "198.18.0.1", verdict: "Healthy", role: "primary" },
          { address: "198.18.0.2", verdict: "Unhealthy" }, // failing: no role, not published
        ],
      }),
    );
    assert.deepEqual(view.published(si("a")), {
      blocked: false,
      settled: true,
      verdict: "Healthy",
      degraded: false,
      addresses: ["198.18.0.1"],
      role: "primary",
      healthySince: T0, // the fresh verdict's, for slow start
    });
    assert.equal(view.probed(key)?.role, "primary", "the status records the same role");
    assert.equal(view.inputs([si("a")])[0]?.role, "primary");
    // A role recorded before (another replica's, or before a restart) does not count for an owned instance.
    verdicts.set(key, verdict("Unhealthy", { addresses: [{ address: "198.18.0.1", verdict: "Unhealthy" }] }));
    assert.equal(view.published(si("a", { healthy: false, role: "primary" })).role, undefined);
    runtimes.set(key, { generation: 1, blocker: { reason: "SecretNotFound", message: "no Secret" } });
    assert.equal(view.probed(key)?.role, undefined);
    assert.equal(view.published(si("a")).role, undefined);
  });

  it("a host override: the probed servers' role on the instance's own addresses", () => {
    const { view, runtimes, verdicts } = setup();
    const key = `${NS}/a`;
    runtimes.set(key, { generation: 1, hostOverride: "probe.example", resolved: ["198.18.1.1"] });
    verdicts.set(
      key,
      verdict("Healthy", { addresses: [{ address: "10.0.0.1", verdict: "Healthy", role: "replica" }] }),
    );
    assert.deepEqual(
      [view.published(si("a")).addresses, view.published(si("a")).role],
      [["198.18.1.1"], "replica"],
    );
  });

  it("an instance another replica probes: the role it recorded", () => {
    const { view } = setup(false);
    const recorded = si("a", { healthy: true, addresses: ["198.18.0.9"], role: "replica" });
    assert.equal(view.published(recorded).role, "replica");
  });
});

describe("status.role", () => {
  it("records the view's role and drops it when unknown or blocked", () => {
    const s = instanceStatus({
      instance: instance(),
      verdict: verdict("Healthy"),
      addresses: ["192.0.2.1"],
      role: "primary",
      now: T0,
    });
    assert.equal(s.role, "primary");
    const failed = instanceStatus({
      instance: instance({}, { status: s }),
      verdict: verdict("Unhealthy"),
      addresses: ["192.0.2.1"],
      now: T0,
    });
    assert.equal(failed.role, undefined, "a failing probe learnt no role: the field goes");
    const blocked = instanceStatus({
      instance: instance(),
      verdict: undefined,
      addresses: [],
      role: "primary",
      blocker: { reason: "SecretNotFound", message: "no Secret" },
      now: T0,
    });
    assert.equal(blocked.role, undefined);
  });
});

function db(
  name: string,
  address: string,
  role?: InstanceInput["role"],
  v: InstanceInput["verdict"] = "Healthy",
) {
  return {
    name,
    addresses: [address],
    ports: [{ name: "pg", port: 5432 }],
    verdict: v,
    ...(role ? { role } : {}),
  } satisfies InstanceInput;
}

function input(instances: InstanceInput[], publish = DEFAULT_PUBLISH): PublicationInput {
  return {
    namespace: NS,
    service: "orders-db",
    instances,
    servicePorts: instances.map((i) => ({ name: i.name, ports: i.ports })),
    publish,
    loadBalancing: { strategy: "RoundRobin" },
    existing: undefined,
    slices: [],
    configMaps: [],
    configMap: undefined,
  };
}

describe("publish.role", () => {
  const instances = [
    db("db-a", "198.18.0.1", "primary"),
    db("db-b", "198.18.0.2", "replica"),
    db("db-c", "198.18.0.3"), // role unknown (not probed yet, failing)
  ];

  it("without it every instance is published, with its role in the ConfigMap endpoint", () => {
    const { desired } = planServicePublication(input(instances));
    assert.deepEqual(
      desired.endpoints.map((e) => [e.instance, e.ready, e.role]),
      [
        ["db-a", true, "primary"],
        ["db-b", true, "replica"],
        ["db-c", true, undefined],
      ],
    );
    for (const e of desired.endpoints) publishedEndpointSchema.parse(e);
  });

  it("publishes only the instances of that role; the others and the unknown ones are left out", () => {
    const primary = planServicePublication(input(instances, Publish.parse({ role: "primary" }))).desired;
    assert.deepEqual(
      primary.endpoints.map((e) => e.instance),
      ["db-a"],
    );
    assert.deepEqual(
      primary.slices.IPv4.map((s) => s.endpoint.addresses),
      [["198.18.0.1"]],
    );
    const replica = planServicePublication(input(instances, Publish.parse({ role: "replica" }))).desired;
    assert.deepEqual(
      replica.endpoints.map((e) => e.instance),
      ["db-b"],
    );
  });

  it("panic never fails open to another role", () => {
    const failing = [db("db-a", "198.18.0.1", "primary", "Unhealthy"), db("db-b", "198.18.0.2", "replica")];
    const plan = planServicePublication(
      input(failing, Publish.parse({ role: "primary", panicThreshold: 50 })),
    ).desired;
    assert.equal(plan.panic, true);
    assert.deepEqual(
      plan.endpoints.map((e) => [e.instance, e.state]),
      [["db-a", "Panic"]],
    );
  });

  it("the API accepts primary and replica and rejects another value naming the field", () => {
    const base = { apiVersion: "roster.dev/v1alpha1", kind: "DiscoveryPolicy", metadata: { name: "p" } };
    const accepted = validateDiscoveryPolicy({
      ...base,
      spec: { service: "orders-db", publish: { role: "replica" } },
    });
    assert.equal(accepted.ok, true);
    const rejected = validateDiscoveryPolicy({
      ...base,
      spec: { service: "orders-db", publish: { role: "master" } },
    });
    assert.equal(rejected.ok, false);
    assert.match(JSON.stringify(rejected), /spec\.publish\.role/);
  });
});

describe("xDS", () => {
  it("endpoint filter metadata roster.dev carries the role when known", () => {
    const { desired } = planServicePublication(input(instances()));
    const doc = {
      formatVersion: PUBLISHED_FORMAT_VERSION as typeof PUBLISHED_FORMAT_VERSION,
      revision: 1,
      namespace: NS,
      service: "orders-db",
      panic: false,
      loadBalancing: { strategy: "RoundRobin" as const, zoneAware: false },
      endpoints: desired.endpoints,
    };
    const eds = buildServiceResources(doc).endpoints.grpc as unknown as {
      endpoints: { lb_endpoints: { metadata: { filter_metadata: Record<string, { fields: object }> } }[] }[];
    };
    const fields = eds.endpoints.flatMap((l) =>
      l.lb_endpoints.map((e) => e.metadata.filter_metadata["roster.dev"]?.fields),
    );
    assert.deepEqual(fields, [
      { instance: { string_value: "db-a" }, role: { string_value: "primary" } },
      { instance: { string_value: "db-c" } },
    ]);
  });
  function instances() {
    return [db("db-a", "198.18.0.1", "primary"), db("db-c", "198.18.0.3")];
  }
});

describe("publish.role with instances whose check has no database probe (issue 19)", () => {
  const check = (probes: string[]) => ({
    source: "Policy" as const,
    probes,
    combine: "all",
    interval: "10s",
    timeout: "1s",
    initialDelay: "0s",
    failureThreshold: 3,
    successThreshold: 1,
    jitter: 0,
  });

  it("learnsRole: a postgres or redis probe, named or not; unknown without a check", () => {
    assert.equal(learnsRole(check(["postgres app@<address>:pg/app"])), true);
    assert.equal(
      learnsRole(check(["http GET http://<address>:http/ (200-399)", "cache: redis <address>:6379"])),
      true,
    );
    // A probe named after a database type is still what its type says.
    assert.equal(learnsRole(check(["postgres: tcp <address>:5432"])), false);
    assert.equal(learnsRole(check([])), false);
    assert.equal(learnsRole(undefined), undefined);
  });

  it("the view marks them, from the runtime's check (owned) or the recorded one (another replica's)", () => {
    const { view, runtimes, verdicts } = setup();
    runtimes.set(`${NS}/a`, { generation: 1, healthCheck: check(["tcp <address>:5432"]) });
    runtimes.set(`${NS}/b`, { generation: 1, healthCheck: check(["postgres app@<address>:5432/app"]) });
    runtimes.set(`${NS}/c`, { generation: 1 }); // check not known yet: not marked
    for (const k of ["a", "b", "c"]) verdicts.set(`${NS}/${k}`, verdict("Healthy"));
    const marks = view.inputs([si("a"), si("b"), si("c")]).map((i) => [i.name, i.noRoleProbe]);
    assert.deepEqual(marks, [
      ["a", true],
      ["b", undefined],
      ["c", undefined],
    ]);
    const other = setup(false).view;
    const recorded = si("d", {
      healthy: true,
      addresses: ["198.18.0.9"],
      effectiveHealthCheck: check(["tcp x:1"]),
    });
    assert.equal(other.published(recorded).roleProbe, false);
  });

  it("the plan names them only when publish.role is set", () => {
    const marked = [
      { ...db("db-b", "198.18.0.2"), noRoleProbe: true },
      db("db-a", "198.18.0.1", "primary"),
      { ...db("db-c", "198.18.0.3"), noRoleProbe: true },
    ];
    assert.deepEqual(planServicePublication(input(marked, Publish.parse({ role: "primary" }))).noRoleProbe, [
      "db-b",
      "db-c",
    ]);
    assert.deepEqual(planServicePublication(input(marked)).noRoleProbe, []);
  });

  it("the policy gets RoleUnknown (NoRoleProbe); not Ready when no instance can ever be published", () => {
    const p = policy("p", { service: "orders-db", publish: { role: "primary" } });
    const desired = { panic: false, counts: { total: 1, ready: 1, healthy: 1, draining: 0 } };
    const some = policyStatus({
      policy: p,
      outcome: { desired, noRoleProbe: { role: "primary", names: ["db-b", "db-c"], total: 3 } },
      now: T0,
    }).status;
    const cond = (s: typeof some, type: string) => s.conditions?.find((c) => c.type === type);
    assert.equal(cond(some, ROLE_UNKNOWN)?.status, "True");
    assert.equal(cond(some, ROLE_UNKNOWN)?.reason, "NoRoleProbe");
    assert.match(
      cond(some, ROLE_UNKNOWN)?.message ?? "",
      /2 of 3 instances have no postgres or redis probe.*db-b, db-c/,
    );
    assert.equal(cond(some, "Ready")?.status, "True", "the primary is still published");

    const none = policyStatus({
      policy: p,
      outcome: {
        desired: { panic: false, counts: { total: 0, ready: 0, healthy: 0, draining: 0 } },
        noRoleProbe: { role: "primary", names: ["a", "b", "c", "d", "e", "f", "g"], total: 7 },
      },
      now: T0,
    }).status;
    assert.equal(cond(none, "Ready")?.status, "False");
    assert.equal(cond(none, "Ready")?.reason, "NoRoleProbe");
    assert.match(cond(none, "Ready")?.message ?? "", /a, b, c, d, e and 2 more$/);

    // Fixed (database probes added): the condition turns False; a policy that never had it gets none.
    const fixed = policyStatus({ policy: { ...p, status: some }, outcome: { desired }, now: T0 }).status;
    assert.equal(cond(fixed, ROLE_UNKNOWN)?.status, "False");
    assert.equal(cond(fixed, ROLE_UNKNOWN)?.reason, "RoleProbes");
    assert.equal(
      cond(policyStatus({ policy: p, outcome: { desired }, now: T0 }).status, ROLE_UNKNOWN),
      undefined,
    );
  });
});
