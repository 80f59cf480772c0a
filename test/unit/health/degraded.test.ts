// The pure rules of the Degraded state (issue 19): verdict thresholds, the
// published weight, and xDS health status.
import assert from "node:assert/strict";
import { test } from "node:test";
import { degraded, ok, withLatency } from "../../../src/health/reasons.ts";
import { initialVerdict, normalizeConfig, step, type VerdictState } from "../../../src/health/verdict.ts";
import { publishedWeight } from "../../../src/publish/desired.ts";
import { healthStatus } from "../../../src/xds/resources.ts";

const config = normalizeConfig({ failureThreshold: 3, successThreshold: 2 });
const slow = degraded("SlowResponse", "slow");
const fine = ok("HTTP 200");

function run(inputs: (typeof slow)[], from: VerdictState = initialVerdict(0)): VerdictState {
  let s = from;
  for (const [i, input] of inputs.entries()) s = step(s, input, i + 1, config).state;
  return s;
}

test("a verdict turning Healthy on a degraded result is degraded at once", () => {
  const s = run([slow, slow]);
  assert.equal(s.verdict, "Healthy");
  assert.equal(s.degraded?.reason, "SlowResponse");
});

test("a Healthy verdict degrades after failureThreshold impaired results and recovers after successThreshold clean ones", () => {
  const healthy = run([fine, fine]);
  assert.equal(healthy.degraded, undefined);
  assert.equal(run([slow, slow], healthy).degraded, undefined, "two of three is not enough");
  const d = run([slow, slow, slow], healthy);
  assert.equal(d.degraded?.reason, "SlowResponse");
  const r = step(d, slow, 10, config);
  assert.equal(r.change, undefined, "staying degraded is no transition");
  assert.ok(run([fine], d).degraded, "one clean success is not enough");
  const back = step(run([fine], d), fine, 20, config);
  assert.equal(back.state.degraded, undefined);
  assert.deepEqual(
    { from: back.change?.from, to: back.change?.to, degraded: back.change?.degraded },
    { from: "Healthy", to: "Healthy", degraded: undefined },
  );
});

test("an Unhealthy verdict is never degraded", () => {
  const s = run([fine, fine, slow, slow, slow, { ok: false, reason: "Timeout", message: "t" }]);
  assert.equal(s.verdict, "Healthy");
  const u = run(
    [
      { ok: false, reason: "Timeout", message: "t" },
      { ok: false, reason: "Timeout", message: "t" },
    ],
    s,
  );
  assert.equal(u.verdict, "Unhealthy");
  assert.equal(u.degraded, undefined);
});

test("withLatency: a plain success slower than degradedLatency is SlowResponse", () => {
  assert.equal(withLatency(fine, 300, 200).reason, "SlowResponse");
  assert.equal(withLatency(fine, 100, 200), fine);
  assert.equal(withLatency(fine, 300, undefined), fine);
});

test("publishedWeight: reduced only while healthy and degraded, never rounded to 0", () => {
  const base = { name: "a", addresses: [], ports: [], weight: 100, verdict: "Healthy" as const };
  const policy = { panicThreshold: 0, degradedWeightPercent: 50 };
  assert.equal(publishedWeight(base, policy), 100);
  assert.equal(publishedWeight({ ...base, degraded: true }, policy), 50);
  assert.equal(publishedWeight({ ...base, degraded: true, weight: 1 }, policy), 1);
  assert.equal(publishedWeight({ ...base, degraded: true }, { ...policy, degradedWeightPercent: 0 }), 0);
  assert.equal(publishedWeight({ ...base, degraded: true, verdict: "Unhealthy" }, policy), 100);
});

test("xDS: a degraded Ready endpoint is DEGRADED for Envoy and HEALTHY for gRPC", () => {
  assert.equal(healthStatus("Ready", true, "envoy"), "DEGRADED");
  assert.equal(healthStatus("Ready", true, "grpc"), "HEALTHY");
  assert.equal(healthStatus("Ready", false, "envoy"), "HEALTHY");
  assert.equal(healthStatus("Draining", true, "envoy"), "DRAINING");
});
