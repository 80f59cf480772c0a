// HTTP(S) probes against real servers on loopback.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createNetServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { type HttpProbeDeps, httpProbe } from "../../../src/health/http-probe.ts";
import { connectionPool } from "../../../src/health/http1.ts";
import { destinationPolicy } from "../../../src/health/policy.ts";
import { fail, Reason } from "../../../src/health/reasons.ts";
import type { HttpProbeSpec } from "../../../src/health/types.ts";
import {
  closeAll,
  closedPort,
  connectionRecorder,
  deadline,
  listen,
  testCerts,
} from "../../support/servers.ts";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const routes = new Map<string, Handler>();
const seen: { path: string; headers: IncomingMessage["headers"] }[] = [];
const server = createServer((req, res) => {
  seen.push({ path: req.url ?? "", headers: req.headers });
  const handler = routes.get((req.url ?? "").split("?")[0]!);
  if (handler) handler(req, res);
  else res.writeHead(404).end("not found");
});
let connections = 0;
server.on("connection", () => connections++);
const https = createHttpsServer({ cert: testCerts().cert, key: testCerts().key }, (_req, res) =>
  res.end("secure ok"),
);
let port = 0;
let tlsPort = 0;

routes.set("/ok", (_req, res) => res.end("all good"));
routes.set("/as", (_req, res) => res.end(`${"a".repeat(60000)}!`));
routes.set("/status", (req, res) => {
  const code = Number(new URL(req.url!, "http://x").searchParams.get("code"));
  res.writeHead(code).end();
});
routes.set("/hang", () => {});
routes.set("/endless", (_req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  const chunk = Buffer.alloc(16 * 1024, "a");
  const pump = () => {
    while (res.write(chunk)) {}
  };
  res.on("drain", pump);
  pump();
});
routes.set("/split", (_req, res) => {
  res.writeHead(200);
  res.write("status: rea");
  setTimeout(() => res.end("dy and more"), 20);
});
routes.set("/redirect", (req, res) => {
  const to = new URL(req.url!, "http://x").searchParams.get("to")!;
  res.writeHead(302, { location: to }).end();
});
routes.set("/loop", (_req, res) => res.writeHead(301, { location: "/loop" }).end());

const probeDeps = (keepAlive = false): HttpProbeDeps => {
  const policy = destinationPolicy({ allowLoopback: true });
  return {
    pool: connectionPool({ keepAlive, maxAgeMs: 60_000, maxIdlePerKey: 4, idleTimeoutMs: 30_000 }),
    async resolveAllowed(host) {
      const address = host === "localhost" ? "127.0.0.1" : host;
      const d = policy.check(address);
      return d.allowed ? { address } : fail(Reason.DestinationDenied, d.message);
    },
  };
};
const deps = probeDeps();

function probe(spec: Partial<HttpProbeSpec>, timeoutMs = 2000, d = deps, p = port) {
  return httpProbe(
    { type: "http", port: p, ...spec },
    { address: "127.0.0.1", host: "127.0.0.1", port: p, signal: deadline(timeoutMs) },
    d,
  );
}

before(async () => {
  port = await listen(server);
  tlsPort = await listen(https);
});
after(async () => {
  await closeAll(server);
  await closeAll(https);
});

test("healthy: a 2xx answer", async () => {
  const o = await probe({ path: "/ok" });
  assert.deepEqual([o.ok, o.reason, o.message], [true, "ProbeSucceeded", "HTTP 200"]);
});

test("wrong status: HTTPStatus with the code in the message; expected ranges are configurable", async () => {
  const o = await probe({ path: "/status?code=503" });
  assert.equal(o.ok, false);
  assert.equal(o.reason, "HTTPStatus");
  assert.equal(o.message, "HTTP 503 Service Unavailable (expected 200-399)");
  assert.equal(
    (await probe({ path: "/status?code=204", expectedStatuses: [{ from: 204, to: 204 }] })).ok,
    true,
  );
  const notIn = await probe({
    path: "/status?code=200",
    expectedStatuses: [
      { from: 204, to: 204 },
      { from: 300, to: 302 },
    ],
  });
  assert.match(notIn.message, /expected 204, 300-302/);
});

test("sends the configured method and headers, and a Host header", async () => {
  seen.length = 0;
  await probe({ path: "/ok", method: "HEAD", headers: { authorization: "Bearer s3cret", "x-probe": "1" } });
  const h = seen.at(-1)!.headers;
  assert.equal(h.authorization, "Bearer s3cret");
  assert.equal(h["x-probe"], "1");
  assert.equal(h.host, `127.0.0.1:${port}`);
  await probe({ path: "/ok", headers: { Host: "api.example" } });
  assert.equal(seen.at(-1)!.headers.host, "api.example");
});

