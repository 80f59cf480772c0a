/**
 * The slow-start weight (slowStartWeight in src/api/published.ts): the one
 * definition of the ramp clients balance by. Golden vectors are checked
 * against the committed file from first principles (the formula written
 * out again here), and properties hold for any parameters.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  formatPublishedTime,
  type PublishedSlowStart,
  slowStartEnd,
  slowStartFactor,
  slowStartWeight,
} from "../../../src/api/published.ts";
import { type ConformanceVectors, VECTORS_FILE } from "../../../src/balance/vectors.ts";

const vectors = JSON.parse(
  readFileSync(new URL(`../../../schemas/${VECTORS_FILE}`, import.meta.url), "utf8"),
) as ConformanceVectors;

const SINCE = "2030-01-01T00:00:00Z";
const T = Date.parse(SINCE);
const linear: PublishedSlowStart = { windowMs: 60_000, aggression: 1, minWeightPercent: 10 };

const params = fc.record({
  windowMs: fc.integer({ min: 1000, max: 86_400_000 }),
  aggression: fc.double({ min: 0.01, max: 100, noNaN: true }),
  minWeightPercent: fc.double({ min: 0, max: 100, noNaN: true }),
});

describe("slowStartWeight", () => {
  test("golden vectors: Envoy's formula, rounded to nearest, at least 1", () => {
    assert.ok(vectors.slowStart.length >= 15);
    for (const v of vectors.slowStart) {
      const ss = { windowMs: v.windowMs, aggression: v.aggression, minWeightPercent: v.minWeightPercent };
      const elapsed = v.nowMs - Date.parse(v.slowStartSince);
      const envoy =
        elapsed >= v.windowMs
          ? 1
          : Math.max(
              v.minWeightPercent / 100,
              (Math.max(elapsed / 1000, 1) / (v.windowMs / 1000)) ** (1 / v.aggression),
            );
      assert.ok(Math.abs(envoy - v.factor) < 1e-12, `${v.name}: factor ${v.factor}, formula ${envoy}`);
      assert.equal(slowStartFactor(elapsed, ss), v.factor, v.name);
      assert.equal(
        slowStartWeight({ weight: v.weight, slowStartSince: v.slowStartSince }, ss, v.nowMs),
        v.result,
        v.name,
      );
      const exact = v.weight * Math.min(1, v.factor);
      assert.equal(v.result, v.weight === 0 ? 0 : Math.max(1, Math.round(exact)), v.name);
    }
    const named = (n: string) => vectors.slowStart.find((v) => v.name === n)!.result;
    assert.deepEqual(
      [named("linear/start"), named("linear/quarter"), named("linear/half"), named("linear/end")],
      [10, 25, 50, 100],
    );
    assert.equal(named("aggressive-2/quarter"), 50, "aggression 2: the square root of the time factor");
    assert.equal(named("gentle-0.5/half"), 25, "aggression 0.5: its square");
  });

  test("no ramp: no slow start, no slowStartSince, weight 0, or an unreadable time", () => {
    assert.equal(slowStartWeight({ weight: 100, slowStartSince: SINCE }, undefined, T), 100);
    assert.equal(slowStartWeight({ weight: 100 }, linear, T), 100);
    assert.equal(slowStartWeight({ weight: 0, slowStartSince: SINCE }, linear, T), 0);
    assert.equal(slowStartWeight({ weight: 100, slowStartSince: "yesterday" }, linear, T), 100);
    assert.equal(slowStartEnd({ slowStartSince: SINCE }, linear), T + 60_000);
    assert.equal(slowStartEnd({}, linear), undefined);
    assert.equal(formatPublishedTime(T + 999), SINCE, "whole seconds");
  });

  test("properties: between the floor and the weight, never 0, monotonic in time, full after the window", () => {
    fc.assert(
      fc.property(
        params,
        fc.integer({ min: 1, max: 10000 }),
        fc.integer({ min: -60_000, max: 90_000_000 }),
        fc.integer({ min: 0, max: 90_000_000 }),
        (ss, weight, elapsed, later) => {
          const at = (e: number) => slowStartWeight({ weight, slowStartSince: SINCE }, ss, T + e);
          const w = at(elapsed);
          assert.ok(Number.isInteger(w) && w >= 1 && w <= weight, `weight ${w} of ${weight}`);
          const floor = Math.max(1, Math.round((weight * Math.min(100, ss.minWeightPercent)) / 100));
          assert.ok(w >= floor || elapsed >= ss.windowMs, `${w} under the floor ${floor}`);
          assert.ok(at(elapsed + later) >= w, "never decreases as time passes");
          if (elapsed >= ss.windowMs) assert.equal(w, weight);
          const f = slowStartFactor(elapsed, ss);
          assert.ok(f >= 0 && f <= 1, "a share (it may underflow to 0: the weight stays 1)");
        },
      ),
    );
  });

  test("properties: more aggression ramps faster, a higher floor never lowers the weight", () => {
    fc.assert(
      fc.property(
        params,
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.integer({ min: 0, max: 86_400_000 }),
        (ss, k, elapsed) => {
          const faster = { ...ss, aggression: Math.min(100, ss.aggression * k) };
          assert.ok(slowStartFactor(elapsed, faster) >= slowStartFactor(elapsed, ss) - 1e-12);
          const higher = { ...ss, minWeightPercent: Math.min(100, ss.minWeightPercent + 10) };
          assert.ok(slowStartFactor(elapsed, higher) >= slowStartFactor(elapsed, ss));
        },
      ),
    );
  });
});
