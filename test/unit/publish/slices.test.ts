import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1EndpointSlice } from "@kubernetes/client-node";
import fc from "fast-check";
import {
  applySlicePlan,
  type DesiredSliceEndpoints,
  endpointFingerprint,
  endpointKey,
  isEmptyPlan,
  normalizeSlicePorts,
  planEndpointSlices,
  type SlicePlan,
  type SlicePlanOptions,
  sameEndpoint,
  sliceLabels,
} from "../../../src/publish/index.ts";
import { ip4, ip6, NS, OWNER, range, SVC, sliceEp } from "./helpers.ts";

const OPTS: SlicePlanOptions = { namespace: NS, service: SVC, owner: OWNER };

function v4(indexes: number[], opts: Parameters<typeof sliceEp>[1] = {}): DesiredSliceEndpoints {
  return { IPv4: indexes.map((i) => sliceEp(ip4(i), opts)), IPv6: [] };
}

function sizes(slices: readonly V1EndpointSlice[]): number[] {
  return slices.map((s) => s.endpoints?.length ?? 0);
}

function names(slices: readonly V1EndpointSlice[]): string[] {
  return slices.map((s) => s.metadata?.name ?? "");
}

/** Plans from scratch and applies: a stable published state. */
function publish(desired: DesiredSliceEndpoints, opts: SlicePlanOptions = OPTS): V1EndpointSlice[] {
  return applySlicePlan([], planEndpointSlices(desired, [], opts));
}

function writes(plan: SlicePlan): number {
  return plan.create.length + plan.update.length + plan.delete.length;
}

/** Which slice holds an address. */
function sliceOf(slices: readonly V1EndpointSlice[], address: string): string | undefined {
  return slices.find((s) => s.endpoints?.some((e) => e.addresses.includes(address)))?.metadata?.name;
}