test("connection refused", async () => {
  const closed = await closedPort();
  const o = await probe({ path: "/" }, 2000, deps, closed);
  assert.equal(o.reason, "ConnectionRefused");
});

test("timeout: a server that accepts and never answers", async () => {
  const start = Date.now();
  const o = await probe({ path: "/hang" }, 300);
  assert.equal(o.reason, "Timeout");
  assert.ok(Date.now() - start < 2000, "the deadline ends the probe");
});

test("slow headers (slowloris): a server that trickles the status line is cut at the deadline", async () => {
  const sockets = new Set<Socket>();
  let closedByProbe = false;
  const slow = createNetServer((socket) => {
    sockets.add(socket);
    const text = "HTTP/1.1 200 OK\r\nX-Slow: ";
    let i = 0;
    const timer = setInterval(() => socket.write(i < text.length ? text[i++]! : "a"), 20);
    socket.on("close", () => {
      clearInterval(timer);
      closedByProbe = true;
    });
    socket.on("error", () => {});
  });
  const slowPort = await listen(slow);
  try {
    const start = Date.now();
    const o = await probe({ path: "/" }, 400, deps, slowPort);
    assert.equal(o.reason, "Timeout");
    assert.ok(Date.now() - start < 2000);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(closedByProbe, "the probe destroyed its socket");
  } finally {
    await closeAll(slow, sockets);
  }
});

test("endless body: the verdict comes from the status line and the body is never buffered", async () => {
  const before = process.memoryUsage().rss;
  const o = await probe({ path: "/endless" }, 2000);
  assert.equal(o.ok, true);
  const mismatch = await probe({ path: "/endless", bodyMatch: "needle", maxBodyBytes: 1000 }, 2000);
  assert.equal(mismatch.reason, "BodyMismatch");
  assert.match(mismatch.message, /first 1000 bytes/);
  assert.ok(process.memoryUsage().rss - before < 64 * 2 ** 20);
});

test("body match: found across chunks, or BodyMismatch", async () => {
  assert.equal((await probe({ path: "/split", bodyMatch: "ready" })).ok, true);
  const o = await probe({ path: "/ok", bodyMatch: "ready" });
  assert.equal(o.reason, "BodyMismatch");
});

test("body regex: matched in linear time, even for a pattern that backtracks catastrophically", async () => {
  assert.equal((await probe({ path: "/ok", bodyRegex: "^all go+d$" })).ok, true);
  const miss = await probe({ path: "/ok", bodyRegex: "^ready" });
  assert.equal(miss.reason, "BodyMismatch");
  assert.match(miss.message, /pattern/);
  // (a+)+$ against 60,000 a's and a "!": a backtracking engine would never
  // finish (this test would hang); the linear engine answers at once.
  const evil = await probe({ path: "/as", bodyRegex: "(a+)+$", maxBodyBytes: 65536 }, 2000);
  assert.equal(evil.reason, "BodyMismatch");
});

test("redirects are not followed by default; 3xx is judged by the expected statuses", async () => {
  assert.equal((await probe({ path: "/redirect?to=/status?code=500" })).ok, true);
  const strict = await probe({ path: "/redirect?to=/ok", expectedStatuses: [{ from: 200, to: 299 }] });
  assert.equal(strict.reason, "HTTPStatus");
  assert.match(strict.message, /HTTP 302/);
});

test("redirects when followed: each hop is probed, and denied destinations are never contacted", async () => {
  assert.equal(
    (await probe({ path: "/redirect?to=/status?code=500", followRedirects: true })).reason,
    "HTTPStatus",
  );
  assert.equal(
    (await probe({ path: `/redirect?to=http://localhost:${port}/ok`, followRedirects: true })).ok,
    true,
  );
  // A denied destination is a loopback recorder (never a real outside address such as
  // 169.254.169.254: if the guard regressed, this test must not send traffic off the machine).
  const recorder = await connectionRecorder("127.0.0.66");
  try {
    const policy = destinationPolicy({ allowLoopback: true, deny: ["127.0.0.66/32"] });
    const denied = await probe(
      {
        path: `/redirect?to=${encodeURIComponent(`http://127.0.0.66:${recorder.port}/latest/meta-data/`)}`,
        followRedirects: true,
      },
      2000,
      {
        ...deps,
        async resolveAllowed(host) {
          const d = policy.check(host);
          return d.allowed ? { address: host } : fail(Reason.DestinationDenied, d.message);
        },
      },
    );
    assert.equal(denied.reason, "DestinationDenied");
    assert.match(denied.message, /127\.0\.0\.66\/32/);
    assert.equal(recorder.connections(), 0);
  } finally {
    await recorder.close();
  }
  assert.equal((await probe({ path: "/loop", followRedirects: true })).reason, "TooManyRedirects");
  assert.equal(
    (await probe({ path: "/redirect?to=ftp://x/", followRedirects: true })).reason,
    "ProtocolError",
  );
});

