// The engine against real loopback servers, on the system clock: the
// destination policy, cancellation on removal, per-host concurrency, and
// per-address verdicts of a name that resolves to several IPs.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { test } from "node:test";
import {
  createProbeEngine,
  MAX_REDIRECT_NAMES,
  type ProbeEngineOptions,
} from "../../../src/health/engine.ts";
import type { CheckSpec, Transition } from "../../../src/health/types.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { eventually } from "../../support/cluster.ts";
import { closeAll, connectionRecorder, listen } from "../../support/servers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function engineFor(t: { after: (fn: () => void) => void }, options: ProbeEngineOptions = {}) {
  const transitions: Transition[] = [];
  const engine = createProbeEngine({ onTransition: (x) => transitions.push(x), ...options });
  t.after(() => engine.close());
  return { engine, transitions };
}

const fast = (probes: CheckSpec["probes"], extra: Partial<CheckSpec> = {}): CheckSpec => ({
  probes,
  intervalMs: 100,
  timeoutMs: 1000,
  failureThreshold: 1,
  successThreshold: 1,
  ...extra,
});

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void, host = "127.0.0.1") {
  const server = createServer(handler);
  const port = await listen(server, host);
  return { server, port };
}

test("a destination in a denied CIDR is never connected to", async (t) => {
  const recorder = await connectionRecorder();
  t.after(() => recorder.close());
  // Loopback is allowed in general, 127.0.0.0/8 explicitly denied: deny wins.
  const { engine, transitions } = engineFor(t, {
    policy: { allowLoopback: true, deny: ["127.0.0.0/8"] },
    resolver: async () => ["127.0.0.1"],
  });
  const port = recorder.port;
  engine.set({ id: "http", host: "127.0.0.1", check: fast([{ type: "http", port, path: "/" }]) });
  engine.set({ id: "tcp", host: "127.0.0.1", check: fast([{ type: "tcp", port }]) });
  engine.set({ id: "grpc", host: "127.0.0.1", check: fast([{ type: "grpc", port }]) });
  engine.set({ id: "named", host: "probe.test", check: fast([{ type: "tcp", port }]) });
  await sleep(600);
  for (const id of ["http", "tcp", "grpc", "named"]) {
    assert.equal(engine.summary(id)?.reason, "DestinationDenied", id);
    assert.equal(engine.summary(id)?.verdict, "Unhealthy", id);
  }
  assert.equal(recorder.connections(), 0, "the denied listener got no connection");
  assert.equal(engine.stats().probes, 0);
  assert.ok(
    transitions.some((x) => x.id === "tcp" && x.to === "Unhealthy" && x.reason === "DestinationDenied"),
  );

  // The same listener is probed once the policy allows it.
  engine.setPolicy({ allowLoopback: true });
  await eventually(() => (engine.summary("tcp")?.verdict === "Healthy" ? true : undefined), {
    what: "tcp healthy",
  });
  assert.ok(recorder.connections() > 0);
});

test("a redirect to a denied destination is not followed", async (t) => {
  const recorder = await connectionRecorder("127.0.0.2");
  t.after(() => recorder.close());
  const { server, port } = await httpServer((_req, res) => {
    res.writeHead(302, { location: `http://127.0.0.2:${recorder.port}/` }).end();
  });
  t.after(() => closeAll(server));
  const { engine } = engineFor(t, { policy: { allowLoopback: true, deny: ["127.0.0.2/32"] } });
  engine.set({ id: "r", host: "127.0.0.1", check: fast([{ type: "http", port, followRedirects: true }]) });
  await eventually(() => (engine.summary("r")?.verdict === "Unhealthy" ? true : undefined), {
    what: "unhealthy",
  });
  assert.equal(engine.summary("r")?.reason, "DestinationDenied");
  assert.equal(recorder.connections(), 0);
});