describe("planEndpointSlices: packing and churn", () => {
  it("packs 250 endpoints into three slices of at most 100", () => {
    const plan = planEndpointSlices(v4(range(250)), [], OPTS);
    assert.deepEqual(sizes(plan.create), [100, 100, 50]);
    assert.deepEqual(names(plan.create), ["web-ipv4-1", "web-ipv4-2", "web-ipv4-3"]);
    assert.equal(plan.update.length, 0);
    assert.equal(plan.delete.length, 0);
    assert.equal(plan.stats.endpointsAdded, 250);
  });

  it("writes complete objects: labels, owner, family, ports, sorted endpoints", () => {
    const [slice] = planEndpointSlices(v4([3, 1, 2]), [], OPTS).create;
    assert.ok(slice);
    assert.equal(slice.apiVersion, "discovery.k8s.io/v1");
    assert.equal(slice.kind, "EndpointSlice");
    assert.equal(slice.metadata?.namespace, NS);
    assert.deepEqual(slice.metadata?.labels, sliceLabels(SVC));
    assert.equal(slice.metadata?.labels?.["kubernetes.io/service-name"], SVC);
    assert.equal(slice.metadata?.labels?.["endpointslice.kubernetes.io/managed-by"], "roster.dev");
    assert.deepEqual(slice.metadata?.ownerReferences, [OWNER]);
    assert.equal(slice.addressType, "IPv4");
    assert.deepEqual(slice.ports, [{ name: "http", port: 8080, protocol: "TCP" }]);
    assert.deepEqual(
      slice.endpoints?.map((e) => e.addresses[0]),
      [ip4(1), ip4(2), ip4(3)],
    );
  });

  it("plans nothing when nothing changed", () => {
    const slices = publish(v4(range(250)));
    const plan = planEndpointSlices(v4(range(250)), slices, OPTS);
    assert.ok(isEmptyPlan(plan), JSON.stringify(plan.stats));
    assert.equal(plan.stats.slicesUnchanged, 3);
  });

  it("does not rewrite a slice whose endpoints are only in another order", () => {
    const slices = publish(v4(range(10)));
    const shuffled = slices.map((s) => ({ ...s, endpoints: [...(s.endpoints ?? [])].reverse() }));
    assert.ok(isEmptyPlan(planEndpointSlices(v4(range(10)), shuffled, OPTS)));
  });

  it("rewrites exactly one slice when one endpoint changes", () => {
    const slices = publish(v4(range(250)));
    const desired = v4(range(250));
    desired.IPv4[137] = sliceEp(ip4(137), { ready: false });
    const plan = planEndpointSlices(desired, slices, OPTS);
    assert.equal(plan.create.length, 0);
    assert.equal(plan.delete.length, 0);
    assert.equal(plan.update.length, 1);
    assert.equal(plan.update[0]?.metadata?.name, sliceOf(slices, ip4(137)));
    assert.equal(plan.update[0]?.endpoints?.length, 100);
    assert.equal(plan.stats.endpointsChanged, 1);
    assert.ok(
      plan.update[0]?.metadata?.resourceVersion === undefined,
      "no resourceVersion in the fake state",
    );
  });

  it("carries the existing resourceVersion into updates", () => {
    const slices = publish(v4(range(3))).map((s) => ({
      ...s,
      metadata: { ...s.metadata, resourceVersion: "42" },
    }));
    const plan = planEndpointSlices(v4(range(2)), slices, OPTS);
    assert.equal(plan.update[0]?.metadata?.resourceVersion, "42");
  });

  it("turns a removal plus an addition into one update of the same slice", () => {
    const slices = publish(v4(range(250)));
    const desired = v4([...range(250).filter((i) => i !== 42), 1000]);
    const plan = planEndpointSlices(desired, slices, OPTS);
    assert.equal(plan.create.length, 0);
    assert.equal(plan.delete.length, 0);
    assert.equal(plan.update.length, 1);
    assert.equal(plan.update[0]?.metadata?.name, sliceOf(slices, ip4(42)));
    assert.equal(sliceOf(plan.update, ip4(1000)), sliceOf(slices, ip4(42)));
    assert.equal(plan.stats.endpointsAdded, 1);
    assert.equal(plan.stats.endpointsRemoved, 1);
  });

  it("turns a create paired with a delete into an update", () => {
    const slices = publish(v4(range(200)));
    const first = slices[0]!;
    const gone = new Set(first.endpoints?.map((e) => e.addresses[0]));
    // Every endpoint of the first slice leaves, 100 new ones arrive.
    const desired = v4([...range(200).filter((i) => !gone.has(ip4(i))), ...range(100, 5000)]);
    const plan = planEndpointSlices(desired, slices, OPTS);
    assert.equal(plan.create.length, 0);
    assert.equal(plan.delete.length, 0);
    assert.equal(plan.update.length, 1);
    assert.equal(plan.update[0]?.metadata?.name, first.metadata?.name);
    assert.equal(plan.update[0]?.endpoints?.length, 100);
  });

  it("fills the fullest updated slice first", () => {
    // Two slices written anyway (one endpoint changes in each): 90 and 50 endpoints.
    const a = planEndpointSlices(v4(range(90)), [], OPTS).create;
    const b = planEndpointSlices(v4(range(50, 1000)), [], { ...OPTS, takenNames: names(a) }).create;
    const existing = [...a, ...b];
    const desired = v4([...range(90), ...range(50, 1000), ...range(15, 9000)]);
    desired.IPv4[0] = sliceEp(ip4(0), { ready: false });
    desired.IPv4[90] = sliceEp(ip4(1000), { ready: false });
    const plan = planEndpointSlices(desired, existing, OPTS);
    assert.equal(plan.create.length, 0);
    assert.deepEqual(
      plan.update.map((s) => [s.metadata?.name, s.endpoints?.length]),
      [
        ["web-ipv4-1", 100],
        ["web-ipv4-2", 55],
      ],
    );
  });

  it("puts leftovers into the unchanged slice that ends closest to full", () => {
    const a = planEndpointSlices(v4(range(95)), [], OPTS).create;
    const b = planEndpointSlices(v4(range(60, 1000)), [], { ...OPTS, takenNames: names(a) }).create;
    const existing = [...a, ...b];
    const base = [...range(95), ...range(60, 1000)];

    const three = planEndpointSlices(v4([...base, ...range(3, 9000)]), existing, OPTS);
    assert.deepEqual(
      three.update.map((s) => [s.metadata?.name, s.endpoints?.length]),
      [["web-ipv4-1", 98]],
    );
    assert.equal(three.create.length, 0);

    const ten = planEndpointSlices(v4([...base, ...range(10, 9000)]), existing, OPTS);
    assert.deepEqual(
      ten.update.map((s) => [s.metadata?.name, s.endpoints?.length]),
      [["web-ipv4-2", 70]],
    );
    assert.equal(ten.create.length, 0);
  });

  it("creates full new slices for large additions, then fits the rest", () => {
    const existing = publish(v4(range(40)));
    const plan = planEndpointSlices(v4([...range(40), ...range(150, 9000)]), existing, OPTS);
    // 150 new: one new slice of 100, the 50 left fit into the 40-endpoint slice.
    assert.deepEqual(sizes(plan.create), [100]);
    assert.deepEqual(
      plan.update.map((s) => [s.metadata?.name, s.endpoints?.length]),
      [["web-ipv4-1", 90]],
    );
    // When the rest does not fit anywhere, it gets a new slice too.
    const full = publish(v4(range(60)));
    const more = planEndpointSlices(v4([...range(60), ...range(150, 9000)]), full, OPTS);
    assert.deepEqual(sizes(more.create), [100, 50]);
    assert.equal(more.update.length, 0);
  });

  it("deletes slices left empty", () => {
    const slices = publish(v4(range(150)));
    const keep = new Set(slices[0]?.endpoints?.map((e) => e.addresses[0]));
    const plan = planEndpointSlices(v4(range(150).filter((i) => keep.has(ip4(i)))), slices, OPTS);
    assert.deepEqual(names(plan.delete), ["web-ipv4-2"]);
    assert.equal(plan.update.length, 0);
    assert.deepEqual(names(planEndpointSlices(v4([]), slices, OPTS).delete), names(slices));
  });

  it("keeps one address family per slice", () => {
    const desired: DesiredSliceEndpoints = {
      IPv4: range(3).map((i) => sliceEp(ip4(i))),
      IPv6: range(2).map((i) => sliceEp(ip6(i))),
    };
    const plan = planEndpointSlices(desired, [], OPTS);
    assert.deepEqual(
      plan.create.map((s) => [s.metadata?.name, s.addressType, s.endpoints?.length]),
      [
        ["web-ipv4-1", "IPv4", 3],
        ["web-ipv6-1", "IPv6", 2],
      ],
    );
  });

  it("keeps endpoints with different ports in different slices", () => {
    const desired: DesiredSliceEndpoints = {
      IPv4: [sliceEp(ip4(1)), sliceEp(ip4(2), { port: 9090 }), sliceEp(ip4(3))],
      IPv6: [],
    };
    const plan = planEndpointSlices(desired, [], OPTS);
    assert.deepEqual(
      plan.create.map((s) => [s.ports?.[0]?.port, s.endpoints?.map((e) => e.addresses[0])]),
      [
        [8080, [ip4(1), ip4(3)]],
        [9090, [ip4(2)]],
      ],
    );
  });

  it("moves an endpoint whose ports changed with one update when the old slice can take the new ports", () => {
    const slices = publish({ IPv4: [sliceEp(ip4(1))], IPv6: [] });
    const plan = planEndpointSlices({ IPv4: [sliceEp(ip4(1), { port: 9090 })], IPv6: [] }, slices, OPTS);
    assert.equal(writes(plan), 1);
    assert.equal(plan.update[0]?.metadata?.name, "web-ipv4-1");
    assert.equal(plan.update[0]?.ports?.[0]?.port, 9090);
  });

  it("deletes slices of an earlier Service (other owner uid) and never reuses them", () => {
    const stale = publish(v4(range(5)), { ...OPTS, owner: { ...OWNER, uid: "old" } });
    const plan = planEndpointSlices(v4(range(5)), stale, OPTS);
    assert.deepEqual(names(plan.delete), ["web-ipv4-1"]);
    assert.deepEqual(names(plan.create), ["web-ipv4-2"]);
    assert.equal(plan.update.length, 0);
  });

  it("deletes Roster-labelled slices of other address types", () => {
    const fqdn: V1EndpointSlice = {
      addressType: "FQDN",
      metadata: { name: "web-fqdn", labels: sliceLabels(SVC), ownerReferences: [OWNER] },
      endpoints: [{ addresses: ["a.example.com"] }],
    };
    const plan = planEndpointSlices(v4([]), [fqdn], OPTS);
    assert.deepEqual(names(plan.delete), ["web-fqdn"]);
  });

  it("ignores slices already being deleted but keeps their names taken", () => {
    const [slice] = publish(v4(range(2)));
    const dying = { ...slice!, metadata: { ...slice!.metadata, deletionTimestamp: new Date(0) } };
    const plan = planEndpointSlices(v4(range(2)), [dying], OPTS);
    assert.deepEqual(names(plan.create), ["web-ipv4-2"]);
    assert.equal(plan.delete.length, 0);
  });

  it("rewrites a slice whose labels drifted", () => {
    const [slice] = publish(v4(range(2)));
    const drifted = {
      ...slice!,
      metadata: { ...slice!.metadata, labels: { "kubernetes.io/service-name": SVC } },
    };
    const plan = planEndpointSlices(v4(range(2)), [drifted], OPTS);
    assert.equal(plan.update.length, 1);
    assert.deepEqual(plan.update[0]?.metadata?.labels, sliceLabels(SVC));
  });

  it("leaves extra labels and owner references of others alone", () => {
    const [slice] = publish(v4(range(2)));
    const extra = {
      ...slice!,
      metadata: {
        ...slice!.metadata,
        labels: { ...slice!.metadata?.labels, team: "a" },
        ownerReferences: [
          ...(slice!.metadata?.ownerReferences ?? []),
          { ...OWNER, uid: "x", controller: false },
        ],
      },
    };
    assert.ok(isEmptyPlan(planEndpointSlices(v4(range(2)), [extra], OPTS)));
  });

  it("avoids names that are taken by slices Roster does not manage", () => {
    const plan = planEndpointSlices(v4(range(150)), [], {
      ...OPTS,
      takenNames: ["web-ipv4-1", "web-ipv4-3"],
    });
    assert.deepEqual(names(plan.create), ["web-ipv4-2", "web-ipv4-4"]);
  });

  it("shrinks slices over a lowered maximum", () => {
    const slices = publish(v4(range(150)), { ...OPTS, maxEndpointsPerSlice: 1000 });
    assert.deepEqual(sizes(slices), [150]);
    const plan = planEndpointSlices(v4(range(150)), slices, OPTS);
    assert.deepEqual(sizes(plan.update), [100]);
    assert.deepEqual(sizes(plan.create), [50]);
    assert.equal(plan.stats.endpointsAdded, 0);
  });

  it("removes duplicate endpoints from existing slices", () => {
    const [slice] = publish(v4(range(3)));
    const dup = { ...slice!, endpoints: [...(slice!.endpoints ?? []), slice!.endpoints![0]!] };
    const plan = planEndpointSlices(v4(range(3)), [dup], OPTS);
    assert.deepEqual(sizes(plan.update), [3]);
  });

  it("honours maxEndpointsPerSlice and rejects out-of-range values", () => {
    assert.deepEqual(
      sizes(planEndpointSlices(v4(range(25)), [], { ...OPTS, maxEndpointsPerSlice: 10 }).create),
      [10, 10, 5],
    );
    for (const bad of [0, 1001, 2.5]) {
      assert.throws(() => planEndpointSlices(v4([]), [], { ...OPTS, maxEndpointsPerSlice: bad }), RangeError);
    }
  });

  it("gives equal plans for equal inputs in any order", () => {
    const slices = publish(v4(range(120)));
    const desired = v4([...range(100), ...range(30, 500)]);
    const reversed: DesiredSliceEndpoints = { IPv4: [...desired.IPv4].reverse(), IPv6: [] };
    assert.deepEqual(
      planEndpointSlices(desired, slices, OPTS),
      planEndpointSlices(reversed, [...slices].reverse(), OPTS),
    );
  });
});

