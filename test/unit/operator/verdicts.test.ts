import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ProbeEngine, TargetSummary } from "../../../src/health/index.ts";
import { engineVerdicts } from "../../../src/operator/verdicts.ts";

function fakeEngine(summaries: Record<string, TargetSummary>): ProbeEngine {
  return { summary: (id: string) => summaries[id] } as unknown as ProbeEngine;
}

const summary: TargetSummary = {
  id: "shop/web-1",
  verdict: "Healthy",
  reason: "ProbeSucceeded",
  message: "ok",
  since: 5,
  addresses: [
    { address: "192.0.2.1", verdict: "Healthy", reason: "ProbeSucceeded", message: "ok", since: 5 },
  ],
};

describe("engineVerdicts", () => {
  it("reads the engine's summary and tells listeners about the first probe once", () => {
    const v = engineVerdicts();
    v.attach(fakeEngine({ "shop/web-1": summary }));
    const seen: string[] = [];
    v.subscribe((key, t) => seen.push(`${key}:${t ? t.to : "probe"}`));
    assert.equal(v.get("shop/web-1")?.probed, false);
    v.onProbe({ id: "shop/web-1" });
    v.onProbe({ id: "shop/web-1" });
    assert.deepEqual(seen, ["shop/web-1:probe"]);
    assert.deepEqual(v.get("shop/web-1"), {
      verdict: "Healthy",
      reason: "ProbeSucceeded",
      message: "ok",
      since: 5,
      addresses: [{ address: "192.0.2.1", verdict: "Healthy" }],
      probed: true,
    });
    assert.equal(v.get("shop/other"), undefined);
  });

  it("a transition counts as probed (whichever of the two hooks comes first)", () => {
    const v = engineVerdicts();
    v.attach(fakeEngine({ "shop/web-1": summary }));
    v.onTransition({
      id: "shop/web-1",
      from: "Unknown",
      to: "Healthy",
      reason: "Registered",
      message: "",
      at: 1,
    });
    assert.equal(v.get("shop/web-1")?.probed, true);
    v.forget("shop/web-1");
    assert.equal(v.get("shop/web-1")?.probed, false);
  });

  it("unsubscribes", () => {
    const v = engineVerdicts();
    let calls = 0;
    const off = v.subscribe(() => calls++);
    v.onProbe({ id: "a" });
    off();
    v.onProbe({ id: "b" });
    assert.equal(calls, 1);
  });
});
