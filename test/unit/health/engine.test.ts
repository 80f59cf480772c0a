// The engine with a fake clock: scheduling, thresholds, flap damping, DNS and
// policy handling, driven through heartbeat and `none` probes (no network).
// Network probes against real servers are in test/integration/health/.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createProbeEngine, type ProbeEngineOptions } from "../../../src/health/engine.ts";
import { phaseOf } from "../../../src/health/schedule.ts";
import { transitionStream } from "../../../src/health/stream.ts";
import type { CheckSpec, LeaseInfo, ProbeObservation, Transition } from "../../../src/health/types.ts";
import { type FakeClock, fakeClock } from "../../../src/util/clock.ts";

const flush = () => new Promise<void>((r) => setImmediate(r));

/** Advances the fake clock in small steps, letting the engine's async runs finish in between. */
async function advance(clock: FakeClock, ms: number, stepMs = 50): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await flush();
  }
}

function heartbeat(check: Partial<CheckSpec> = {}): CheckSpec {
  return {
    probes: [{ type: "heartbeat", lease: { namespace: "ns", name: "lease" } }],
    intervalMs: 1000,
    timeoutMs: 500,
    failureThreshold: 2,
    successThreshold: 1,
    ...check,
  };
}

const T0 = 1_000_000;

function setup(extra: ProbeEngineOptions = {}) {
  const clock = fakeClock(T0);
  const transitions: Transition[] = [];
  /** Probe times per target id, relative to T0. */
  const probedAt = new Map<string, number[]>();
  const leases = new Map<string, boolean>();
  const engine = createProbeEngine({
    clock,
    leaseReader: (namespace, name): LeaseInfo | undefined => {
      const up = leases.get(`${namespace}/${name}`);
      if (up === undefined) return undefined;
      return { renewTimeMs: up ? clock.now() : clock.now() - 60_000, leaseDurationMs: 30_000 };
    },
    resolver: async () => ["10.0.0.1"],
    onTransition: (t) => transitions.push(t),
    onProbe: (o) => probedAt.set(o.id, [...(probedAt.get(o.id) ?? []), o.at - T0]),
    // Exact run times; batching into ticks is tested on its own.
    tickMs: 1,
    maxTickMs: 1,
    ...extra,
  });
  /** Transitions as compact strings, target-level ones marked with "*". */
  const log = () => transitions.map((t) => `${t.at - T0}:${t.address ?? "*"}:${t.from}->${t.to}:${t.reason}`);
  return { clock, engine, transitions, probedAt, leases, log };
}

test("first probes spread evenly over the interval, then each target keeps its phase", async (t) => {
  const { clock, engine, probedAt, leases } = setup();
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  for (let i = 0; i < 1000; i++) {
    engine.set({ id: `ns/instance-${i}`, host: "10.0.0.1", check: heartbeat({ intervalMs: 10_000 }) });
  }
  await advance(clock, 20_000, 100);
  assert.equal(probedAt.size, 1000);
  const buckets = new Array<number>(10).fill(0);
  for (const [id, times] of probedAt) {
    assert.equal(times.length, 2, id);
    const [first, second] = times as [number, number];
    assert.ok(first >= 0 && first < 10_000);
    assert.equal(second - first, 10_000, "stable phase");
    buckets[Math.floor(first / 1000)]!++;
  }
  for (const b of buckets)
    assert.ok(b >= 70 && b <= 130, `a tenth of the interval got ${b} of 1000 first probes`);
});

test("jitter delays each run without moving the phase; initialDelay holds the first probe", async (t) => {
  const { clock, engine, probedAt, leases } = setup({ random: () => 0.5 });
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  engine.set({ id: "a", host: "10.0.0.1", check: heartbeat({ intervalMs: 1000, jitterMs: 200 }) });
  engine.set({ id: "b", host: "10.0.0.1", check: heartbeat({ intervalMs: 1000, initialDelayMs: 5000 }) });
  await advance(clock, 8000, 10);
  const a = probedAt.get("a")!;
  // Every run lands 100 ms (0.5 * 200) after its slot, and the slots stay 1 s apart.
  assert.equal(a[0]! % 1000, (phaseOf("a", 1000) + 100) % 1000);
  for (let i = 1; i < a.length; i++) assert.equal(a[i]! - a[i - 1]!, 1000);
  const b = probedAt.get("b")!;
  assert.ok(b[0]! >= 5000 && b[0]! < 6000, `first probe at ${b[0]}`);
});

