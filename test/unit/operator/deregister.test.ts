import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { metaTime } from "../../../src/kube/index.ts";
import { type DeregisterInput, deregisterDecision } from "../../../src/operator/instances.ts";
import { T0 } from "./fixtures.ts";

const MINUTE = 60_000;

function decide(input: Partial<DeregisterInput>) {
  return deregisterDecision({
    deregisterAfterMs: 10 * MINUTE,
    healthy: false,
    lastTransitionTime: metaTime(T0 - 15 * MINUTE),
    verdict: "Unhealthy",
    blocked: false,
    now: T0,
    ...input,
  });
}

describe("deregisterDecision", () => {
  it("deletes after deregisterAfter of recorded unhealthiness, on a fresh Unhealthy verdict", () => {
    assert.deepEqual(decide({}), { action: "delete" });
    assert.deepEqual(decide({ lastTransitionTime: metaTime(T0 - 10 * MINUTE) }), { action: "delete" });
  });

  it("waits for the rest of the time", () => {
    assert.deepEqual(decide({ lastTransitionTime: metaTime(T0 - 4 * MINUTE) }), {
      action: "wait",
      afterMs: 6 * MINUTE,
    });
    // No recorded time (yet): counts from now.
    assert.deepEqual(decide({ lastTransitionTime: undefined }), { action: "wait", afterMs: 10 * MINUTE });
  });

  it("keeps instances when off, healthy, blocked, or without a fresh verdict", () => {
    assert.deepEqual(decide({ deregisterAfterMs: undefined }), { action: "keep" });
    assert.deepEqual(decide({ healthy: true }), { action: "keep" });
    assert.deepEqual(decide({ healthy: undefined }), { action: "keep" });
    assert.deepEqual(decide({ blocked: true }), { action: "keep" }, "a configuration problem is no failure");
    // Recorded unhealthy long ago, but this process has not probed it yet
    // (e.g. right after a restart): it may have recovered meanwhile.
    assert.deepEqual(decide({ verdict: undefined }), { action: "keep" });
    assert.deepEqual(decide({ verdict: "Unknown" }), { action: "keep" });
    assert.deepEqual(decide({ verdict: "Healthy" }), { action: "keep" });
  });
});
