import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  PUBLISHED_DATA_KEY,
  type PublishedEndpoint,
  type PublishedEndpoints,
  PublishedFormatError,
  parsePublishedEndpoints,
  readRevision,
  safeParsePublishedEndpoints,
  samePublishedContent,
  serializePublishedEndpoints,
} from "../../../src/api/published.ts";

function endpoint(over: Partial<PublishedEndpoint> = {}): PublishedEndpoint {
  return {
    instance: "web-1",
    address: "10.0.0.1",
    family: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    weight: 100,
    zone: "eu-1a",
    tags: ["blue"],
    metadata: { version: "1.2.3" },
    state: "Ready",
    ready: true,
    healthy: true,
    ...over,
  };
}

function doc(over: Partial<PublishedEndpoints> = {}): PublishedEndpoints {
  return {
    formatVersion: 1,
    revision: 3,
    namespace: "shop",
    service: "web",
    panic: false,
    loadBalancing: { strategy: "WeightedRoundRobin", zoneAware: false },
    endpoints: [
      endpoint(),
      endpoint({
        instance: "web-2",
        address: "2001:db8::2",
        family: "IPv6",
        state: "Draining",
        ready: false,
      }),
    ],
    ...over,
  };
}

function errorOf(input: Parameters<typeof safeParsePublishedEndpoints>[0]): PublishedFormatError {
  const r = safeParsePublishedEndpoints(input);
  assert.ok(!r.ok, "expected a parse failure");
  return r.error;
}