test("runs due within one tick start together at its end", async (t) => {
  const clock = fakeClock(T0);
  const runs: { at: number; lateMs: number }[] = [];
  const engine = createProbeEngine({
    clock,
    tickMs: 10,
    leaseReader: () => ({ renewTimeMs: clock.now(), leaseDurationMs: 30_000 }),
    onProbe: (o) => runs.push({ at: o.at, lateMs: o.lateMs }),
  });
  t.after(() => engine.close());
  for (let i = 0; i < 200; i++)
    engine.set({ id: `t${i}`, host: "10.0.0.1", check: heartbeat({ intervalMs: 1000 }) });
  await advance(clock, 2000, 1);
  assert.equal(runs.length, 400);
  assert.ok(runs.every((r) => r.at % 10 === 0 && r.lateMs >= 0 && r.lateMs < 10));
  assert.ok(runs.some((r) => r.lateMs > 0));
});

test("thresholds from Unknown, per address and for the target", async (t) => {
  const { clock, engine, leases, log } = setup();
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  // One run per interval (fast confirmation off: see the recheck tests).
  const check = heartbeat({ failureThreshold: 2, successThreshold: 2, recheckIntervalMs: 1000 });
  engine.set({ id: "x", host: "10.0.0.1", check });
  assert.equal(engine.summary("x")?.verdict, "Unknown");
  await advance(clock, 1000);
  assert.equal(engine.summary("x")?.verdict, "Unknown", "one success is below successThreshold 2");
  await advance(clock, 1000);
  assert.equal(engine.summary("x")?.verdict, "Healthy");
  leases.set("ns/lease", false);
  await advance(clock, 1000);
  assert.equal(engine.summary("x")?.verdict, "Healthy");
  await advance(clock, 1000);
  const s = engine.summary("x")!;
  assert.equal(s.verdict, "Unhealthy");
  assert.equal(s.reason, "LeaseExpired");
  assert.match(s.message, /Lease ns\/lease expired 30s ago/);
  assert.deepEqual(
    s.addresses.map((a) => [a.address, a.verdict]),
    [["10.0.0.1", "Unhealthy"]],
  );
  leases.delete("ns/lease");
  await advance(clock, 1000);
  assert.equal(engine.summary("x")?.reason, "LeaseNotFound");
  const lines = log().map((l) => l.replace(/^\d+:/, ""));
  assert.deepEqual(lines, [
    "10.0.0.1:Unknown->Healthy:ProbeSucceeded",
    "*:Unknown->Healthy:ProbeSucceeded",
    "10.0.0.1:Healthy->Unhealthy:LeaseExpired",
    "*:Healthy->Unhealthy:LeaseExpired",
  ]);
});

test("flap damping end to end: held unhealthy with reason Flapping, released when stable", async (t) => {
  const { clock, engine, leases, transitions } = setup();
  t.after(() => engine.close());
  engine.set({
    id: "flappy",
    host: "10.0.0.1",
    check: heartbeat({
      failureThreshold: 1,
      successThreshold: 1,
      flapDamping: { maxTransitions: 2, windowMs: 10_000 },
    }),
  });
  for (let i = 0; i < 6; i++) {
    leases.set("ns/lease", i % 2 === 0);
    await advance(clock, 1000);
  }
  assert.equal(engine.summary("flappy")?.reason, "Flapping");
  assert.equal(engine.summary("flappy")?.verdict, "Unhealthy");
  assert.ok(transitions.some((x) => x.address === undefined && x.reason === "Flapping"));
  leases.set("ns/lease", true);
  await advance(clock, 9000);
  assert.equal(engine.summary("flappy")?.reason, "Flapping", "not yet stable for the window");
  await advance(clock, 2000);
  assert.equal(engine.summary("flappy")?.verdict, "Healthy");
});

