/**
 * The committed conformance vectors (schemas/balance-vectors.v1.json) are what
 * clients in other languages are tested against. This file checks every
 * vector against the TypeScript balancers, independently of the generator,
 * and that the committed file is what the generator writes today.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  createBalancer,
  createMaglev,
  createRingHash,
  createSmoothWeightedRoundRobin,
  maglevTableSize,
  murmur3,
  murmur3Bytes,
  ringPointCounts,
} from "../../../src/balance/index.ts";
import {
  type ConformanceVectors,
  renderConformanceVectors,
  VECTORS_FILE,
} from "../../../src/balance/vectors.ts";

const path = new URL(`../../../schemas/${VECTORS_FILE}`, import.meta.url);
const text = readFileSync(path, "utf8");
const vectors = JSON.parse(text) as ConformanceVectors;
const noRng = (): number => 0.5;
const enc = new TextEncoder();

describe("conformance vectors", () => {
  test("the committed file is current (npm run gen:schemas)", () => {
    assert.equal(text, renderConformanceVectors());
  });

  test("murmur3: string and byte versions give every committed value", () => {
    assert.ok(vectors.murmur3.length >= 50);
    for (const v of vectors.murmur3) {
      assert.equal(Buffer.from(v.utf8, "hex").toString("utf8"), v.input);
      assert.equal(murmur3(v.input, v.seed), v.hash, `murmur3(${JSON.stringify(v.input)}, ${v.seed})`);
      assert.equal(murmur3Bytes(Buffer.from(v.utf8, "hex"), v.seed), v.hash);
    }
    // Well-known published values of murmur3_x86_32 pin the algorithm itself.
    const known = (s: string, seed: number) =>
      vectors.murmur3.find((v) => v.input === s && v.seed === seed)?.hash;
    assert.equal(known("", 1), 0x514e28b7);
    assert.equal(known("a", 0), 0x3c2569b2);
  });

  test("ring: point counts, points and lookups", () => {
    for (const v of vectors.ring) {
      const options = { vnodes: v.vnodes, minRingSize: v.minRingSize, maxRingSize: v.maxRingSize };
      assert.deepEqual([...ringPointCounts(v.weights, options)], v.counts, v.name);
      const ring = createRingHash(v.ids, v.weights, noRng, options);
      assert.equal(
        ring.size,
        v.counts.reduce((a, b) => a + b, 0),
        v.name,
      );
      if (v.points) {
        assert.equal(v.points.length, ring.size);
        for (const [hash, owner] of v.points) {
          const id = enc.encode(v.ids[owner]!);
          const seeds = Array.from({ length: v.counts[owner]! }, (_, s) => murmur3Bytes(id, s));
          assert.ok(seeds.includes(hash), `${v.name}: point ${hash} of ${v.ids[owner]}`);
        }
      }
      for (const l of v.lookups) {
        assert.equal(murmur3(l.key, 0), l.hash);
        assert.equal(v.ids[ring.pick(l.key)], l.endpoint, `${v.name}: key ${JSON.stringify(l.key)}`);
        if (v.points) {
          // The rule itself: the first point at or after the key's hash, wrapping.
          const at = v.points.find(([h]) => h >= l.hash) ?? v.points[0]!;
          assert.equal(v.ids[at[1]], l.endpoint);
        }
      }
    }
  });

  test("maglev: permutations, tables and lookups", () => {
    for (const v of vectors.maglev) {
      assert.equal(maglevTableSize(v.ids.length, v.requestedTableSize), v.tableSize, v.name);
      const m = createMaglev(v.ids, v.weights, noRng, { tableSize: v.requestedTableSize });
      assert.equal(m.size, v.tableSize);
      for (const [i, id] of v.ids.entries()) {
        assert.equal(murmur3(id, 0xa5a5a5a5) % v.tableSize, v.permutations[i]!.offset);
        assert.equal((murmur3(id, 0x5a5a5a5a) % (v.tableSize - 1)) + 1, v.permutations[i]!.skip);
      }
      if (v.table) assert.deepEqual([...m.table], v.table, v.name);
      for (const l of v.lookups) {
        assert.equal(v.ids[m.pick(l.key)], l.endpoint, `${v.name}: key ${JSON.stringify(l.key)}`);
        if (v.table) assert.equal(v.ids[v.table[l.hash % v.tableSize]!], l.endpoint);
      }
    }
  });

  test("smooth weighted round robin: two periods of picks", () => {
    for (const v of vectors.smoothWeightedRoundRobin) {
      const wrr = createSmoothWeightedRoundRobin(v.weights);
      assert.equal(wrr.period, v.period);
      assert.deepEqual(
        Array.from({ length: v.sequence.length }, () => wrr.pick()),
        v.sequence,
        v.name,
      );
    }
  });

  test("the client's balancer maps the vector keys the same way (default ring, Maglev 65537)", () => {
    const endpoints = (ids: string[], weights: number[]) =>
      ids.map((id, i) => ({ id, weight: weights[i]!, healthy: true, draining: false }));
    for (const v of vectors.ring.filter(
      (r) => r.vnodes === 100 && r.minRingSize === 0 && r.maxRingSize === 262144,
    )) {
      // Endpoints arrive in any order; the balancer sorts by id.
      const b = createBalancer(endpoints(v.ids, v.weights).reverse(), {
        strategy: "ConsistentHash",
        consistentHash: { algorithm: "ring" },
      });
      for (const l of v.lookups) assert.equal(b.pick({ key: l.key })?.endpoint.id, l.endpoint, v.name);
    }
    for (const v of vectors.maglev.filter((r) => r.requestedTableSize === 65537)) {
      const b = createBalancer(endpoints(v.ids, v.weights).reverse(), {
        strategy: "ConsistentHash",
        consistentHash: { algorithm: "maglev", tableSize: 65537 },
      });
      for (const l of v.lookups) assert.equal(b.pick({ key: l.key })?.endpoint.id, l.endpoint, v.name);
    }
  });
});