test("credentials go only to the probe's origin: kept on a same-origin redirect, dropped on any other", async (t) => {
  // A second server on another loopback address, and one on the first address but another port.
  const received: { where: string; headers: IncomingMessage["headers"] }[] = [];
  const other = (where: string) =>
    createServer((req, res) => {
      received.push({ where, headers: req.headers });
      const back = new URL(req.url!, "http://x").searchParams.get("back");
      if (back) res.writeHead(302, { location: back }).end();
      else res.end("landed");
    });
  const host2 = other("127.0.0.3");
  const port2 = await listen(host2, "127.0.0.3");
  const samehost = other("127.0.0.1:other-port");
  const port3 = await listen(samehost, "127.0.0.1");
  t.after(() => Promise.all([closeAll(host2), closeAll(samehost)]));
  const headers = {
    Authorization: "Bearer from-secret",
    Cookie: "session=s3cret",
    "Proxy-Authorization": "Basic cHJveHk=",
    "X-Api-Key": "from-secret-too",
    Host: "app.example",
    "X-Plain": "visible",
  };
  const spec = { headers, secretHeaders: ["X-Api-Key"], followRedirects: true };
  const credentials = ["authorization", "cookie", "proxy-authorization", "x-api-key"];

  // Same origin: everything is sent again.
  seen.length = 0;
  assert.equal((await probe({ ...spec, path: "/redirect?to=/ok" })).ok, true);
  assert.equal(seen.length, 2);
  for (const name of credentials) assert.ok(seen[1]!.headers[name], `same origin keeps ${name}`);
  assert.equal(seen[1]!.headers.host, "app.example");

  // Another host, the same host on another port, and a chain that comes back: the second
  // server and the way back never see a credential; other headers still go.
  const cases = [
    { to: `http://127.0.0.3:${port2}/landing`, where: "127.0.0.3", host: `127.0.0.3:${port2}` },
    { to: `http://127.0.0.1:${port3}/landing`, where: "127.0.0.1:other-port", host: `127.0.0.1:${port3}` },
  ];
  for (const c of cases) {
    received.length = 0;
    const o = await probe({ ...spec, path: `/redirect?to=${encodeURIComponent(c.to)}` });
    assert.deepEqual([o.ok, received.length, received[0]?.where], [true, 1, c.where], c.to);
    const got = received[0]!.headers;
    for (const name of credentials) assert.equal(got[name], undefined, `${c.where} must not get ${name}`);
    assert.equal(got["x-plain"], "visible");
    assert.equal(got.host, c.host, "the new origin's Host, not the configured one");
  }
  received.length = 0;
  seen.length = 0;
  const back = `http://127.0.0.3:${port2}/hop?back=${encodeURIComponent(`http://127.0.0.1:${port}/ok`)}`;
  assert.equal((await probe({ ...spec, path: `/redirect?to=${encodeURIComponent(back)}` })).ok, true);
  assert.equal(received.length, 1);
  assert.equal(seen.length, 2, "the first hop and the way back");
  for (const name of credentials) {
    assert.equal(received[0]!.headers[name], undefined, `127.0.0.3 must not get ${name}`);
    assert.equal(seen[1]!.headers[name], undefined, `once dropped, ${name} stays dropped`);
  }
});