test("a registration-only target is healthy as soon as it is added", async (t) => {
  const { clock, engine, log } = setup();
  t.after(() => engine.close());
  engine.set({
    id: "reg",
    host: "10.0.0.9",
    check: { probes: [{ type: "none" }], intervalMs: 60_000, timeoutMs: 1000 },
  });
  await advance(clock, 1);
  assert.equal(engine.summary("reg")?.verdict, "Healthy");
  assert.deepEqual(log(), ["1:10.0.0.9:Unknown->Healthy:NoProbe", "1:*:Unknown->Healthy:NoProbe"]);
});

// Denied destinations in these tests are loopback addresses (127.0.0.66 stands in for the metadata
// endpoint): the engine here can really connect, and a regression must not send traffic off the
// machine. The real metadata addresses are checked as pure decisions in policy.test.ts.
const DENIED = "127.0.0.66";

test("a denied destination is Unhealthy at once with DestinationDenied and is never probed", async (t) => {
  const { clock, engine } = setup({ policy: { deny: [`${DENIED}/32`] } });
  t.after(() => engine.close());
  const check: CheckSpec = {
    probes: [{ type: "tcp", port: 80 }],
    intervalMs: 1000,
    timeoutMs: 500,
    failureThreshold: 5,
  };
  engine.set({ id: "meta", host: DENIED, check });
  engine.set({ id: "local", host: "127.0.0.1", check });
  engine.set({ id: "mapped", host: `::ffff:${DENIED}`, check });
  await advance(clock, 1000);
  for (const id of ["meta", "local", "mapped"]) {
    const s = engine.summary(id)!;
    assert.equal(s.verdict, "Unhealthy", id);
    assert.equal(s.reason, "DestinationDenied", id);
  }
  assert.match(engine.summary("meta")!.message, /denied range 127\.0\.0\.66\/32/);
  assert.match(engine.summary("local")!.message, /loopback/);
  assert.equal(engine.stats().probes, 0, "no connection was attempted");
});

test("every finished run reports to onProbe, also when nothing was probed (local observations)", async (t) => {
  const seen: ProbeObservation[] = [];
  const { clock, engine, transitions } = setup({
    resolver: async (host) => {
      if (host === "gone.example")
        throw Object.assign(new Error("getaddrinfo ENOTFOUND gone.example"), { code: "ENOTFOUND" });
      return ["10.0.0.1"];
    },
    onProbe: (o) => seen.push(o),
  });
  t.after(() => engine.close());
  const tcp = (port: number | string): CheckSpec => ({
    probes: [{ type: "tcp", port }],
    intervalMs: 1000,
    timeoutMs: 500,
    failureThreshold: 3,
    recheckIntervalMs: 1000, // one run per interval
  });
  // Registration only (explicit `none`, and no probes at all): healthy at once, reported as `none`.
  engine.set({ id: "reg", host: "10.0.0.9", check: { ...tcp(80), probes: [{ type: "none" }] } });
  engine.set({ id: "empty", host: "10.0.0.9", check: { ...tcp(80), probes: [] } });
  // Refused by the destination policy: never connected, reported with the probe's type.
  engine.set({ id: "meta", host: DENIED, check: tcp(80) });
  // A port name the target does not have; a name that does not resolve.
  engine.set({ id: "noport", host: "10.0.0.9", check: tcp("http") });
  engine.set({ id: "nxdomain", host: "gone.example", check: tcp(80) });
  await advance(clock, 1000);

  const first = (id: string) => seen.find((o) => o.id === id);
  const brief = (o: ProbeObservation | undefined) =>
    o && [o.address ?? "*", o.type, o.ok, o.reason, o.latencyMs, o.local];
  assert.deepEqual(brief(first("reg")), ["10.0.0.9", "none", true, "NoProbe", 0, true]);
  assert.deepEqual(brief(first("empty")), ["10.0.0.9", "none", true, "NoProbe", 0, true]);
  assert.deepEqual(brief(first("meta")), [DENIED, "tcp", false, "DestinationDenied", 0, true]);
  assert.deepEqual(brief(first("noport")), ["10.0.0.9", "tcp", false, "PortNotFound", 0, true]);
  assert.deepEqual(brief(first("nxdomain")), ["*", "tcp", false, "DNSFailure", 0, true]);
  assert.equal(engine.stats().probes, 0, "nothing went on the network");
  // Reported before any transition for the last three (failureThreshold 3 or, for the refusal, at once).
  assert.ok(!transitions.some((x) => x.id === "noport" || x.id === "nxdomain"));
  for (const o of seen) assert.ok(o.lateMs >= 0 && o.at >= T0, JSON.stringify(o));

  // Once per run, every run.
  const runs = (id: string) => seen.filter((o) => o.id === id).length;
  const before = Object.fromEntries(["reg", "meta", "noport", "nxdomain"].map((id) => [id, runs(id)]));
  await advance(clock, 3000);
  for (const id of ["reg", "meta", "noport", "nxdomain"]) assert.equal(runs(id), before[id]! + 3, id);
});

