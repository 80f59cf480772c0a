// The udp probe through the engine against a real UDP echo server on
// loopback: a reply (matching or not the expected regex), a closed port
// (ICMP port unreachable, a fast failure), a silent server (Timeout), an
// IPv6 loopback server, and a denied destination that gets no datagram.
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { test } from "node:test";
import { createProbeEngine, type ProbeEngineOptions } from "../../../src/health/engine.ts";
import type { CheckSpec, UdpProbeSpec } from "../../../src/health/types.ts";
import { eventually } from "../../support/cluster.ts";

interface UdpServer {
  port: number;
  /** Datagrams received so far. */
  received: () => number;
  /** Whether it answers; a silent server reads and drops. */
  answering: boolean;
}

/** A UDP server on `host` that answers each datagram with "pong " + the datagram. */
async function udpEcho(t: { after: (fn: () => void) => void }, host = "127.0.0.1"): Promise<UdpServer> {
  const socket: Socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  let received = 0;
  const server: UdpServer = { port: 0, received: () => received, answering: true };
  socket.on("message", (msg, from) => {
    received++;
    if (server.answering) socket.send(Buffer.concat([Buffer.from("pong "), msg]), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  server.port = socket.address().port;
  t.after(() => socket.close());
  return server;
}

/** A loopback UDP port with nothing bound to it (bound once to pick it, then released). */
async function closedPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(resolve));
  return port;
}

function engineFor(t: { after: (fn: () => void) => void }, options: ProbeEngineOptions = {}) {
  const engine = createProbeEngine({ policy: { allowLoopback: true }, ...options });
  t.after(() => engine.close());
  return engine;
}

const udp = (port: number, extra: Partial<UdpProbeSpec> = {}): UdpProbeSpec => ({
  type: "udp",
  port,
  payload: new TextEncoder().encode("ping"),
  ...extra,
});

const check = (probe: UdpProbeSpec, timeoutMs = 2000): CheckSpec => ({
  probes: [probe],
  intervalMs: 5000,
  timeoutMs,
  failureThreshold: 1,
  successThreshold: 1,
});

const verdictOf = (engine: ReturnType<typeof createProbeEngine>, id: string) => () => {
  const s = engine.summary(id);
  return s && s.verdict !== "Unknown" ? s : undefined;
};

test("a reply is healthy; a reply that does not match expectRegex is ResponseMismatch", async (t) => {
  const server = await udpEcho(t);
  const engine = engineFor(t);
  engine.set({ id: "any", host: "127.0.0.1", check: check(udp(server.port)) });
  engine.set({
    id: "match",
    host: "127.0.0.1",
    check: check(udp(server.port, { expectRegex: "^pong ping$" })),
  });
  engine.set({ id: "mismatch", host: "127.0.0.1", check: check(udp(server.port, { expectRegex: "^PONG" })) });
  const any = await eventually(verdictOf(engine, "any"), { what: "udp verdict" });
  assert.equal(any.verdict, "Healthy");
  assert.equal(any.reason, "ProbeSucceeded");
  const match = await eventually(verdictOf(engine, "match"), { what: "udp verdict" });
  assert.equal(match.verdict, "Healthy");
  const mismatch = await eventually(verdictOf(engine, "mismatch"), { what: "udp verdict" });
  assert.equal(mismatch.verdict, "Unhealthy");
  assert.equal(mismatch.reason, "ResponseMismatch");
  assert.match(mismatch.message, /pong ping/);
});

test("a closed port is PortUnreachable before the timeout; a silent server is Timeout", async (t) => {
  const silent = await udpEcho(t);
  silent.answering = false;
  const port = await closedPort();
  const engine = engineFor(t);
  // A 30 s timeout: PortUnreachable must come from the ICMP error, long before it.
  engine.set({ id: "closed", host: "127.0.0.1", check: check(udp(port), 30_000) });
  const closed = await eventually(verdictOf(engine, "closed"), { what: "closed port verdict" });
  assert.equal(closed.verdict, "Unhealthy");
  assert.equal(closed.reason, "PortUnreachable");

  engine.set({ id: "silent", host: "127.0.0.1", check: check(udp(silent.port), 300) });
  const s = await eventually(verdictOf(engine, "silent"), { what: "silent server verdict" });
  assert.equal(s.verdict, "Unhealthy");
  assert.equal(s.reason, "Timeout");
  assert.ok(silent.received() >= 1, "the datagram reached the server");
});

test("IPv6 loopback and a binary payload", async (t) => {
  const server = await udpEcho(t, "::1");
  const engine = engineFor(t);
  const payload = new Uint8Array([0, 1, 2, 0xff]);
  engine.set({ id: "v6", host: "::1", check: check(udp(server.port, { payload })) });
  const v6 = await eventually(verdictOf(engine, "v6"), { what: "udp6 verdict" });
  assert.equal(v6.verdict, "Healthy", v6.message);
});

test("a denied destination gets no datagram", async (t) => {
  const server = await udpEcho(t);
  const engine = engineFor(t, { policy: { allowLoopback: true, deny: ["127.0.0.0/8"] } });
  engine.set({ id: "denied", host: "127.0.0.1", check: check(udp(server.port)) });
  const d = await eventually(verdictOf(engine, "denied"), { what: "denied verdict" });
  assert.equal(d.reason, "DestinationDenied");
  assert.equal(server.received(), 0);
});
