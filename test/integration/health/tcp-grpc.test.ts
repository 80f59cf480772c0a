// TCP and gRPC probes against real listeners and a real grpc-js server
// implementing grpc.health.v1.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { createServer as createTlsServer, type SecureVersion } from "node:tls";
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  type GrpcPool,
  grpcPool,
  grpcProbe,
  type HealthCheckRequest,
  type HealthCheckResponse,
  healthServiceDefinition,
  servingStatus,
} from "../../../src/health/grpc-probe.ts";
import { tcpProbe } from "../../../src/health/tcp-probe.ts";
import type { GrpcProbeSpec } from "../../../src/health/types.ts";
import { blackholePort, closeAll, closedPort, deadline, listen, testCerts } from "../../support/servers.ts";

test("tcp: connected, refused, and a connection that never completes", async () => {
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    s.destroy();
  });
  const port = await listen(server);
  const closed = await closedPort();
  const hole = await blackholePort();
  try {
    const good = await tcpProbe({ address: "127.0.0.1", port, signal: deadline(1000) });
    assert.deepEqual([good.ok, good.reason], [true, "ProbeSucceeded"]);
    assert.equal(
      (await tcpProbe({ address: "127.0.0.1", port: closed, signal: deadline(1000) })).reason,
      "ConnectionRefused",
    );
    const start = Date.now();
    const hung = await tcpProbe({ address: "127.0.0.1", port: hole.port, signal: deadline(300) });
    assert.equal(hung.reason, "Timeout");
    assert.ok(Date.now() - start < 2000);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(accepted, 1);
  } finally {
    await hole.close();
    await closeAll(server);
  }
});

for (const version of ["TLSv1.3", "TLSv1.2"] as SecureVersion[]) {
  test(`tcp with tls (${version}): a server that requires a client certificate accepts only a probe that presents one`, async () => {
    const { ca, cert, key } = testCerts();
    let handshakes = 0;
    const server = createTlsServer(
      {
        cert,
        key,
        ca,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: version,
        maxVersion: version,
      },
      (s) => {
        handshakes++;
        s.on("error", () => {});
      },
    );
    server.on("tlsClientError", () => {});
    const port = await listen(server);
    const probe = (tls: object) => tcpProbe({ address: "127.0.0.1", port, signal: deadline(2000), tls });
    try {
      const without = await probe({ caBundle: ca, serverName: "localhost" });
      assert.equal(without.reason, "TLSError", without.message);
      // TLS 1.3 names the missing certificate (alert 116); TLS 1.2 servers send a generic handshake_failure.
      assert.match(without.message, version === "TLSv1.3" ? /CERTIFICATE_REQUIRED/ : /HANDSHAKE_FAILURE/);
      const withCert = await probe({ caBundle: ca, serverName: "localhost", clientCert: { cert, key } });
      assert.deepEqual([withCert.ok, withCert.reason], [true, "ProbeSucceeded"], withCert.message);
      assert.match(
        withCert.message,
        new RegExp(`TLS handshake completed \\(${version.replace(".", "\\.")}\\)`),
      );
      assert.equal(handshakes, 1);
      // The test certificate is valid for 2 days: within a 72h warning.
      const soon = await probe({
        caBundle: ca,
        serverName: "localhost",
        clientCert: { cert, key },
        expiryWarningMs: 72 * 3_600_000,
      });
      assert.deepEqual([soon.ok, soon.reason], [true, "CertificateExpiresSoon"], soon.message);
      // A server certificate from an unknown CA, with or without a client certificate.
      const untrusted = await probe({ serverName: "localhost", clientCert: { cert, key } });
      assert.equal(untrusted.reason, "TLSError", untrusted.message);
    } finally {
      await closeAll(server);
    }
  });
}

// --- gRPC -------------------------------------------------------------------

const statuses = new Map<string, number>([
  ["", servingStatus.SERVING],
  ["db", servingStatus.SERVING],
  ["cache", servingStatus.NOT_SERVING],
  ["odd", servingStatus.SERVICE_UNKNOWN],
]);
const impl: UntypedServiceImplementation = {
  Check(
    call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
    callback: sendUnaryData<HealthCheckResponse>,
  ) {
    const service = call.request.service;
    if (service === "hang") return; // never answers
    const status = statuses.get(service);
    if (status === undefined)
      callback({ code: 5, details: "unknown service" }); // NOT_FOUND, as the standard server does
    else callback(null, { status });
  },
};

