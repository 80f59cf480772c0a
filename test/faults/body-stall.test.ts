// A hostile target cannot stall the prober through its body framing (issue 13, item 1).
//
// Real loopback servers, the real probe engine: two targets answer with a
// chunked body of 50,000 one-byte chunks that ends in the expected text, one
// probed with a substring match and one with a regex (64 KiB window); a third
// target is an ordinary healthy server probed every 100 ms. Matching used to
// re-copy and re-search the whole prefix at every chunk (quadratic: ~50 s of
// blocked event loop per probe); it is now linear in the bytes read, so the
// hostile probes are decided "body matched" well inside their 20 s timeout
// (before the fix they timed out), the healthy target keeps being probed,
// and every hostile probe finishes while the healthy one keeps running.
// Timings (probe durations, event-loop delay from perf_hooks) are reported,
// not asserted; the linear work bound itself is asserted on the matcher
// (test/unit/health/body-match.test.ts).
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Socket } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { test } from "node:test";
import { createProbeEngine } from "../../src/health/engine.ts";
import type { CheckSpec, ProbeObservation } from "../../src/health/types.ts";
import { eventually } from "../support/cluster.ts";
import { closeAll, listen } from "../support/servers.ts";

const CHUNKS = 50_000;

/** One response: `body` as chunked encoding with one byte per chunk. */
function oneByteChunks(body: string): Buffer {
  const parts = ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"];
  for (const c of body) parts.push(`1\r\n${c}\r\n`);
  parts.push("0\r\n\r\n");
  return Buffer.from(parts.join(""), "latin1");
}

test("50,000 one-byte chunks with a body match: decided in linear time, other probes keep running", async (t) => {
  const response = oneByteChunks(`${"a".repeat(CHUNKS - 5)}ready`);
  let hostileRequests = 0;
  const sockets = new Set<Socket>();
  const hostile = createServer((s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.on("data", () => {
      hostileRequests++;
      s.write(response);
    });
  });
  const hostilePort = await listen(hostile);
  let healthyRequests = 0;
  const healthy = createHttpServer((_req, res) => {
    healthyRequests++;
    res.end("ok");
  });
  const healthyPort = await listen(healthy);
  t.after(async () => {
    await closeAll(hostile, sockets);
    await closeAll(healthy);
  });

  const observations: ProbeObservation[] = [];
  const engine = createProbeEngine({ policy: { allowLoopback: true }, onProbe: (o) => observations.push(o) });
  t.after(() => engine.close());
  const check = (probe: CheckSpec["probes"][number], intervalMs: number, timeoutMs: number): CheckSpec => ({
    probes: [probe],
    intervalMs,
    timeoutMs,
    failureThreshold: 1,
    successThreshold: 1,
  });
  const window = { port: hostilePort, maxBodyBytes: 65536, followRedirects: false };
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  engine.set({
    id: "healthy",
    host: "127.0.0.1",
    check: check({ type: "http", port: healthyPort, path: "/healthz" }, 100, 1000),
  });
  engine.set({
    id: "substring",
    host: "127.0.0.1",
    check: check({ type: "http", ...window, bodyMatch: "ready" }, 1000, 20_000),
  });
  engine.set({
    id: "regex",
    host: "127.0.0.1",
    check: check({ type: "http", ...window, bodyRegex: "(a|b)+ready$" }, 1000, 20_000),
  });

  // Three decided probes per hostile target (each a full 50,000-chunk response).
  const hostileDone = () =>
    ["substring", "regex"].every((id) => observations.filter((o) => o.id === id).length >= 3);
  await eventually(() => (hostileDone() ? true : undefined), {
    timeoutMs: 90_000,
    intervalMs: 100,
    what: "three probes of each hostile target",
  });
  delay.disable();

  for (const id of ["substring", "regex"]) {
    const runs = observations.filter((o) => o.id === id);
    assert.deepEqual(
      runs.map((o) => o.reason),
      runs.map(() => "ProbeSucceeded"),
      id,
    );
    const s = engine.summary(id);
    assert.deepEqual([s?.verdict, s?.message], ["Healthy", "HTTP 200, body matched"], id);
    t.diagnostic(`${id}: probe durations ${runs.map((o) => `${Math.round(o.latencyMs)} ms`).join(", ")}`);
  }
  assert.ok(hostileRequests >= 6, "every hostile probe read a full response");
  const healthyRuns = observations.filter((o) => o.id === "healthy");
  assert.ok(healthyRuns.length > 0 && healthyRuns.every((o) => o.reason === "ProbeSucceeded"));
  assert.equal(engine.summary("healthy")?.verdict, "Healthy");
  assert.ok(healthyRequests > 0);
  t.diagnostic(
    `healthy target: ${healthyRuns.length} probes meanwhile; event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`,
  );
});
