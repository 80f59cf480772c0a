import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { fail, ok, Reason } from "../../../src/health/reasons.ts";
import type { Verdict } from "../../../src/health/types.ts";
import {
  combineResults,
  initialVerdict,
  normalizeConfig,
  overallVerdict,
  step,
  type VerdictConfig,
  type VerdictInput,
  type VerdictState,
} from "../../../src/health/verdict.ts";

const pass: VerdictInput = { ok: true, reason: Reason.ProbeSucceeded, message: "HTTP 200" };
const refused: VerdictInput = {
  ok: false,
  reason: Reason.ConnectionRefused,
  message: "connect ECONNREFUSED",
};

/** Feeds outcomes one second apart; returns the final state and the transitions with their step index. */
function feed(config: VerdictConfig, inputs: VerdictInput[], start = 0) {
  let state: VerdictState = initialVerdict(start);
  const changes: { i: number; from: Verdict; to: Verdict; reason: string }[] = [];
  inputs.forEach((input, i) => {
    const r = step(state, input, start + (i + 1) * 1000, config);
    state = r.state;
    if (r.change) changes.push({ i, from: r.change.from, to: r.change.to, reason: r.change.reason });
  });
  return { state, changes };
}

test("starts Unknown and stays there until a threshold is met", () => {
  const config = normalizeConfig({ failureThreshold: 3, successThreshold: 2 });
  assert.equal(initialVerdict(0).verdict, "Unknown");
  assert.equal(feed(config, [pass]).state.verdict, "Unknown");
  assert.equal(feed(config, [refused, refused]).state.verdict, "Unknown");
  assert.equal(feed(config, [refused, refused, pass, refused, refused]).state.verdict, "Unknown");
  const healthy = feed(config, [pass, pass]);
  assert.equal(healthy.state.verdict, "Healthy");
  assert.deepEqual(healthy.changes, [
    { i: 1, from: "Unknown", to: "Healthy", reason: Reason.ProbeSucceeded },
  ]);
  const unhealthy = feed(config, [refused, refused, refused]);
  assert.deepEqual(unhealthy.changes, [
    { i: 2, from: "Unknown", to: "Unhealthy", reason: Reason.ConnectionRefused },
  ]);
});

test("failureThreshold consecutive failures make a healthy address unhealthy, successThreshold bring it back", () => {
  const config = normalizeConfig({ failureThreshold: 3, successThreshold: 2 });
  const { changes, state } = feed(config, [
    pass,
    pass,
    refused,
    refused,
    pass,
    refused,
    refused,
    refused,
    pass,
    pass,
  ]);
  assert.deepEqual(
    changes.map((c) => [c.i, c.to]),
    [
      [1, "Healthy"],
      [7, "Unhealthy"],
      [9, "Healthy"],
    ],
  );
  assert.equal(state.verdict, "Healthy");
});

test("defaults are failureThreshold 3 and successThreshold 1", () => {
  const config = normalizeConfig({});
  assert.equal(config.failureThreshold, 3);
  assert.equal(config.successThreshold, 1);
  assert.equal(feed(config, [pass]).state.verdict, "Healthy");
});

test("the reason follows the latest outcome that agrees with the verdict", () => {
  const config = normalizeConfig({ failureThreshold: 1 });
  const timeout: VerdictInput = { ok: false, reason: Reason.Timeout, message: "no answer" };
  const { state } = feed(config, [pass, refused, timeout]);
  assert.equal(state.verdict, "Unhealthy");
  assert.equal(state.reason, Reason.Timeout);
  // A success below the threshold does not make an unhealthy address explain itself as succeeding.
  const two = normalizeConfig({ failureThreshold: 1, successThreshold: 2 });
  assert.equal(feed(two, [refused, pass]).state.reason, Reason.ConnectionRefused);
});

test("a definitive outcome meets the threshold at once", () => {
  const config = normalizeConfig({ failureThreshold: 5, successThreshold: 5 });
  const denied: VerdictInput = {
    ok: false,
    reason: Reason.DestinationDenied,
    message: "denied",
    definitive: true,
  };
  assert.equal(feed(config, [denied]).state.verdict, "Unhealthy");
  assert.equal(feed(config, [{ ...pass, definitive: true }]).state.verdict, "Healthy");
});

test("flap damping holds an address unhealthy after too many changes, until stable for the window", () => {
  // Threshold 1 both ways: every alternation is a change of the threshold verdict.
  const config = normalizeConfig({
    failureThreshold: 1,
    successThreshold: 1,
    flapDamping: { maxTransitions: 3, windowMs: 10_000 },
  });
  let state = initialVerdict(0);
  const log: string[] = [];
  const at = (t: number, input: VerdictInput) => {
    const r = step(state, input, t, config);
    state = r.state;
    if (r.change) log.push(`${t}:${r.change.from}->${r.change.to}:${r.change.reason}`);
  };
  at(1000, pass); // Unknown -> Healthy (not counted: the first decision)
  at(2000, refused); // change 1
  at(3000, pass); // change 2
  at(4000, refused); // change 3
  at(5000, pass); // change 4 > 3 within 10 s: damped
  assert.equal(state.verdict, "Unhealthy");
  assert.equal(state.reason, Reason.Flapping);
  assert.equal(state.underlying, "Healthy");
  at(6000, pass);
  at(14_000, pass); // 9 s since the last change: still held
  assert.equal(state.verdict, "Unhealthy");
  at(15_000, pass); // 10 s stable: released
  assert.equal(state.verdict, "Healthy");
  assert.deepEqual(log, [
    "1000:Unknown->Healthy:ProbeSucceeded",
    "2000:Healthy->Unhealthy:ConnectionRefused",
    "3000:Unhealthy->Healthy:ProbeSucceeded",
    "4000:Healthy->Unhealthy:ConnectionRefused",
    "5000:Unhealthy->Unhealthy:Flapping",
    "15000:Unhealthy->Healthy:ProbeSucceeded",
  ]);
});