describe("published endpoints document", () => {
  it("round-trips through serialize and parse, from ConfigMap data or text", () => {
    const d = doc({
      loadBalancing: {
        strategy: "ConsistentHash",
        zoneAware: true,
        consistentHash: { algorithm: "Maglev", tableSize: 65537, key: { source: "Header", name: "x-user" } },
      },
    });
    const text = serializePublishedEndpoints(d);
    assert.deepEqual(parsePublishedEndpoints({ [PUBLISHED_DATA_KEY]: text }), d);
    assert.deepEqual(parsePublishedEndpoints(text), d);
  });

  it("serializes equal content to equal bytes whatever the order", () => {
    const ep = fc.record({
      instance: fc.constantFrom("a", "b", "c", "d"),
      address: fc.constantFrom("10.0.0.1", "10.0.0.2", "2001:db8::1"),
      tags: fc.uniqueArray(fc.constantFrom("x", "y", "z")),
      metadata: fc.dictionary(fc.constantFrom("k1", "k2", "k3"), fc.string({ maxLength: 3 })),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(ep, { selector: (e) => `${e.instance}/${e.address}` }),
        fc.nat(),
        (eps, seed) => {
          const endpoints = eps.map((e) =>
            endpoint({ ...e, family: e.address.includes(":") ? "IPv6" : "IPv4", ports: [] }),
          );
          for (const e of endpoints) {
            e.ports = [
              { name: "http", port: 80, protocol: "TCP" },
              { name: "grpc", port: 90, protocol: "TCP" },
            ];
          }
          const shuffled = endpoints
            .map((e, i) => ({ e, k: (i * 7919 + seed) % 101 }))
            .sort((a, b) => a.k - b.k)
            .map(({ e }) => ({
              ...e,
              tags: [...e.tags].reverse(),
              ports: [...e.ports].reverse(),
              metadata: Object.fromEntries(Object.entries(e.metadata).reverse()),
            }));
          const a = serializePublishedEndpoints(doc({ endpoints }));
          const b = serializePublishedEndpoints(doc({ endpoints: shuffled }));
          assert.equal(a, b);
          assert.ok(safeParsePublishedEndpoints(a).ok);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("writes one endpoint per line, header first", () => {
    const lines = serializePublishedEndpoints(doc()).split("\n");
    assert.equal(lines[1], '  "formatVersion": 1,');
    assert.equal(lines[2], '  "revision": 3,');
    assert.equal(lines.filter((l) => l.startsWith('    {"address"')).length, 2);
  });

  it("compares content without the revision", () => {
    assert.ok(samePublishedContent(doc({ revision: 1 }), doc({ revision: 9 })));
    assert.ok(!samePublishedContent(doc(), doc({ panic: true })));
  });

  it("rejects a ConfigMap without the data key", () => {
    const e = errorOf({ other: "{}" });
    assert.equal(e.code, "MissingData");
    assert.match(e.message, /endpoints\.json/);
    assert.equal(errorOf(undefined).code, "MissingData");
    assert.equal(errorOf("  ").code, "MissingData");
  });

  it("rejects text that is not JSON or not an object", () => {
    assert.equal(errorOf("{nope").code, "InvalidJson");
    assert.equal(errorOf("[1]").code, "InvalidDocument");
    assert.equal(errorOf("null").code, "InvalidDocument");
  });

  it("rejects unknown major versions clearly", () => {
    const e = errorOf(JSON.stringify({ ...doc(), formatVersion: 2 }));
    assert.equal(e.code, "UnsupportedVersion");
    assert.equal(e.formatVersion, 2);
    assert.match(e.message, /formatVersion 2 is not supported.*upgrade the Roster client/);
    assert.ok(e instanceof PublishedFormatError);
    assert.throws(
      () => parsePublishedEndpoints(JSON.stringify({ ...doc(), formatVersion: 2 })),
      PublishedFormatError,
    );
  });

  it("rejects a missing or malformed formatVersion", () => {
    const { formatVersion: _, ...rest } = doc();
    assert.match(errorOf(JSON.stringify(rest)).message, /no formatVersion/);
    for (const v of ["1", 1.5, 0, -1, null]) {
      assert.equal(
        errorOf(JSON.stringify({ ...doc(), formatVersion: v })).code,
        "InvalidDocument",
        String(v),
      );
    }
  });

  it("rejects invalid documents and names the field", () => {
    const cases: [PublishedEndpoints | Record<string, unknown>, RegExp][] = [
      [{ ...doc(), revision: 0 }, /revision/],
      [doc({ endpoints: [endpoint({ address: "not-an-ip" })] }), /endpoints\[0\]\.address/],
      [doc({ endpoints: [endpoint({ family: "IPv6" })] }), /family IPv6 does not match/],
      [doc({ endpoints: [endpoint({ state: "Unhealthy", ready: true })] }), /contradicts state/],
      [doc({ endpoints: [endpoint({ healthy: false })] }), /state Ready needs healthy/],
      [doc({ endpoints: [endpoint({ weight: 10001 })] }), /weight/],
      [doc({ endpoints: [endpoint({ ports: [] })] }), /ports/],
      [doc({ endpoints: [endpoint(), endpoint()] }), /duplicate endpoint/],
      [
        doc({
          endpoints: [
            endpoint({
              ports: [
                { name: "a", port: 1, protocol: "TCP" },
                { name: "a", port: 2, protocol: "TCP" },
              ],
            }),
          ],
        }),
        /duplicate port name/,
      ],
      [doc({ loadBalancing: { strategy: "ConsistentHash", zoneAware: false } }), /needs consistentHash/],
      [
        doc({
          loadBalancing: {
            strategy: "ConsistentHash",
            zoneAware: false,
            consistentHash: { algorithm: "Ring", tableSize: 1024, key: { source: "Header" } },
          },
        }),
        /needs a name/,
      ],
      [{ ...doc(), loadBalancing: { strategy: "Fastest", zoneAware: false } }, /strategy/],
      [{ ...doc(), endpoints: [{ ...endpoint(), state: "Sleeping" }] }, /state/],
    ];
    for (const [bad, pattern] of cases) {
      const e = errorOf(JSON.stringify(bad));
      assert.equal(e.code, "InvalidDocument");
      assert.match(e.message, pattern);
    }
  });

  it("ignores fields it does not know (additive changes within a major version)", () => {
    const text = JSON.stringify({
      ...doc(),
      futureField: { x: 1 },
      endpoints: doc().endpoints.map((e) => ({ ...e, priority: 3 })),
    });
    const parsed = parsePublishedEndpoints(text);
    assert.deepEqual(parsed, doc());
  });

  it("reads the revision of a document it cannot otherwise read", () => {
    assert.equal(
      readRevision({ [PUBLISHED_DATA_KEY]: JSON.stringify({ formatVersion: 7, revision: 41 }) }),
      41,
    );
    assert.equal(readRevision("garbage"), undefined);
    assert.equal(readRevision(JSON.stringify({ revision: "3" })), undefined);
    assert.equal(readRevision(undefined), undefined);
  });
});