test("heartbeat and `none` probes of one check report once per run; a refused address reports its network probe", async (t) => {
  const seen: ProbeObservation[] = [];
  const { clock, engine, leases } = setup({ onProbe: (o) => seen.push(o) });
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  engine.set({
    id: "mixed",
    host: DENIED,
    check: {
      probes: [
        { type: "heartbeat", lease: { namespace: "ns", name: "lease" } },
        { type: "none" },
        { type: "http", port: 80 },
      ],
      intervalMs: 1000,
      timeoutMs: 500,
    },
  });
  await advance(clock, 1000);
  assert.deepEqual(
    seen.map((o) => `${o.address ?? "*"}:${o.type}:${o.reason}:${o.local ?? false}`),
    [
      "*:heartbeat:ProbeSucceeded:false",
      "*:none:ProbeSucceeded:true",
      `${DENIED}:http:DestinationDenied:true`,
    ],
  );
  assert.equal(engine.summary("mixed")?.reason, "DestinationDenied");
});

test("DNS names: each address has a verdict; removed addresses are reported; NXDOMAIN fails the target", async (t) => {
  let answer: string[] | Error = ["10.0.0.1", "10.0.0.2"];
  let lookups = 0;
  const { clock, engine, leases, log } = setup({
    dnsRefreshMs: 1000,
    dnsNegativeTtlMs: 1000,
    resolver: async () => {
      lookups++;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  });
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  engine.set({ id: "svc", host: "db.example", check: heartbeat({ failureThreshold: 2 }) });
  engine.set({ id: "svc-2", host: "db.example", check: heartbeat({ failureThreshold: 2 }) });
  await advance(clock, 1000);
  assert.deepEqual(
    engine.summary("svc")!.addresses.map((a) => [a.address, a.verdict]),
    [
      ["10.0.0.1", "Healthy"],
      ["10.0.0.2", "Healthy"],
    ],
  );
  assert.equal(lookups, 1, "targets sharing a name share its lookup");
  answer = ["10.0.0.2"];
  await advance(clock, 1000);
  assert.deepEqual(
    engine.summary("svc")!.addresses.map((a) => a.address),
    ["10.0.0.2"],
  );
  assert.ok(log().some((l) => l.includes(":10.0.0.1:Healthy->Unknown:AddressRemoved")));
  // A transient failure keeps the known addresses.
  answer = Object.assign(new Error("getaddrinfo EAI_AGAIN"), { code: "EAI_AGAIN" });
  await advance(clock, 2000);
  assert.equal(engine.summary("svc")!.verdict, "Healthy");
  // The name is gone: addresses dropped, DNSFailure after failureThreshold runs.
  answer = Object.assign(new Error("getaddrinfo ENOTFOUND db.example"), { code: "ENOTFOUND" });
  await advance(clock, 3000);
  const s = engine.summary("svc")!;
  assert.equal(s.addresses.length, 0);
  assert.equal(s.verdict, "Unhealthy");
  assert.equal(s.reason, "DNSFailure");
  // It comes back.
  answer = ["10.0.0.3"];
  await advance(clock, 2000);
  assert.equal(engine.summary("svc")!.verdict, "Healthy");
  engine.remove("svc");
  engine.remove("svc-2");
  assert.equal(engine.stats().dnsNames, 0, "a name no target uses is forgotten");
});

test("changing a target takes effect at once and keeps its verdict; removing stops it", async (t) => {
  const { clock, engine, leases, probedAt } = setup();
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  engine.set({ id: "a", host: "10.0.0.1", check: heartbeat({ intervalMs: 10_000 }) });
  engine.set({ id: "b", host: "10.0.0.1", check: heartbeat({ intervalMs: 1000 }) });
  await advance(clock, 10_000);
  assert.equal(engine.summary("a")?.verdict, "Healthy");
  const bBefore = probedAt.get("b")!.length;
  // Same spec again: a no-op.
  engine.set({ id: "a", host: "10.0.0.1", check: heartbeat({ intervalMs: 10_000 }) });
  engine.set({ id: "a", host: "10.0.0.1", check: heartbeat({ intervalMs: 1000 }) });
  assert.equal(engine.summary("a")?.verdict, "Healthy", "a change keeps the verdict");
  const aBefore = probedAt.get("a")!.length;
  await advance(clock, 3000);
  assert.ok(probedAt.get("a")!.length - aBefore >= 2, "the new interval applies at once");
  assert.equal(probedAt.get("b")!.length - bBefore, 3, "b undisturbed");
  engine.remove("a");
  const aAfter = probedAt.get("a")!.length;
  await advance(clock, 3000);
  assert.equal(probedAt.get("a")!.length, aAfter);
  assert.equal(engine.summary("a"), undefined);
  assert.equal(engine.has("b"), true);
});

test("a lease reader that throws gives LeaseReadError; callbacks that throw do not stop the engine", async (t) => {
  const errors: unknown[] = [];
  const { clock, engine } = setup({
    leaseReader: () => {
      throw new Error("informer not synced");
    },
    onTransition: () => {
      throw new Error("consumer bug");
    },
    onError: (e) => errors.push(e),
  });
  t.after(() => engine.close());
  engine.set({ id: "x", host: "10.0.0.1", check: heartbeat({ failureThreshold: 1 }) });
  await advance(clock, 1000);
  assert.equal(engine.summary("x")?.reason, "LeaseReadError");
  assert.match(engine.summary("x")!.message, /informer not synced/);
  assert.ok(errors.length >= 1);
  const runs = engine.stats().runs;
  await advance(clock, 2000);
  assert.equal(engine.stats().runs, runs + 2, "still probing");
});

test("an equal target given again (a new object) changes nothing", async (t) => {
  const pending: ((renewed: boolean) => void)[] = [];
  const { clock, engine } = setup({
    // Lease reads wait until released: a run is in flight while the target is set again.
    leaseReader: () =>
      new Promise<LeaseInfo>((resolve) =>
        pending.push((renewed) =>
          resolve({ renewTimeMs: clock.now() - (renewed ? 0 : 60_000), leaseDurationMs: 30_000 }),
        ),
      ),
  });
  t.after(() => engine.close());
  const check = heartbeat({ failureThreshold: 1, timeoutMs: 900 });
  engine.set({ id: "x", host: "10.0.0.1", check });
  await advance(clock, 1000);
  assert.equal(pending.length, 1, "a run is in flight");
  // A fresh copy, with an undefined property and another key order: the same target.
  const { probes, ...rest } = check;
  engine.set({ id: "x", host: "10.0.0.1", check: { ...rest, jitterMs: undefined, probes } });
  pending.shift()!(true);
  await flush();
  assert.equal(engine.summary("x")!.verdict, "Healthy", "the run in flight was not cancelled");
  // A real change cancels the run in flight: its (failed) result is dropped.
  await advance(clock, 1000);
  assert.equal(pending.length, 1);
  engine.set({ id: "x", host: "10.0.0.1", check: { ...check, timeoutMs: 800 } });
  pending.shift()!(false);
  await flush();
  assert.equal(engine.summary("x")!.verdict, "Healthy", "the cancelled run did not count");
});

test("rejects invalid targets", (t) => {
  const { engine } = setup();
  t.after(() => engine.close());
  assert.throws(() => engine.set({ id: "", host: "10.0.0.1", check: heartbeat() }), /id/);
  assert.throws(
    () => engine.set({ id: "x", host: "10.0.0.1", check: heartbeat({ intervalMs: 0 }) }),
    /intervalMs/,
  );
  assert.throws(() => engine.setPolicy({ deny: ["10.0.0.0/40"] }), /invalid CIDR/);
});

test("transitions can be consumed as an async iterator", async (t) => {
  const stream = transitionStream();
  const { clock, engine, leases } = setup({ onTransition: stream.push });
  t.after(() => engine.close());
  leases.set("ns/lease", true);
  engine.set({ id: "x", host: "10.0.0.1", check: heartbeat() });
  await advance(clock, 1000);
  stream.close();
  const seen: string[] = [];
  for await (const x of stream) seen.push(`${x.address ?? "*"}:${x.to}`);
  assert.deepEqual(seen, ["10.0.0.1:Healthy", "*:Healthy"]);
});

test("a lease reader that never answers fails the probe at its timeout", async (t) => {
  const { clock, engine } = setup({ leaseReader: () => new Promise(() => {}) });
  t.after(() => engine.close());
  engine.set({ id: "x", host: "10.0.0.1", check: heartbeat({ failureThreshold: 1, timeoutMs: 300 }) });
  await advance(clock, 1500);
  assert.equal(engine.summary("x")?.reason, "LeaseReadError");
  assert.match(engine.summary("x")!.message, /more than 300 ms/);
});

test("after a stall, slots late by more than half an interval are skipped, not run in a burst", async (t) => {
  // A clock whose timers fire late, as when the process stalls.
  let now = T0;
  let timers: { due: number; fn: () => void }[] = [];
  const clock = {
    now: () => now,
    setTimer(fn: () => void, ms: number) {
      const timer = { due: now + Math.max(0, ms), fn };
      timers.push(timer);
      return { cancel: () => (timers = timers.filter((x) => x !== timer)) };
    },
  };
  const fireDue = async () => {
    for (;;) {
      const due = timers.filter((x) => x.due <= now).sort((a, b) => a.due - b.due);
      if (due.length === 0) return;
      timers = timers.filter((x) => !due.includes(x));
      for (const x of due) x.fn();
      await flush();
    }
  };
  const runs: { id: string; at: number }[] = [];
  const engine = createProbeEngine({
    clock,
    tickMs: 1,
    maxTickMs: 1,
    leaseReader: () => ({ renewTimeMs: now, leaseDurationMs: 30_000 }),
    onProbe: (o) => runs.push({ id: o.id, at: o.at }),
  });
  t.after(() => engine.close());
  for (let i = 0; i < 100; i++)
    engine.set({ id: `t${i}`, host: "10.0.0.1", check: heartbeat({ intervalMs: 1000 }) });
  for (let step = 0; step < 200; step++) {
    now += 10;
    await fireDue();
  }
  assert.equal(engine.stats().skippedSlots, 0);
  // Stall for 1.5 s, then resume.
  runs.length = 0;
  now += 1500;
  await fireDue();
  // Only the targets whose slot is less than 500 ms old run now; the others wait for their next slot.
  assert.ok(runs.length > 25 && runs.length < 75, `${runs.length} ran at once`);
  assert.ok(engine.stats().skippedSlots >= 100);
  for (let step = 0; step < 100; step++) {
    now += 10;
    await fireDue();
  }
  assert.equal(new Set(runs.map((r) => r.id)).size, 100, "every target ran again within an interval");
});