function grpcServer(creds: ServerCredentials): Promise<{ server: Server; port: number }> {
  const server = new Server();
  server.addService(healthServiceDefinition, impl);
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (err, port) => (err ? reject(err) : resolve({ server, port }))),
  );
}

let plain: { server: Server; port: number };
let secure: { server: Server; port: number };
let pool: GrpcPool;

before(async () => {
  plain = await grpcServer(ServerCredentials.createInsecure());
  const { cert, key } = testCerts();
  secure = await grpcServer(
    ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(cert), private_key: Buffer.from(key) }]),
  );
  pool = grpcPool(() => Date.now());
});
after(() => {
  pool.close();
  plain.server.forceShutdown();
  secure.server.forceShutdown();
});

function grpc(spec: Partial<GrpcProbeSpec>, port = plain.port, timeoutMs = 2000) {
  return grpcProbe(
    { type: "grpc", port, ...spec },
    { address: "127.0.0.1", host: "127.0.0.1", port, signal: deadline(timeoutMs), timeoutMs, idleMs: 60_000 },
    pool,
  );
}

test("grpc: SERVING is healthy, for the server and for a named service", async () => {
  const o = await grpc({});
  assert.deepEqual([o.ok, o.message], [true, "SERVING"]);
  assert.equal((await grpc({ service: "db" })).ok, true);
});

test("grpc: NOT_SERVING, unknown service", async () => {
  const notServing = await grpc({ service: "cache" });
  assert.deepEqual(
    [notServing.ok, notServing.reason, notServing.message],
    [false, "NotServing", "gRPC health: NOT_SERVING"],
  );
  assert.equal((await grpc({ service: "nope" })).reason, "ServiceUnknown");
  assert.equal((await grpc({ service: "odd" })).reason, "ServiceUnknown");
});

test("grpc: a server that never answers is a Timeout; nothing listening is ConnectionRefused", async () => {
  const start = Date.now();
  assert.equal((await grpc({ service: "hang" }, plain.port, 300)).reason, "Timeout");
  assert.ok(Date.now() - start < 2000);
  const closed = await closedPort();
  const refused = await grpc({}, closed);
  assert.equal(refused.reason, "ConnectionRefused");
});

test("grpc: channels are reused per destination and closed when idle", async () => {
  const p = grpcPool(() => Date.now());
  const ctx = { address: "127.0.0.1", host: "127.0.0.1", port: plain.port, timeoutMs: 1000, idleMs: 50 };
  for (let i = 0; i < 3; i++) {
    assert.equal(
      (await grpcProbe({ type: "grpc", port: plain.port }, { ...ctx, signal: deadline(1000) }, p)).ok,
      true,
    );
  }
  assert.equal(p.size, 1);
  p.sweep(Date.now() + 1000);
  assert.equal(p.size, 0);
  p.close();
});

test("grpc over TLS: verified with a CA bundle; an untrusted certificate is a TLSError", async () => {
  const { ca } = testCerts();
  assert.equal((await grpc({ tls: { caBundle: ca, serverName: "localhost" } }, secure.port)).ok, true);
  const untrusted = await grpc({ tls: true }, secure.port);
  assert.equal(untrusted.reason, "TLSError", untrusted.message);
});

test("grpc mTLS: a server that requires a client certificate serves only a probe that presents one", async () => {
  const { ca, cert, key } = testCerts();
  const mtls = await grpcServer(
    ServerCredentials.createSsl(
      Buffer.from(ca),
      [{ cert_chain: Buffer.from(cert), private_key: Buffer.from(key) }],
      true,
    ),
  );
  try {
    const without = await grpc({ tls: { caBundle: ca, serverName: "localhost" } }, mtls.port);
    assert.equal(without.ok, false);
    const withCert = await grpc(
      { tls: { caBundle: ca, serverName: "localhost", clientCert: { cert, key } } },
      mtls.port,
    );
    assert.equal(withCert.ok, true, withCert.message);
  } finally {
    mtls.server.forceShutdown();
  }
});

test("grpc over TLS to an IP: verified against the IP, with no server name sent (RFC 6066, Node's DEP0123)", async () => {
  const { ca } = testCerts();
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? w.message);
  process.on("warning", onWarning);
  try {
    const r = await grpc({ tls: { caBundle: ca } }, secure.port);
    assert.equal(r.ok, true, r.message);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  } finally {
    process.off("warning", onWarning);
  }
  assert.deepEqual(warnings, []);
});