// ---------------------------------------------------------------------------
// Properties

interface EpSpec {
  addr: number;
  v6: boolean;
  ready: boolean;
  zone: number;
  altPort: boolean;
}

const epSpec = fc.record({
  addr: fc.integer({ min: 0, max: 60 }),
  v6: fc.boolean(),
  ready: fc.boolean(),
  zone: fc.integer({ min: 0, max: 2 }),
  altPort: fc.boolean(),
});

function toDesired(specs: readonly EpSpec[]): DesiredSliceEndpoints {
  const out: DesiredSliceEndpoints = { IPv4: [], IPv6: [] };
  const seen = new Set<string>();
  for (const s of specs) {
    const address = s.v6 ? ip6(s.addr) : ip4(s.addr);
    if (seen.has(address)) continue;
    seen.add(address);
    const ep = sliceEp(address, {
      ready: s.ready,
      ...(s.zone > 0 ? { zone: `z${s.zone}` } : {}),
      ...(s.altPort ? { port: 9090 } : {}),
    });
    out[s.v6 ? "IPv6" : "IPv4"].push(ep);
  }
  return out;
}

/** Every desired endpoint appears exactly once, with its content, in a slice of its family and ports. */
function assertRealizes(
  slices: readonly V1EndpointSlice[],
  desired: DesiredSliceEndpoints,
  max: number,
): void {
  const want = new Map<string, { fp: string; family: string; ports: string }>();
  for (const family of ["IPv4", "IPv6"] as const) {
    for (const e of desired[family]) {
      want.set(endpointKey(e.endpoint), {
        fp: endpointFingerprint(e.endpoint),
        family,
        ports: JSON.stringify(normalizeSlicePorts(e.ports)),
      });
    }
  }
  const seen = new Set<string>();
  for (const s of slices) {
    const n = s.endpoints?.length ?? 0;
    assert.ok(n <= max, `slice ${s.metadata?.name} holds ${n} > ${max}`);
    assert.ok(n > 0, `slice ${s.metadata?.name} is empty`);
    for (const e of s.endpoints ?? []) {
      const key = endpointKey(e);
      const w = want.get(key);
      assert.ok(w, `unexpected endpoint ${key} in ${s.metadata?.name}`);
      assert.ok(!seen.has(key), `endpoint ${key} appears twice`);
      seen.add(key);
      assert.equal(endpointFingerprint(e), w.fp);
      assert.equal(s.addressType, w.family);
      assert.equal(JSON.stringify(normalizeSlicePorts(s.ports)), w.ports);
    }
  }
  assert.equal(seen.size, want.size, "every desired endpoint is published");
}