// Issue 13: a target redirecting to a new name at every probe used to grow the DNS cache forever
// (600 names in 30 s for 20 targets, kept after the targets were deleted). On a fake clock (the
// HTTP traffic is real, on loopback): names expire after dnsRefresh and are freed.
test("redirect names are cached for dnsRefresh at most and freed after the target is gone", async (t) => {
  let n = 0;
  const { server, port } = await httpServer((req, res) => {
    if (req.url === "/") res.writeHead(302, { location: `http://n${n++}.redirect.test:${port}/ok` }).end();
    else res.end("ok");
  });
  t.after(() => closeAll(server));
  const clock = fakeClock(1_000_000);
  let probes = 0;
  const lookups: string[] = [];
  const engine = createProbeEngine({
    clock,
    tickMs: 1,
    dnsRefreshMs: 5000,
    policy: { allowLoopback: true },
    resolver: async (host) => {
      lookups.push(host);
      return ["127.0.0.1"];
    },
    onProbe: () => probes++,
  });
  t.after(() => engine.close());
  const check = fast([{ type: "http", port, followRedirects: true }], { intervalMs: 100 });
  engine.set({ id: "r", host: "127.0.0.1", check });
  let most = 0;
  // 200 probes over 20 s of fake time, each redirected to a new name.
  for (let i = 0; i < 200; i++) {
    const before = probes;
    clock.advance(100);
    await eventually(() => (probes > before ? true : undefined), { intervalMs: 1, what: `probe ${i}` });
    most = Math.max(most, engine.stats().dnsNames);
  }
  assert.equal(engine.summary("r")?.verdict, "Healthy");
  assert.ok(lookups.length >= 200, `every redirect name was resolved (${lookups.length})`);
  // At most the names of two refresh periods (5 s at one probe per 100 ms), far below 200.
  assert.ok(most <= 100 && most <= MAX_REDIRECT_NAMES, `at most ${most} names cached`);
  engine.remove("r");
  clock.advance(30_000); // the engine's periodic sweep
  assert.equal(engine.stats().dnsNames, 0, "nothing left once the target is gone");
  t.diagnostic(`redirect names: ${lookups.length} resolved, at most ${most} cached at once`);
});

test("removing a target cancels its in-flight probe", async (t) => {
  let open = 0;
  let seen = 0;
  const { server, port } = await httpServer((req) => {
    open++;
    seen++;
    req.socket.on("close", () => open--);
  });
  t.after(() => closeAll(server));
  const { engine } = engineFor(t, { policy: { allowLoopback: true } });
  engine.set({ id: "slow", host: "127.0.0.1", check: fast([{ type: "http", port }], { timeoutMs: 60_000 }) });
  engine.set({ id: "other", host: "127.0.0.1", check: fast([{ type: "tcp", port }]) });
  await eventually(() => (open === 1 ? true : undefined), { what: "the probe to hang" });
  assert.equal(engine.stats().inFlight, 1);
  engine.remove("slow");
  await eventually(() => (open === 0 ? true : undefined), {
    what: "the probe's connection to close",
    timeoutMs: 2000,
  });
  assert.equal(engine.stats().inFlight, 0);
  await sleep(300);
  assert.equal(seen, 1, "no probe after removal");
  assert.equal(engine.summary("other")?.verdict, "Healthy", "other targets undisturbed");
});

test("probes to one host are bounded by maxPerHost, and by maxConcurrent overall", async (t) => {
  let open = 0;
  let peak = 0;
  const { server, port } = await httpServer((_req, res) => {
    open++;
    peak = Math.max(peak, open);
    setTimeout(() => {
      open--;
      res.end("ok");
    }, 100);
  });
  t.after(() => closeAll(server));
  const { engine } = engineFor(t, { policy: { allowLoopback: true }, maxPerHost: 3, maxConcurrent: 100 });
  for (let i = 0; i < 20; i++) {
    engine.set({ id: `t${i}`, host: "127.0.0.1", check: fast([{ type: "http", port }], { intervalMs: 50 }) });
  }
  await eventually(() => ([...engine.summaries()].every((s) => s.verdict === "Healthy") ? true : undefined), {
    what: "all healthy",
  });
  assert.ok(peak <= 3, `peak concurrency ${peak}`);
  assert.ok(peak >= 2);
});

