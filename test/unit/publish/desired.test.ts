import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { publishedEndpointSchema } from "../../../src/api/published.ts";
import {
  canonicalIp,
  checkAddress,
  computeDesired,
  type InstanceInput,
  isPanic,
  type PublishPolicy,
  sliceRejection,
} from "../../../src/publish/index.ts";
import { instance, NS, SVC } from "./helpers.ts";

const POLICY: PublishPolicy = { panicThreshold: 0 };

function desired(instances: InstanceInput[], policy: Partial<PublishPolicy> = {}) {
  return computeDesired(NS, SVC, instances, { ...POLICY, ...policy });
}

/** n instances, the first `healthy` of them healthy, the others unhealthy. */
function fleet(n: number, healthy: number, over: Partial<InstanceInput> = {}): InstanceInput[] {
  return Array.from({ length: n }, (_, i) =>
    instance(`i${String(i).padStart(2, "0")}`, {
      addresses: [`10.0.0.${i + 1}`],
      verdict: i < healthy ? "Healthy" : "Unhealthy",
      ...over,
    }),
  );
}

function sliceAddresses(d: ReturnType<typeof desired>): string[] {
  return [...d.slices.IPv4, ...d.slices.IPv6].map((e) => e.endpoint.addresses[0]!);
}

describe("addresses", () => {
  it("canonicalizes IPs", () => {
    assert.deepEqual(canonicalIp("10.0.0.1"), { address: "10.0.0.1", family: "IPv4" });
    assert.deepEqual(canonicalIp("2001:DB8:0:0:0:0:0:1"), { address: "2001:db8::1", family: "IPv6" });
    assert.deepEqual(canonicalIp("::ffff:10.1.2.3"), { address: "10.1.2.3", family: "IPv4" });
    for (const bad of ["", "host.example.com", "10.0.0.256", "010.0.0.1", "fe80::1%eth0", "1.2.3"]) {
      assert.equal(canonicalIp(bad), undefined, bad);
    }
  });

  it("knows which addresses an EndpointSlice refuses", () => {
    const refused = [
      "0.0.0.0",
      "127.0.0.1",
      "127.9.9.9",
      "169.254.1.1",
      "224.0.0.5",
      "::",
      "::1",
      "fe80::1",
      "febf::1",
    ];
    for (const a of refused) assert.ok(sliceRejection(canonicalIp(a)!.address, canonicalIp(a)!.family), a);
    assert.ok(sliceRejection("ff02::1", "IPv6"));
    const accepted = ["10.0.0.1", "192.168.1.1", "224.0.1.1", "2001:db8::1", "fec0::1", "ff05::1", "::2"];
    for (const a of accepted)
      assert.equal(sliceRejection(canonicalIp(a)!.address, canonicalIp(a)!.family), undefined, a);
    assert.deepEqual(checkAddress("nope"), { ok: false, reason: 'not an IP address: "nope"' });
  });
});