test("HTTPS: verified against a CA bundle and server name; a bad certificate is a TLSError", async () => {
  const { ca } = testCerts();
  const https = (spec: Partial<HttpProbeSpec>) =>
    probe({ scheme: "HTTPS", path: "/", ...spec }, 2000, deps, tlsPort);
  assert.equal((await https({ tls: { caBundle: ca, serverName: "localhost" } })).ok, true);
  // Verified against the IP SAN when no server name is given.
  assert.equal((await https({ tls: { caBundle: ca } })).ok, true);
  const untrusted = await https({});
  assert.equal(untrusted.reason, "TLSError");
  assert.match(untrusted.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|self.signed|unable to verify/i);
  const wrongName = await https({ tls: { caBundle: ca, serverName: "other.example" } });
  assert.equal(wrongName.reason, "TLSError");
  assert.equal((await https({ tls: { insecureSkipVerify: true } })).ok, true);
  // Plain HTTP to a TLS port, TLS to a plain port.
  assert.equal((await probe({ path: "/" }, 2000, deps, tlsPort)).ok, false);
  assert.equal(
    (await probe({ scheme: "HTTPS", path: "/ok", tls: { insecureSkipVerify: true } })).reason,
    "TLSError",
  );
});

test("HTTPS expiryWarning: a certificate expiring within it is CertificateExpiresSoon, still a success", async () => {
  const { ca } = testCerts();
  // The test leaf certificate is valid for 2 days.
  const soon = await probe(
    { scheme: "HTTPS", path: "/", tls: { caBundle: ca, expiryWarningMs: 72 * 3_600_000 } },
    2000,
    deps,
    tlsPort,
  );
  assert.equal(soon.ok, true);
  assert.equal(soon.reason, "CertificateExpiresSoon");
  assert.match(soon.message, /certificate expires \d{4}-\d\d-\d\dT.* \(in [01] days\)/);
  const later = await probe(
    { scheme: "HTTPS", path: "/", tls: { caBundle: ca, expiryWarningMs: 3_600_000 } },
    2000,
    deps,
    tlsPort,
  );
  assert.equal(later.reason, "ProbeSucceeded");
});

test("mTLS: a server that requires a client certificate accepts the probe only when it presents one", async () => {
  const { ca, cert, key } = testCerts();
  // The test leaf (no extended key usage) doubles as the client certificate, signed by the CA the server trusts.
  const mtls = createHttpsServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (req, res) =>
    res.end(`client ${(req.socket as import("node:tls").TLSSocket).getPeerCertificate().subject?.CN}`),
  );
  const mtlsPort = await listen(mtls);
  try {
    const without = await probe({ scheme: "HTTPS", path: "/", tls: { caBundle: ca } }, 2000, deps, mtlsPort);
    assert.equal(without.ok, false);
    const withCert = await probe(
      { scheme: "HTTPS", path: "/", tls: { caBundle: ca, clientCert: { cert, key } } },
      2000,
      deps,
      mtlsPort,
    );
    assert.deepEqual([withCert.ok, withCert.reason], [true, "ProbeSucceeded"]);
  } finally {
    await closeAll(mtls);
  }
});

test("keep-alive reuses the connection between probes", async () => {
  const kept = probeDeps(true);
  const startConnections = connections;
  for (let i = 0; i < 5; i++) assert.equal((await probe({ path: "/ok" }, 2000, kept)).ok, true);
  assert.equal(connections - startConnections, 1);
  assert.equal(kept.pool.idle, 1);
  kept.pool.destroy();
  const fresh = connections;
  for (let i = 0; i < 3; i++) await probe({ path: "/ok" });
  assert.equal(connections - fresh, 3, "without keep-alive, a connection per probe");
});

test("IPv6 loopback", async (t) => {
  const v6 = createServer((_req, res) => res.end("ok"));
  let v6Port: number;
  try {
    v6Port = await listen(v6, "::1");
  } catch {
    t.skip("no IPv6 loopback here");
    return;
  }
  try {
    const o = await httpProbe(
      { type: "http", port: v6Port },
      { address: "::1", host: "::1", port: v6Port, signal: deadline(2000) },
      deps,
    );
    assert.equal(o.ok, true);
  } finally {
    await closeAll(v6);
  }
});

/** A raw TCP server answering every connection with `response` (then, optionally, closing). */
async function rawServer(
  response: string | Buffer | ((socket: Socket) => void),
  t: { after: (fn: () => unknown) => void },
) {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("data", () => {
      if (typeof response === "function") response(socket);
      else socket.end(response);
    });
  });
  const p = await listen(server);
  t.after(() => closeAll(server, sockets));
  return p;
}