test("a change while damped restarts the stability window", () => {
  const config = normalizeConfig({
    failureThreshold: 1,
    successThreshold: 1,
    flapDamping: { maxTransitions: 1, windowMs: 10_000 },
  });
  const inputs = [pass, refused, pass]; // 2 changes > 1: damped at t=3000
  let { state } = feed(config, inputs);
  assert.equal(state.reason, Reason.Flapping);
  state = step(state, refused, 9000, config).state; // change at 9 s
  state = step(state, refused, 13_500, config).state; // 4.5 s after: still held
  assert.equal(state.reason, Reason.Flapping);
  const released = step(state, refused, 19_000, config);
  assert.equal(released.state.verdict, "Unhealthy");
  assert.equal(released.state.damped, false);
  assert.equal(released.state.reason, Reason.ConnectionRefused);
  // Leaving damping is reported even though the verdict stays Unhealthy.
  assert.deepEqual(released.change && [released.change.from, released.change.to], ["Unhealthy", "Unhealthy"]);
});

test("changes spread wider than the window are not flapping", () => {
  const config = normalizeConfig({
    failureThreshold: 1,
    successThreshold: 1,
    flapDamping: { maxTransitions: 2, windowMs: 5000 },
  });
  let state = initialVerdict(0);
  for (let i = 1; i <= 20; i++) {
    state = step(state, i % 2 ? pass : refused, i * 3000, config).state;
    assert.notEqual(state.reason, Reason.Flapping, `step ${i}`);
  }
  assert.ok(state.changes.length <= 3, "the change log stays bounded");
});

test("property: without damping, the verdict changes only when a streak reaches its threshold", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.boolean(), { maxLength: 200 }),
      (failureThreshold, successThreshold, oks) => {
        const config = normalizeConfig({ failureThreshold, successThreshold });
        let state = initialVerdict(0);
        oks.forEach((okay, i) => {
          const r = step(state, okay ? pass : refused, i, config);
          if (r.change) {
            assert.equal(r.change.to, okay ? "Healthy" : "Unhealthy");
            assert.equal(
              okay ? r.state.successes : r.state.failures,
              okay ? successThreshold : failureThreshold,
            );
          }
          state = r.state;
        });
      },
    ),
  );
});

test("property: with damping, the published verdict is Unhealthy whenever damped, and the window bounds the changes", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 1, max: 20_000 }),
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 5000 })), { maxLength: 200 }),
      (maxTransitions, windowMs, steps) => {
        const config = normalizeConfig({
          failureThreshold: 1,
          successThreshold: 1,
          flapDamping: { maxTransitions, windowMs },
        });
        let state = initialVerdict(0);
        let t = 0;
        for (const [okay, dt] of steps) {
          t += dt;
          state = step(state, okay ? pass : refused, t, config).state;
          if (state.damped) assert.equal(state.verdict, "Unhealthy");
          else assert.equal(state.verdict, state.underlying);
          assert.ok(state.changes.length <= maxTransitions + 1);
        }
      },
    ),
  );
});

test("combineResults: all needs every probe, any one; voided results decide only when nothing else does", () => {
  const voided = { ...fail(Reason.NetworkError, "no slot"), voided: "queue" as const };
  const bad = fail(Reason.HTTPStatus, "HTTP 503");
  assert.equal(combineResults([bad], "all"), bad);
  assert.equal(combineResults([ok(), bad], "all"), bad);
  assert.equal(combineResults([ok(), ok()], "all").ok, true);
  assert.equal(combineResults([ok(), voided], "all"), voided);
  assert.equal(combineResults([bad, voided], "all"), bad);
  assert.equal(combineResults([bad, ok()], "any").ok, true);
  assert.equal(combineResults([bad, voided], "any"), voided);
  assert.equal(combineResults([bad, bad], "any"), bad);
});

test("overallVerdict: healthy when any address is, the unresolved verdict without addresses", () => {
  const at = (verdict: Verdict, reason = "R", message = "m") => ({
    ...initialVerdict(0),
    verdict,
    reason,
    message,
  });
  const prev = { verdict: "Unknown" as Verdict, reason: Reason.Pending, message: "not probed yet", since: 0 };
  const two = [
    { address: "198.18.0.1", verdict: at("Unhealthy", "HttpStatus", "HTTP 503") },
    { address: "198.18.0.2", verdict: at("Healthy", "ProbeSucceeded", "HTTP 200") },
  ];
  assert.deepEqual(overallVerdict(two, 2, initialVerdict(0), prev, 5), {
    overall: { verdict: "Healthy", reason: "ProbeSucceeded", message: "198.18.0.2: HTTP 200", since: 5 },
    changed: true,
  });
  const unhealthy = overallVerdict([two[0]!], 1, initialVerdict(0), prev, 5)!;
  assert.deepEqual(unhealthy.overall, {
    verdict: "Unhealthy",
    reason: "HttpStatus",
    message: "HTTP 503",
    since: 5,
  });
  assert.equal(overallVerdict([two[0]!], 1, initialVerdict(0), unhealthy.overall, 9), undefined, "unchanged");
  const unresolved = {
    ...initialVerdict(0),
    verdict: "Unhealthy" as Verdict,
    reason: Reason.DNSFailure,
    message: "NXDOMAIN",
  };
  const none = overallVerdict([], 0, unresolved, unhealthy.overall, 9)!;
  assert.deepEqual([none.overall.reason, none.overall.since, none.changed], [Reason.DNSFailure, 5, false]);
});
