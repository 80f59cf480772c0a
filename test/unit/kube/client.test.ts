// The client's request timeout against real sockets on loopback: servers that
// accept and never answer, or send headers and stall the body. (A socket
// standing in for a stalled API server, not a mock of the Kubernetes API.)
import assert from "node:assert/strict";
import { createServer as createHttpServer, type ServerResponse } from "node:http";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { type TestContext, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { ApiError, isRequestTimeout, kubeClient, RequestTimeoutError } from "../../../src/kube/client.ts";
import { TerminalError } from "../../../src/kube/reconcile.ts";

function kubeConfigFor(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

/** A TCP server that accepts connections and never writes a byte. */
async function silentServer(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return (server.address() as AddressInfo).port;
}

/** An HTTP server whose handler decides per request; open responses are ended when the test ends. */
async function httpServer(t: TestContext, handle: (path: string, res: ServerResponse) => void) {
  const server = createHttpServer((req, res) => handle(req.url ?? "", res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return (server.address() as AddressInfo).port;
}

test("a request to a server that never answers fails with a retryable RequestTimeoutError", async (t) => {
  const client = kubeClient(kubeConfigFor(await silentServer(t)), { requestTimeoutMs: 200 });
  const err = await client.request({ method: "GET", path: "/api/v1/namespaces/x/configmaps" }).then(
    () => assert.fail("expected a timeout"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RequestTimeoutError, String(err));
  assert.ok(isRequestTimeout(err));
  assert.ok(!(err instanceof TerminalError), "retried by the controller like any transient error");
  assert.equal(err.retryable, true);
  assert.equal(err.timeoutMs, 200);
  assert.equal(
    err.message,
    "GET /api/v1/namespaces/x/configmaps: no complete response from the API server within 200 ms (request timeout)",
  );
});

test("the timeout covers the body: headers sent, body stalled", async (t) => {
  const port = await httpServer(t, (_path, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write('{"items": [');
  });
  const client = kubeClient(kubeConfigFor(port), { requestTimeoutMs: 200 });
  await assert.rejects(client.request({ method: "GET", path: "/api/v1/pods" }), RequestTimeoutError);
});

test("the caller's signal still aborts first, with its own reason; answers and API errors are unchanged", async (t) => {
  const port = await httpServer(t, (path, res) => {
    if (path.startsWith("/hang")) return; // never answered
    if (path.startsWith("/missing")) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ kind: "Status", reason: "NotFound", message: "not here", code: 404 }));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok": true}');
  });
  const client = kubeClient(kubeConfigFor(port), { requestTimeoutMs: 10_000 });
  const ac = new AbortController();
  const pending = client.request({ method: "GET", path: "/hang", signal: ac.signal });
  ac.abort(new Error("shutting down"));
  await assert.rejects(pending, (e: unknown) => !(e instanceof RequestTimeoutError));
  assert.deepEqual(await client.request({ method: "GET", path: "/fine" }), { ok: true });
  await assert.rejects(client.request({ method: "GET", path: "/missing" }), ApiError);
  // With a caller signal that never fires, the timeout still applies.
  const short = kubeClient(kubeConfigFor(port), { requestTimeoutMs: 200 });
  await assert.rejects(
    short.request({ method: "GET", path: "/hang", signal: new AbortController().signal }),
    RequestTimeoutError,
  );
});
