import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KubeRequest } from "../../../src/kube/client.ts";
import { eventRecorder } from "../../../src/kube/events.ts";
import { runtimeMetrics } from "../../../src/kube/metrics.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { configMap, scriptedClient } from "./fakes.ts";

function setup(opts: { burst?: number } = {}) {
  const clock = fakeClock(Date.parse("2026-01-01T00:00:00Z"));
  const calls: KubeRequest[] = [];
  const client = scriptedClient({
    onRequest: (req) => {
      calls.push(req);
      return {};
    },
  });
  const metrics = runtimeMetrics({ processMetrics: false });
  const rec = eventRecorder({
    client,
    reportingController: "roster.dev/operator",
    reportingInstance: "pod-1",
    clock,
    metrics,
    seriesFlushMs: 30_000,
    burst: opts.burst,
  });
  return { clock, calls, rec, metrics };
}

const obj = { ...configMap("web-1"), metadata: { name: "web-1", namespace: "ns", uid: "u1" } };

describe("event recorder", () => {
  test("the first occurrence creates an events.k8s.io/v1 Event with the required fields", async () => {
    const { calls, rec } = setup();
    rec.event(obj, "Warning", "BecameUnhealthy", "probe http failed: 503");
    await rec.flush();
    assert.equal(calls.length, 1);
    const c = calls[0]!;
    assert.equal(c.method, "POST");
    assert.equal(c.path, "/apis/events.k8s.io/v1/namespaces/ns/events");
    const body = c.body as Record<string, unknown>;
    assert.equal(body.reason, "BecameUnhealthy");
    assert.equal(body.type, "Warning");
    assert.equal(body.note, "probe http failed: 503");
    assert.equal(body.reportingController, "roster.dev/operator");
    assert.equal(body.reportingInstance, "pod-1");
    assert.equal(body.action, "BecameUnhealthy");
    assert.match(String(body.eventTime), /^2026-01-01T00:00:00\.000000Z$/);
    assert.deepEqual((body.regarding as Record<string, unknown>).uid, "u1");
  });

  test("repeats become a series: count 2 at once, later counts batched every flush interval", async () => {
    const { calls, rec, clock } = setup();
    rec.event(obj, "Warning", "ProbeFailed", "timeout");
    await rec.flush();
    rec.event(obj, "Warning", "ProbeFailed", "timeout");
    await rec.flush();
    assert.equal(calls.length, 2);
    assert.equal(calls[1]!.method, "PATCH");
    assert.equal(calls[1]!.contentType, "application/merge-patch+json");
    assert.deepEqual((calls[1]!.body as { series: { count: number } }).series.count, 2);
    for (let i = 0; i < 50; i++) rec.event(obj, "Warning", "ProbeFailed", "timeout");
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, 2, "no write per repeat");
    clock.advance(30_000);
    await rec.flush();
    assert.equal(calls.length, 3);
    assert.equal((calls[2]!.body as { series: { count: number } }).series.count, 52);
  });

  test("a different note, reason or object is a different event", async () => {
    const { calls, rec } = setup();
    rec.event(obj, "Normal", "BecameHealthy", "a");
    rec.event(obj, "Normal", "BecameHealthy", "b");
    rec.event(
      { ...obj, metadata: { ...obj.metadata, name: "web-2", uid: "u2" } },
      "Normal",
      "BecameHealthy",
      "a",
    );
    await rec.flush();
    assert.deepEqual(
      calls.map((c) => c.method),
      ["POST", "POST", "POST"],
    );
  });

  test("a series not seen for the window starts a new Event", async () => {
    const { calls, rec, clock } = setup();
    rec.event(obj, "Normal", "Drained", "x");
    await rec.flush();
    clock.advance(7 * 60_000);
    rec.event(obj, "Normal", "Drained", "x");
    await rec.flush();
    assert.deepEqual(
      calls.map((c) => c.method),
      ["POST", "POST"],
    );
  });

  test("new Events are rate-limited per object; drops are counted", async () => {
    const { calls, rec, metrics } = setup({ burst: 3 });
    for (let i = 0; i < 10; i++) rec.event(obj, "Normal", "Changed", `note ${i}`);
    await rec.flush();
    assert.equal(calls.length, 3);
    assert.match(await metrics.registry.metrics(), /roster_events_dropped_total\{reason="rate_limited"\} 7/);
  });

  test("long notes are truncated to 1 KiB", async () => {
    const { calls, rec } = setup();
    rec.event(obj, "Warning", "Big", "x".repeat(5000));
    await rec.flush();
    assert.ok(Buffer.byteLength(String((calls[0]!.body as { note: string }).note)) <= 1024);
  });
  test("closed series and refilled rate-limit buckets are forgotten: memory shrinks back", async () => {
    const { rec, clock, calls } = setup({ burst: 2 });
    for (let i = 0; i < 100; i++) {
      const o = { ...obj, metadata: { ...obj.metadata, name: `web-${i}`, uid: `u${i}` } };
      rec.event(o, "Warning", "BecameUnhealthy", "503");
      rec.event(o, "Warning", "BecameUnhealthy", "503");
    }
    await rec.flush();
    assert.deepEqual(rec.size, { series: 100, aggregates: 100, buckets: 100 });
    // After the series window (6 min) every series is closed and written; the
    // buckets (burst 2, one token per 5 min) are full again after 10 min.
    clock.advance(11 * 60_000);
    rec.event(obj, "Normal", "BecameHealthy", "ok");
    assert.deepEqual(rec.size, { series: 1, aggregates: 1, buckets: 1 });
    await rec.flush();
    // Forgetting changed nothing: a new occurrence is a new Event.
    const before = calls.length;
    rec.event(
      { ...obj, metadata: { ...obj.metadata, name: "web-1", uid: "u1" } },
      "Warning",
      "BecameUnhealthy",
      "503",
    );
    await rec.flush();
    assert.equal(calls.length, before + 1);
    assert.equal(calls.at(-1)!.method, "POST");
  });

  test("a series whose count is still being written is kept past its window", async () => {
    const clock = fakeClock(Date.parse("2026-01-01T00:00:00Z"));
    let release = () => {};
    const hung = new Promise<void>((r) => {
      release = r;
    });
    const client = scriptedClient({ onRequest: (req) => (req.method === "PATCH" ? hung : {}) });
    const rec = eventRecorder({ client, reportingController: "c", reportingInstance: "i", clock });
    rec.event(obj, "Warning", "ProbeFailed", "timeout");
    await new Promise((r) => setImmediate(r));
    rec.event(obj, "Warning", "ProbeFailed", "timeout"); // count 2: a PATCH that hangs
    clock.advance(7 * 60_000);
    const other = { ...obj, metadata: { ...obj.metadata, name: "web-2", uid: "u2" } };
    rec.event(other, "Warning", "ProbeFailed", "timeout");
    assert.equal(rec.size.series, 2, "kept: its count is not written yet");
    release();
    await rec.flush();
    rec.event(other, "Warning", "ProbeFailed", "timeout");
    assert.equal(rec.size.series, 1, "written and closed: forgotten");
  });

  test("similar events of one group past 10 join one combined Event about the group, counted in its series", async () => {
    const { calls, rec, clock } = setup();
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: "ns", uid: "s1" },
    };
    const group = { key: "service/ns/web", regarding: service };
    for (let i = 0; i < 200; i++) {
      const o = { ...obj, metadata: { ...obj.metadata, name: `web-${i}`, uid: `u${i}` } };
      rec.event(o, "Warning", "BecameUnhealthy", "HTTP 503", { group });
    }
    clock.advance(30_000);
    await rec.flush();
    const posts = calls.filter((c) => c.method === "POST").map((c) => c.body as Record<string, unknown>);
    assert.equal(posts.length, 10, "9 Events of their own and one combined");
    const combined = posts.at(-1)!;
    assert.match(String(combined.note), /^\(combined from similar events\): web-9: HTTP 503$/);
    assert.deepEqual(combined.regarding, {
      apiVersion: "v1",
      kind: "Service",
      namespace: "ns",
      name: "web",
      uid: "s1",
      resourceVersion: undefined,
    });
    const patches = calls.filter((c) => c.method === "PATCH");
    assert.equal((patches.at(-1)!.body as { series: { count: number } }).series.count, 191);
  });
});
