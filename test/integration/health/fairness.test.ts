// The engine's own limits against real loopback servers, on the system
// clock: a probe that gets no concurrency slot within its timeout is dropped
// without connecting (no result, the verdict stays), a timeout the event
// loop caused gives no result, and a name is probed at no more than
// `maxAddressesPerName` addresses.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { test } from "node:test";
import {
  createProbeEngine,
  MAX_EXCUSED_STALLS,
  type ProbeEngineOptions,
} from "../../../src/health/engine.ts";
import { noStalls } from "../../../src/health/stall.ts";
import type { CheckSpec, ProbeObservation, Transition } from "../../../src/health/types.ts";
import { eventually } from "../../support/cluster.ts";
import { closeAll, listen } from "../../support/servers.ts";

function engineFor(t: { after: (fn: () => void) => void }, options: ProbeEngineOptions = {}) {
  const transitions: Transition[] = [];
  const observations: ProbeObservation[] = [];
  const engine = createProbeEngine({
    policy: { allowLoopback: true },
    onTransition: (x) => transitions.push(x),
    onProbe: (o) => observations.push(o),
    ...options,
  });
  t.after(() => engine.close());
  return { engine, transitions, observations };
}

const check = (port: number, extra: Partial<CheckSpec> = {}): CheckSpec => ({
  probes: [{ type: "http", port, path: "/" }],
  intervalMs: 1000,
  timeoutMs: 500,
  failureThreshold: 1,
  successThreshold: 1,
  ...extra,
});

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  const port = await listen(server, "127.0.0.1");
  return { server, port };
}

/** Blocks this thread (and so the engine's event loop) for `ms`. */
function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spin
  }
}

test("a probe that gets no slot within its timeout never connects and leaves the verdict alone", async (t) => {
  let hung = 0;
  const hang = await httpServer(() => {
    hung++; // accepted, never answered
  });
  t.after(() => closeAll(hang.server));
  let hits = 0;
  const ok = await httpServer((_req, res) => {
    hits++;
    res.end("ok");
  });
  t.after(() => closeAll(ok.server));
  const { engine, transitions, observations } = engineFor(t, { maxConcurrent: 1, reserve: 0 });
  engine.set({
    id: "a/hog",
    host: "127.0.0.1",
    check: check(hang.port, { intervalMs: 5000, timeoutMs: 3000 }),
  });
  await eventually(() => (hung === 1 && engine.stats().inFlight === 1 ? true : undefined), {
    what: "the hog to hold the only slot",
  });
  engine.set({ id: "b/victim", host: "127.0.0.1", check: check(ok.port, { timeoutMs: 200 }) });
  const expired = await eventually(
    () => observations.find((o) => o.id === "b/victim" && o.voided === "queue"),
    { what: "the victim's probe to expire in the queue" },
  );
  assert.equal(expired.local, true, "decided without the network");
  assert.equal(hits, 0, "the expired probe never connected");
  assert.equal(engine.summary("b/victim")?.verdict, "Unknown", "no result: the verdict stays");
  assert.ok(!transitions.some((x) => x.id === "b/victim"), "no transition from a probe that never ran");
  assert.ok(engine.stats().expired >= 1);
  // Once the hung probe times out, the victim gets the slot and its verdict.
  await eventually(() => (engine.summary("b/victim")?.verdict === "Healthy" ? true : undefined), {
    what: "the victim healthy once a slot is free",
    timeoutMs: 10_000,
  });
});

test("a timeout the event loop caused gives no result; a real one still counts", async (t) => {
  // Answers after 150 ms: at any moment about half of the probes are in flight.
  const slow = await httpServer((_req, res) => {
    setTimeout(() => res.end("ok"), 150);
  });
  t.after(() => closeAll(slow.server));
  // Two engines on the same thread see the same stalls: one measures them, the control does not.
  const guarded = engineFor(t);
  const control = engineFor(t, { stalls: noStalls });
  for (const e of [guarded, control]) {
    for (let i = 0; i < 10; i++) {
      e.engine.set({
        id: `ns/t${i}`,
        host: "127.0.0.1",
        check: check(slow.port, { intervalMs: 300, timeoutMs: 400 }),
      });
    }
  }
  await eventually(
    () =>
      [...guarded.engine.summaries(), ...control.engine.summaries()].every((s) => s.verdict === "Healthy")
        ? true
        : undefined,
    { what: "every target healthy" },
  );
  // Three stalls of 1.2 s, each longer than the timeout: the targets answered in time, the
  // operator could not read the answers.
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 500));
    busy(1200);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const failed = (o: ProbeObservation) => !o.ok && !o.voided;
  assert.ok(
    control.observations.some((o) => failed(o) && o.reason === "Timeout"),
    "the stalls made the control engine's probes time out (the scenario provokes false timeouts)",
  );
  assert.deepEqual(guarded.observations.filter(failed), [], "no failure from the guarded engine");
  assert.ok(guarded.engine.stats().voidedByStalls >= 1, "the stalled timeouts were voided");
  assert.ok(
    !guarded.transitions.some((x) => x.to === "Unhealthy"),
    "no target of the guarded engine turned unhealthy",
  );

  // A target that really does not answer is still judged: no stall, a genuine Timeout.
  const hang = await httpServer(() => {});
  t.after(() => closeAll(hang.server));
  guarded.engine.set({ id: "ns/hung", host: "127.0.0.1", check: check(hang.port, { timeoutMs: 200 }) });
  await eventually(() => (guarded.engine.summary("ns/hung")?.reason === "Timeout" ? true : undefined), {
    what: "the hung target unhealthy with Timeout",
  });
});

test("an operator stalled all the time still judges a dead target: stalls excuse at most three failed runs in a row", async (t) => {
  const hang = await httpServer(() => {});
  t.after(() => closeAll(hang.server));
  const { engine, transitions, observations } = engineFor(t, {
    stalls: { blockedMs: () => 60_000, hold() {}, release() {}, stop() {} },
  });
  const seenAt: number[] = [];
  engine.set({
    id: "ns/dead",
    host: "127.0.0.1",
    check: check(hang.port, { intervalMs: 300, timeoutMs: 100 }),
  });
  await eventually(
    () => {
      const x = transitions.find((x) => x.address && x.to === "Unhealthy");
      if (x) seenAt.push(observations.length);
      return x;
    },
    { what: "the dead target unhealthy" },
  );
  assert.equal(MAX_EXCUSED_STALLS, 3);
  assert.equal(seenAt[0], MAX_EXCUSED_STALLS + 1, "three excused timeouts, the fourth counts");
  assert.ok(observations.every((o) => o.voided === "stall" && o.reason === "Timeout"));
});

test("a name is probed at no more than maxAddressesPerName addresses, the first in sorted order", async (t) => {
  const ok = await httpServer((_req, res) => res.end("ok"));
  t.after(() => closeAll(ok.server));
  const many = Array.from({ length: 70 }, (_, i) => `127.0.1.${70 - i}`);
  const { engine } = engineFor(t, { maxAddressesPerName: 16, resolver: async () => many });
  engine.set({ id: "ns/many", host: "many.test", check: check(ok.port, { timeoutMs: 200 }) });
  await eventually(() => ((engine.summary("ns/many")?.addresses.length ?? 0) > 0 ? true : undefined), {
    what: "the name resolved",
  });
  const addresses = engine.summary("ns/many")!.addresses.map((a) => a.address);
  assert.deepEqual(addresses.sort(), [...many].sort().slice(0, 16));
});