describe("computeDesired", () => {
  it("publishes healthy instances as ready and keeps unhealthy ones out of the slices", () => {
    const d = desired(fleet(3, 2));
    assert.equal(d.panic, false);
    assert.deepEqual(sliceAddresses(d), ["10.0.0.1", "10.0.0.2"]);
    assert.deepEqual(d.slices.IPv4[0]?.endpoint.conditions, {
      ready: true,
      serving: true,
      terminating: false,
    });
    assert.deepEqual(
      d.endpoints.map((e) => [e.instance, e.state, e.ready, e.healthy]),
      [
        ["i00", "Ready", true, true],
        ["i01", "Ready", true, true],
        ["i02", "Unhealthy", false, false],
      ],
    );
    assert.deepEqual(d.counts, { total: 3, healthy: 2, unhealthy: 1, pending: 0, draining: 0, ready: 2 });
  });

  it("enters panic below the threshold and publishes every non-drained instance", () => {
    // 2 of 10 healthy = 20% < 50%.
    const instances = fleet(10, 2);
    instances[9] = { ...instances[9]!, drain: true };
    const d = desired(instances, { panicThreshold: 50 });
    assert.equal(d.panic, true);
    const states = d.endpoints.map((e) => e.state);
    assert.deepEqual(states, ["Ready", "Ready", ...Array(7).fill("Panic"), "Draining"]);
    const ready = [...d.slices.IPv4].filter((e) => e.endpoint.conditions?.ready);
    assert.equal(ready.length, 9);
    const drained = d.slices.IPv4.find((e) => e.endpoint.addresses[0] === "10.0.0.10");
    assert.deepEqual(drained?.endpoint.conditions, { ready: false, serving: false, terminating: true });
    assert.equal(d.counts.ready, 9);
  });

  it("leaves panic when health recovers, and counts the threshold exactly", () => {
    assert.equal(desired(fleet(10, 5), { panicThreshold: 50 }).panic, false, "50% is not below 50%");
    assert.equal(desired(fleet(10, 4), { panicThreshold: 50 }).panic, true);
    assert.equal(desired(fleet(10, 0), { panicThreshold: 0 }).panic, false, "threshold 0 disables panic");
    assert.equal(desired(fleet(10, 9), { panicThreshold: 100 }).panic, true);
    assert.equal(desired([], { panicThreshold: 100 }).panic, false);
    assert.equal(isPanic(1, 3, 34), true);
    assert.equal(isPanic(1, 3, 33), false);
  });

  it("does not count pending instances either way, and publishes them only in panic", () => {
    const pending = fleet(4, 0, { verdict: "Unknown" });
    const calm = desired(pending, { panicThreshold: 50 });
    assert.equal(calm.panic, false, "a brand-new service does not start in panic");
    assert.deepEqual(sliceAddresses(calm), []);
    assert.deepEqual(
      calm.endpoints.map((e) => e.state),
      ["Pending", "Pending", "Pending", "Pending"],
    );
    const mixed = [...pending, instance("z-bad", { addresses: ["10.9.0.1"], verdict: "Unhealthy" })];
    const panic = desired(mixed, { panicThreshold: 50 });
    assert.equal(panic.panic, true);
    assert.equal(panic.slices.IPv4.length, 5);
  });

  it("publishes drained instances as serving-but-not-ready (terminating), never in panic", () => {
    const d = desired([
      instance("a", { drain: true }),
      instance("b", { addresses: ["10.1.0.2"], drain: true, verdict: "Unhealthy" }),
    ]);
    assert.deepEqual(
      d.slices.IPv4.map((e) => e.endpoint.conditions),
      [
        { ready: false, serving: true, terminating: true },
        { ready: false, serving: false, terminating: true },
      ],
    );
    assert.deepEqual(
      d.endpoints.map((e) => [e.state, e.ready, e.healthy]),
      [
        ["Draining", false, true],
        ["Draining", false, false],
      ],
    );
    assert.equal(d.counts.draining, 2);
    assert.equal(
      desired([instance("a", { drain: true, verdict: "Unhealthy" })], { panicThreshold: 100 }).panic,
      false,
    );
  });

  it("sets zone hints on ready endpoints only when every ready endpoint has a zone", () => {
    const zoned = [
      instance("a", { zone: "z1" }),
      instance("b", { addresses: ["10.1.0.2"], zone: "z2" }),
      instance("c", { addresses: ["10.1.0.3"], drain: true }),
    ];
    const on = desired(zoned, { trafficDistribution: "PreferSameZone" });
    assert.equal(on.zoneHints, true);
    assert.deepEqual(
      on.slices.IPv4.map((e) => [e.endpoint.zone, e.endpoint.hints]),
      [
        ["z1", { forZones: [{ name: "z1" }] }],
        ["z2", { forZones: [{ name: "z2" }] }],
        [undefined, undefined],
      ],
    );
    const off = desired(zoned, {});
    assert.equal(off.zoneHints, false);
    assert.ok(off.slices.IPv4.every((e) => e.endpoint.hints === undefined));
    assert.equal(off.slices.IPv4[0]?.endpoint.zone, "z1", "the zone is published without hints");
    const partial = desired([...zoned, instance("d", { addresses: ["10.1.0.4"] })], {
      trafficDistribution: "PreferClose",
    });
    assert.equal(partial.zoneHints, false);
    assert.ok(partial.slices.IPv4.every((e) => e.endpoint.hints === undefined));
  });

  it("splits address families and canonicalizes addresses", () => {
    const d = desired([instance("dual", { addresses: ["10.0.0.1", "2001:DB8::0:1", "10.0.0.1"] })]);
    assert.deepEqual(
      d.slices.IPv4.map((e) => e.endpoint.addresses),
      [["10.0.0.1"]],
    );
    assert.deepEqual(
      d.slices.IPv6.map((e) => e.endpoint.addresses),
      [["2001:db8::1"]],
    );
    assert.deepEqual(
      d.endpoints.map((e) => [e.address, e.family]),
      [
        ["10.0.0.1", "IPv4"],
        ["2001:db8::1", "IPv6"],
      ],
    );
    assert.equal(d.counts.ready, 1, "counts instances, not addresses");
  });

  it("keeps addresses the API server refuses out of slices but in the ConfigMap", () => {
    const d = desired([instance("local", { addresses: ["127.0.0.1", "nonsense"] })]);
    assert.deepEqual(sliceAddresses(d), []);
    assert.deepEqual(
      d.endpoints.map((e) => e.address),
      ["127.0.0.1"],
    );
    assert.deepEqual(
      d.skipped.map((s) => [s.address, s.inConfigMap]),
      [
        ["127.0.0.1", true],
        ["nonsense", false],
      ],
    );
  });

  it("fills slice endpoints with targetRef, ports and the ConfigMap fields", () => {
    const d = desired([
      instance("a", {
        uid: "u-1",
        ports: [
          { name: "metrics", port: 9100 },
          { name: "grpc", port: 9000, protocol: "TCP", appProtocol: "kubernetes.io/h2c" },
        ],
        weight: 250,
        tags: ["b", "a", "b"],
        metadata: { v: "1" },
      }),
    ]);
    const [s] = d.slices.IPv4;
    assert.deepEqual(s?.ports, [
      { name: "grpc", port: 9000, protocol: "TCP", appProtocol: "kubernetes.io/h2c" },
      { name: "metrics", port: 9100, protocol: "TCP" },
    ]);
    assert.deepEqual(s?.endpoint.targetRef, {
      apiVersion: "roster.dev/v1alpha1",
      kind: "ServiceInstance",
      namespace: NS,
      name: "a",
      uid: "u-1",
    });
    const [e] = d.endpoints;
    assert.equal(e?.weight, 250);
    assert.deepEqual(e?.tags, ["a", "b"]);
    assert.deepEqual(e?.metadata, { v: "1" });
    assert.equal(desired([instance("w")]).endpoints[0]?.weight, 100, "default weight");
  });

  it("always yields endpoints valid under the published schema, in sorted order", () => {
    const inst = fc.record({
      name: fc.constantFrom("a", "b", "c", "d", "e"),
      addresses: fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }),
      verdict: fc.constantFrom("Healthy" as const, "Unhealthy" as const, "Unknown" as const),
      drain: fc.boolean(),
      zone: fc.option(fc.constantFrom("z1", "z2"), { nil: undefined }),
      weight: fc.integer({ min: 0, max: 10000 }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(inst, { selector: (i) => i.name }),
        fc.integer({ min: 0, max: 100 }),
        fc.boolean(),
        (list, panicThreshold, zoneHints) => {
          const instances = list.map((i) => instance(i.name, i));
          const d = desired(instances, {
            panicThreshold,
            ...(zoneHints ? { trafficDistribution: "PreferSameZone" as const } : {}),
          });
          for (const e of d.endpoints)
            assert.ok(publishedEndpointSchema.safeParse(e).success, JSON.stringify(e));
          const keys = d.endpoints.map((e) => `${e.instance} ${e.address}`);
          assert.deepEqual(keys, [...keys].sort());
          for (const e of [...d.slices.IPv4, ...d.slices.IPv6]) {
            const c = e.endpoint.conditions!;
            assert.ok(c.ready || c.terminating, "only ready or draining endpoints are in slices");
            if (!d.panic) {
              const pe = d.endpoints.find((p) => p.address === e.endpoint.addresses[0]);
              assert.ok(pe?.healthy || pe?.state === "Draining");
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