test("a name resolving to several addresses: each address gets its own verdict", async (t) => {
  const { server, port } = await httpServer((_req, res) => res.end("ok"));
  t.after(() => closeAll(server));
  const { engine, transitions } = engineFor(t, {
    policy: { allowLoopback: true },
    resolver: async () => ["127.0.0.1", "127.0.0.3"],
  });
  engine.set({ id: "multi", host: "svc.test", check: fast([{ type: "http", port, path: "/healthz" }]) });
  await eventually(
    () => {
      const addresses = engine.summary("multi")?.addresses ?? [];
      return addresses.length === 2 && addresses.every((a) => a.verdict !== "Unknown") ? true : undefined;
    },
    { what: "both addresses decided" },
  );
  const s = engine.summary("multi")!;
  assert.equal(s.verdict, "Healthy", "healthy while any address is");
  assert.deepEqual(
    s.addresses.map((a) => [a.address, a.verdict, a.reason]),
    [
      ["127.0.0.1", "Healthy", "ProbeSucceeded"],
      ["127.0.0.3", "Unhealthy", "ConnectionRefused"],
    ],
  );
  assert.ok(transitions.some((x) => x.address === "127.0.0.3" && x.to === "Unhealthy"));
  assert.ok(transitions.some((x) => x.address === undefined && x.to === "Healthy"));
});

test("several probes combined with all and any", async (t) => {
  const { server, port } = await httpServer((req, res) => res.writeHead(req.url === "/ok" ? 200 : 500).end());
  t.after(() => closeAll(server));
  const { engine } = engineFor(t, { policy: { allowLoopback: true } });
  const probes: CheckSpec["probes"] = [
    { type: "tcp", port },
    { type: "http", port, path: "/ok" },
    { type: "http", port: "web", path: "/broken" },
  ];
  engine.set({ id: "all", host: "127.0.0.1", ports: { web: port }, check: fast(probes, { combine: "all" }) });
  engine.set({ id: "any", host: "127.0.0.1", ports: { web: port }, check: fast(probes, { combine: "any" }) });
  engine.set({ id: "noport", host: "127.0.0.1", check: fast([{ type: "tcp", port: "missing" }]) });
  await eventually(() => {
    const states = ["all", "any", "noport"].map((id) => engine.summary(id)?.verdict);
    return states.every((v) => v !== "Unknown") ? true : undefined;
  });
  assert.equal(engine.summary("all")?.verdict, "Unhealthy");
  assert.equal(engine.summary("all")?.reason, "HTTPStatus");
  assert.equal(engine.summary("any")?.verdict, "Healthy");
  assert.equal(engine.summary("noport")?.reason, "PortNotFound");
});

test("probe observations carry latency and lateness for metrics", async (t) => {
  const { server, port } = await httpServer((_req, res) => res.end("ok"));
  t.after(() => closeAll(server));
  const seen: { type: string; ok: boolean; latencyMs: number; lateMs: number }[] = [];
  const { engine } = engineFor(t, { policy: { allowLoopback: true }, onProbe: (o) => seen.push(o) });
  engine.set({
    id: "m",
    host: "127.0.0.1",
    check: fast([
      { type: "http", port },
      { type: "tcp", port },
    ]),
  });
  await eventually(() => (seen.length >= 4 ? true : undefined));
  assert.deepEqual(new Set(seen.map((o) => o.type)), new Set(["http", "tcp"]));
  for (const o of seen) {
    assert.ok(o.latencyMs >= 0 && o.latencyMs < 1000);
    assert.ok(o.lateMs >= 0);
  }
});
