import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PUBLISH, LoadBalancing, Publish } from "../../../src/api/index.ts";
import { effectivePublish } from "../../../src/operator/effective.ts";
import { publishedHints } from "../../../src/operator/publish-plan.ts";

describe("publishedHints", () => {
  it("strategy and zoneAware; no hash options for other strategies", () => {
    for (const strategy of ["RoundRobin", "WeightedRoundRobin", "LeastConnections", "Random"] as const) {
      assert.deepEqual(publishedHints({ strategy }, DEFAULT_PUBLISH), { strategy, zoneAware: false });
    }
    for (const publish of [{ trafficDistribution: "PreferSameZone" }, { zoneHints: true }]) {
      assert.deepEqual(publishedHints({ strategy: "Random" }, effectivePublish(Publish.parse(publish))), {
        strategy: "Random",
        zoneAware: true,
      });
    }
  });

  it("ConsistentHash without options: Ring of 1024 on the source IP", () => {
    assert.deepEqual(publishedHints({ strategy: "ConsistentHash" }, DEFAULT_PUBLISH).consistentHash, {
      algorithm: "Ring",
      tableSize: 1024,
      key: { source: "SourceIP" },
    });
  });

  it("ConsistentHash: the API defaults, Maglev's table size, explicit values", () => {
    const parsed = LoadBalancing.parse({
      strategy: "ConsistentHash",
      consistentHash: { algorithm: "Maglev" },
    });
    assert.deepEqual(publishedHints(parsed, DEFAULT_PUBLISH).consistentHash, {
      algorithm: "Maglev",
      tableSize: 65537,
      key: { source: "SourceIP" },
    });
    const explicit = LoadBalancing.parse({
      strategy: "ConsistentHash",
      consistentHash: { algorithm: "Ring", tableSize: 4096, key: { source: "Header", name: "x-user" } },
    });
    assert.deepEqual(publishedHints(explicit, DEFAULT_PUBLISH).consistentHash, {
      algorithm: "Ring",
      tableSize: 4096,
      key: { source: "Header", name: "x-user" },
    });
  });
});
