import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import type { ProbeObservation } from "../../../src/health/index.ts";
import { operatorMetrics } from "../../../src/operator/metrics.ts";

const probe = (o: Partial<ProbeObservation>): ProbeObservation => ({
  id: "ns/a",
  type: "http",
  ok: true,
  reason: "",
  at: 0,
  latencyMs: 20,
  lateMs: 0,
  ...o,
});

test("a voided probe counts only as voided; a local one only as a failure; a network one as latency", async () => {
  const registry = new Registry();
  const m = operatorMetrics(registry, { targets: () => 7, members: () => 2 });
  m.probe(probe({ voided: "stall", ok: false, reason: "NetworkError" }));
  m.probe(probe({ local: true, ok: false, reason: "Refused" }));
  m.probe(probe({ ok: false, reason: "Timeout" }));
  m.probe(probe({}));
  const text = await registry.metrics();
  assert.match(text, /roster_probe_voided_total\{type="http",cause="stall"\} 1/);
  assert.match(text, /roster_probe_failures_total\{type="http",reason="Refused"\} 1/);
  assert.match(text, /roster_probe_failures_total\{type="http",reason="Timeout"\} 1/);
  assert.doesNotMatch(text, /reason="NetworkError"/);
  assert.match(text, /roster_probe_duration_seconds_count\{type="http",result="failure"\} 1/);
  assert.match(text, /roster_probe_duration_seconds_count\{type="http",result="success"\} 1/);
  assert.match(text, /roster_probe_targets 7/);
  assert.match(text, /roster_shard_members 2/);
});

test("only an instance's transitions count, not an address's", async () => {
  const registry = new Registry();
  const m = operatorMetrics(registry, { targets: () => 0, members: () => 1 });
  m.transition({ id: "ns/a", from: "Unknown", to: "Healthy", reason: "", message: "", at: 0 });
  m.transition({
    id: "ns/a",
    address: "198.18.0.1",
    from: "Unknown",
    to: "Unhealthy",
    reason: "",
    message: "",
    at: 0,
  });
  const text = await registry.metrics();
  assert.match(text, /roster_verdict_transitions_total\{to="Healthy"\} 1/);
  assert.doesNotMatch(text, /to="Unhealthy"/);
});
