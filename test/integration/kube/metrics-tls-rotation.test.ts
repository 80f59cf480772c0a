// Certificate rotation on the /metrics HTTPS listener (serveEndpoints, as the
// manager runs it) over loopback: the files are swapped as the kubelet swaps
// a mounted Secret. A new connection then gets certificate B, a connection
// opened under A goes on serving, and a bad swap (a key that is
// not the certificate's) keeps B and shows in the listener's own metrics.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { connect, type TLSSocket } from "node:tls";
import { Registry } from "prom-client";
import { type EndpointServer, serveEndpoints } from "../../../src/kube/server.ts";
import { eventually } from "../../support/cluster.ts";
import { secretVolume, testPki } from "../../support/servers.ts";

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;

describe("/metrics over HTTPS: certificates rotated like the kubelet swaps a Secret", () => {
  const pki = testPki([
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
    { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
  ]);
  const [a, b, c] = pki.leaves as [
    { cert: string; key: string },
    { cert: string; key: string },
    { cert: string; key: string },
  ];
  const volume = secretVolume({ "tls.crt": a.cert, "tls.key": a.key });
  const registry = new Registry();
  let server: EndpointServer;

  /** A new TLS connection, once its handshake is done. */
  function openTls(): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(
        { host: "127.0.0.1", port: server.port, ca: pki.ca, servername: "localhost" },
        () => resolve(socket),
      );
      socket.on("error", reject);
    });
  }

  /** The serial a new TLS connection is served. */
  async function servedToNewConnection(): Promise<string> {
    const socket = await openTls();
    socket.end();
    return socket.getPeerCertificate().serialNumber;
  }

  /** GET /metrics on a TLS connection; the response as text. */
  function get(socket: TLSSocket): Promise<string> {
    return new Promise((resolve, reject) => {
      let text = "";
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => {
        text += d;
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
      socket.write("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    });
  }

  const scrape = async () => get(await openTls());

  before(async () => {
    server = await serveEndpoints({
      port: 0,
      host: "127.0.0.1",
      registry,
      tls: { certFile: volume.path("tls.crt"), keyFile: volume.path("tls.key") },
      tlsPollMs: 50,
    });
  });
  after(async () => {
    await server.close();
    volume.remove();
  });

  test("new connections get B after the swap, a connection opened under A goes on, a bad swap keeps B and is counted", async () => {
    // Connected under A, its request sent only after the rotation.
    const held = await openTls();
    assert.equal(held.getPeerCertificate().serialNumber, serialOf(a.cert));
    assert.match(await scrape(), /roster_tls_reload_errors_total\{server="metrics"\} 0/);

    volume.swap({ "tls.crt": b.cert, "tls.key": b.key });
    await eventually(async () => ((await servedToNewConnection()) === serialOf(b.cert) ? true : undefined), {
      what: "a new connection served certificate B",
    });
    const onA = await get(held);
    assert.match(onA, /^HTTP\/1\.1 200 /, "the connection opened under A still serves");
    assert.equal(held.getPeerCertificate().serialNumber, serialOf(a.cert));
    const notAfterB = Date.parse(new X509Certificate(b.cert).validTo) / 1000;
    assert.match(
      onA,
      new RegExp(`roster_tls_certificate_not_after_seconds\\{server="metrics"\\} ${notAfterB}\\b`),
    );

    // Half-rotated: C's certificate with B's key.
    volume.swap({ "tls.crt": c.cert, "tls.key": b.key });
    await eventually(
      async () =>
        /roster_tls_reload_errors_total\{server="metrics"\} 1\b/.test(await scrape()) ? true : undefined,
      { what: "the refused swap counted" },
    );
    assert.equal(await servedToNewConnection(), serialOf(b.cert), "the last good certificate is served");
  });
});
