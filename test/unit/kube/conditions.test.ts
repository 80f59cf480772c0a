import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  type Condition,
  findCondition,
  isConditionTrue,
  metaTime,
  removeCondition,
  setCondition,
} from "../../../src/kube/conditions.ts";

const t0 = Date.parse("2026-01-01T00:00:00Z");

describe("conditions", () => {
  test("a new condition gets lastTransitionTime now, at second precision", () => {
    const c = setCondition(
      undefined,
      { type: "Ready", status: "True", reason: "Probed", message: "ok" },
      t0 + 1234,
    );
    assert.deepEqual(c, [
      {
        type: "Ready",
        status: "True",
        reason: "Probed",
        message: "ok",
        lastTransitionTime: "2026-01-01T00:00:01Z",
      },
    ]);
  });

  test("lastTransitionTime changes only when the status flips", () => {
    let c = setCondition(undefined, { type: "Ready", status: "True", reason: "A", message: "m" }, t0);
    c = setCondition(
      c,
      { type: "Ready", status: "True", reason: "B", message: "other", observedGeneration: 4 },
      t0 + 60_000,
    );
    assert.equal(findCondition(c, "Ready")!.lastTransitionTime, metaTime(t0));
    assert.equal(findCondition(c, "Ready")!.reason, "B");
    assert.equal(findCondition(c, "Ready")!.observedGeneration, 4);
    c = setCondition(c, { type: "Ready", status: "False", reason: "Down", message: "x" }, t0 + 120_000);
    assert.equal(findCondition(c, "Ready")!.lastTransitionTime, metaTime(t0 + 120_000));
    assert.equal(findCondition(c, "Ready")!.observedGeneration, 4, "kept when not given");
    assert.equal(isConditionTrue(c, "Ready"), false);
  });

  test("no change returns the same array; other conditions keep their order; input is not mutated", () => {
    const a = setCondition(undefined, { type: "A", status: "True", reason: "R", message: "" }, t0);
    const ab = setCondition(a, { type: "B", status: "False", reason: "R", message: "" }, t0);
    const frozen = structuredClone(ab);
    assert.equal(setCondition(ab, { type: "A", status: "True", reason: "R", message: "" }, t0 + 5000), ab);
    const changed = setCondition(ab, { type: "A", status: "False", reason: "R", message: "" }, t0 + 5000);
    assert.deepEqual(
      changed.map((c) => c.type),
      ["A", "B"],
    );
    assert.deepEqual(ab, frozen);
    assert.deepEqual(
      removeCondition(changed, "A").map((c) => c.type),
      ["B"],
    );
    assert.equal(removeCondition(changed, "Z"), changed);
  });

  test("property: lastTransitionTime is the time of the last status flip", () => {
    const step = fc.record({
      status: fc.constantFrom("True", "False", "Unknown" as const),
      reason: fc.constantFrom("A", "B"),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
        let conds: Condition[] | undefined;
        let lastFlip = -1;
        let prev: string | undefined;
        steps.forEach((s, i) => {
          const now = t0 + i * 1000;
          conds = setCondition(
            conds,
            { type: "Ready", status: s.status, reason: s.reason, message: "" },
            now,
          );
          if (s.status !== prev) lastFlip = now;
          prev = s.status;
        });
        assert.equal(findCondition(conds, "Ready")!.lastTransitionTime, metaTime(lastFlip));
      }),
    );
  });
});