describe("endpoint equality", () => {
  it("sameEndpoint agrees with fingerprint equality", () => {
    const ep = fc.record({
      addresses: fc.uniqueArray(fc.constantFrom("10.0.0.1", "10.0.0.2", "10.0.0.3"), {
        minLength: 1,
        maxLength: 3,
      }),
      conditions: fc.record(
        { ready: fc.boolean(), serving: fc.boolean(), terminating: fc.boolean() },
        { requiredKeys: [] },
      ),
      zone: fc.option(fc.constantFrom("a", "b"), { nil: undefined }),
      hints: fc.option(
        fc.record({ forZones: fc.array(fc.record({ name: fc.constantFrom("a", "b") }), { maxLength: 2 }) }),
        { nil: undefined },
      ),
      targetRef: fc.option(fc.record({ name: fc.constantFrom("x", "y"), namespace: fc.constant(NS) }), {
        nil: undefined,
      }),
    });
    fc.assert(
      fc.property(ep, ep, (a, b) => {
        assert.equal(sameEndpoint(a, b), endpointFingerprint(a) === endpointFingerprint(b));
        assert.ok(sameEndpoint(a, { ...a, addresses: [...a.addresses].reverse() }));
      }),
      { numRuns: 500 },
    );
  });
});

describe("planEndpointSlices: properties", () => {
  const scenario = fc.record({
    before: fc.array(epSpec, { maxLength: 80 }),
    after: fc.array(epSpec, { maxLength: 80 }),
    max: fc.integer({ min: 1, max: 12 }),
  });

  it("realizes the desired set, stays under the maximum, and converges in one plan", () => {
    fc.assert(
      fc.property(scenario, ({ before, after, max }) => {
        const opts = { ...OPTS, maxEndpointsPerSlice: max };
        const existing = publish(toDesired(before), opts);
        assertRealizes(existing, toDesired(before), max);
        const desired = toDesired(after);
        const plan = planEndpointSlices(desired, existing, opts);
        const next = applySlicePlan(existing, plan);
        assertRealizes(next, desired, max);
        const again = planEndpointSlices(desired, next, opts);
        assert.ok(isEmptyPlan(again), `second plan not empty: ${JSON.stringify(again.stats)}`);
        const names = new Set([...plan.create, ...plan.update, ...plan.delete].map((s) => s.metadata?.name));
        assert.equal(names.size, writes(plan), "a slice is written at most once per plan");
      }),
      { numRuns: 300 },
    );
  });

  it("recovers from arbitrary existing slices (duplicates, over-full, foreign owners, bad labels)", () => {
    const junkSlice = fc.record({
      specs: fc.array(epSpec, { maxLength: 30 }),
      owned: fc.boolean(),
      labelled: fc.boolean(),
      v6: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(junkSlice, { maxLength: 6 }),
        fc.array(epSpec, { maxLength: 60 }),
        fc.integer({ min: 1, max: 10 }),
        (junk, after, max) => {
          const existing: V1EndpointSlice[] = junk.map((j, i) => {
            const family = j.v6 ? "IPv6" : "IPv4";
            const eps = toDesired(j.specs.map((s) => ({ ...s, v6: j.v6 })))[family];
            return {
              addressType: family,
              metadata: {
                name: `junk-${i}`,
                labels: j.labelled ? sliceLabels(SVC) : {},
                ownerReferences: [j.owned ? OWNER : { ...OWNER, uid: "other" }],
              },
              ports: eps[0]?.ports ?? [],
              endpoints: [...eps, ...eps.slice(0, 2)].map((e) => e.endpoint),
            };
          });
          const opts = { ...OPTS, maxEndpointsPerSlice: max };
          const desired = toDesired(after);
          const next = applySlicePlan(existing, planEndpointSlices(desired, existing, opts));
          assertRealizes(next, desired, max);
          assert.ok(isEmptyPlan(planEndpointSlices(desired, next, opts)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("rewrites exactly one slice when one endpoint's conditions change", () => {
    fc.assert(
      fc.property(fc.array(epSpec, { minLength: 1, maxLength: 80 }), fc.nat(), (specs, pick) => {
        const before = toDesired(specs);
        const existing = publish(before);
        const family = before.IPv4.length > 0 ? "IPv4" : "IPv6";
        const list = before[family];
        const i = pick % list.length;
        const target = list[i]!;
        const ready = !target.endpoint.conditions?.ready;
        const changed = {
          ...target,
          endpoint: { ...target.endpoint, conditions: { ready, serving: ready, terminating: !ready } },
        };
        const after = { ...before, [family]: list.map((e, j) => (j === i ? changed : e)) };
        const plan = planEndpointSlices(after, existing, OPTS);
        assert.equal(plan.update.length, 1);
        assert.equal(plan.create.length + plan.delete.length, 0);
      }),
      { numRuns: 200 },
    );
  });
});