test("reads chunked bodies, HTTP/1.0, interim 1xx responses and bare-LF heads", async (t) => {
  const chunked = await rawServer(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    t,
  );
  assert.equal((await probe({ bodyMatch: "lo wor" }, 2000, deps, chunked)).ok, true);
  assert.equal(
    (await probe({ bodyMatch: "\r\n6" }, 2000, deps, chunked)).reason,
    "BodyMismatch",
    "matched on decoded bytes",
  );
  const http10 = await rawServer("HTTP/1.0 503 Service Unavailable\r\n\r\ndown", t);
  const o = await probe({}, 2000, deps, http10);
  assert.equal(o.message, "HTTP 503 Service Unavailable (expected 200-399)");
  const interim = await rawServer(
    "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    t,
  );
  assert.equal((await probe({}, 2000, deps, interim)).message, "HTTP 204");
  const upgrade = await rawServer(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
    t,
  );
  assert.equal((await probe({}, 2000, deps, upgrade)).reason, "HTTPStatus");
  const bareLf = await rawServer("HTTP/1.1 200 OK\nContent-Length: 2\n\nok", t);
  assert.equal((await probe({ bodyMatch: "ok" }, 2000, deps, bareLf)).ok, true);
});

test("malformed responses are ProtocolErrors", async (t) => {
  const garbage = await rawServer("SSH-2.0-OpenSSH_9.6\r\n\r\n", t);
  assert.equal((await probe({}, 2000, deps, garbage)).reason, "ProtocolError");
  const conflicting = await rawServer(
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    t,
  );
  assert.equal((await probe({}, 2000, deps, conflicting)).reason, "ProtocolError");
  const huge = await rawServer(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, t);
  const big = await probe({}, 2000, deps, huge);
  assert.equal(big.reason, "ProtocolError");
  assert.match(big.message, /exceeds 16384 bytes/);
  const truncated = await rawServer("HTTP/1.1 200 O", t);
  assert.equal((await probe({}, 2000, deps, truncated)).reason, "ProtocolError");
  const badChunk = await rawServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", t);
  assert.equal((await probe({ bodyMatch: "x" }, 2000, deps, badChunk)).reason, "ProtocolError");
});

test("header values and paths cannot smuggle CR/LF into the request", async () => {
  const bad = await probe({ headers: { "x-a": "1\r\nX-Injected: 1" } });
  assert.equal(bad.reason, "InvalidProbe");
  assert.equal((await probe({ path: "/ok HTTP/1.1\r\nX: y" })).reason, "InvalidProbe");
  assert.equal((await probe({ method: "GET /" })).reason, "InvalidProbe");
});

test("a keep-alive connection closed by the server between probes is retried on a new one", async (t) => {
  let conns = 0;
  const closing = await rawServer((socket) => {
    conns++;
    // Answers as keep-alive, then closes the idle connection a moment later.
    socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    setTimeout(() => socket.destroy(), 20);
  }, t);
  const kept = probeDeps(true);
  t.after(() => kept.pool.destroy());
  assert.equal((await probe({}, 2000, kept, closing)).ok, true);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal((await probe({}, 2000, kept, closing)).ok, true);
  assert.equal(conns, 2);
});

test("connections are reused for at most their max age", async () => {
  const aged = probeDeps(true);
  const pool = connectionPool({ keepAlive: true, maxAgeMs: 50, maxIdlePerKey: 4, idleTimeoutMs: 30_000 });
  const d = { ...aged, pool };
  const before = connections;
  await probe({ path: "/ok" }, 2000, d);
  await probe({ path: "/ok" }, 2000, d);
  await new Promise((r) => setTimeout(r, 80));
  await probe({ path: "/ok" }, 2000, d);
  assert.equal(connections - before, 2);
  pool.destroy();
  aged.pool.destroy();
});

test("idle connections are closed after the idle timeout, by the pool's sweep (no timer per connection)", async () => {
  const pool = connectionPool({ keepAlive: true, maxAgeMs: 60_000, maxIdlePerKey: 4, idleTimeoutMs: 150 });
  const d = { ...probeDeps(true), pool };
  let closed = 0;
  const counted = new Promise<void>((resolve) => {
    server.once("connection", (s: Socket) =>
      s.once("close", () => {
        closed++;
        resolve();
      }),
    );
  });
  assert.equal((await probe({ path: "/ok" }, 2000, d)).ok, true);
  assert.equal(pool.idle, 1);
  await Promise.race([counted, new Promise((r) => setTimeout(r, 5000))]);
  assert.equal(closed, 1, "the server saw the idle connection close");
  assert.equal(pool.idle, 0);
  // The next probe simply opens a new connection.
  const before = connections;
  assert.equal((await probe({ path: "/ok" }, 2000, d)).ok, true);
  assert.equal(connections - before, 1);
  pool.destroy();
});
