// The TLS file watcher on an in-memory file system and the fake clock: a good
// renewal is taken at the next poll, a bad one keeps the last good set and is
// counted once it reads the same twice, a read across a swap is no error.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, test } from "node:test";
import { type Counter, type Gauge, Registry } from "prom-client";
import { createLogger } from "../../../src/kube/log.ts";
import { parseTlsSet, type TlsSet, watchTlsFiles } from "../../../src/kube/tls-files.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { testPki } from "../../support/servers.ts";

const pki = testPki([
  { cn: "localhost", san: "DNS:localhost" },
  { cn: "localhost", san: "DNS:localhost" },
]);
const [a, b] = pki.leaves as [{ cert: string; key: string }, { cert: string; key: string }];
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
const buf = (s: string) => Buffer.from(s);

async function metric(registry: Registry, name: string): Promise<number | undefined> {
  const m = registry.getSingleMetric(name) as Counter | Gauge | undefined;
  return (await m?.get())?.values.find((v) => v.labels.server === "xds")?.value;
}

function setup(intervalMs = 1000) {
  const fs = new Map<string, string>([
    ["/tls/tls.crt", a.cert],
    ["/tls/tls.key", a.key],
    ["/tls/ca.crt", pki.ca],
  ]);
  const read = (f: string) => {
    const v = fs.get(f);
    if (v === undefined) throw new Error(`ENOENT: no such file or directory, open '${f}'`);
    return buf(v);
  };
  const clock = fakeClock(0);
  const registry = new Registry();
  const watch = watchTlsFiles({
    files: { certFile: "/tls/tls.crt", keyFile: "/tls/tls.key", clientCaFile: "/tls/ca.crt" },
    server: "xds",
    clock,
    logger: createLogger({ level: "silent" }),
    registry,
    intervalMs,
    read,
  });
  const seen: TlsSet[] = [];
  watch.onChange((s) => seen.push(s));
  const errors = () => metric(registry, "roster_tls_reload_errors_total");
  return { fs, clock, registry, watch, seen, errors };
}

describe("parseTlsSet", () => {
  test("a good set: the leaf's serial and expiry", () => {
    const set = parseTlsSet({ cert: buf(a.cert), key: buf(a.key), ca: buf(pki.ca) });
    const x = new X509Certificate(a.cert);
    assert.equal(set.serial, x.serialNumber);
    assert.equal(set.notAfterMs, Date.parse(x.validTo));
  });

  test("each bad part is named: another certificate's key, half a PEM, no CA in the bundle", () => {
    const name = (n: string) => `xds.tls.${n}`;
    assert.throws(
      () => parseTlsSet({ cert: buf(a.cert), key: buf(b.key) }, name),
      /xds\.tls\.keyFile is not the key of the certificate in xds\.tls\.certFile/,
    );
    assert.throws(
      () => parseTlsSet({ cert: buf(a.cert.slice(0, a.cert.length / 2)), key: buf(a.key) }, name),
      /xds\.tls\.certFile is not a PEM certificate/,
    );
    assert.throws(
      () => parseTlsSet({ cert: buf(a.cert), key: buf(a.key.slice(0, 40)) }, name),
      /xds\.tls\.keyFile is not a PEM private key/,
    );
    assert.throws(
      () => parseTlsSet({ cert: buf(a.cert), key: buf(a.key), ca: buf("not a bundle") }, name),
      /xds\.tls\.clientCaFile is not a PEM CA bundle/,
    );
  });
});

describe("watchTlsFiles", () => {
  test("a set that is not good at start throws naming the setting and the file", () => {
    assert.throws(
      () =>
        watchTlsFiles({
          files: { certFile: "/none/tls.crt", keyFile: "/none/tls.key" },
          server: "metrics",
          clock: fakeClock(),
          logger: createLogger({ level: "silent" }),
          read: () => {
            throw new Error("ENOENT");
          },
        }),
      /cannot read metrics\.tls\.certFile \/none\/tls\.crt: ENOENT/,
    );
  });

  test("a renewed set is current at the next poll, listeners get it once, the expiry gauge follows", async () => {
    const { fs, clock, registry, watch, seen, errors } = setup();
    assert.equal(watch.current().serial, serialOf(a.cert));
    fs.set("/tls/tls.crt", b.cert);
    fs.set("/tls/tls.key", b.key);
    clock.advance(999);
    assert.equal(seen.length, 0, "not before the poll");
    clock.advance(1);
    assert.deepEqual(
      seen.map((s) => s.serial),
      [serialOf(b.cert)],
    );
    assert.equal(watch.current().serial, serialOf(b.cert));
    assert.equal(
      await metric(registry, "roster_tls_certificate_not_after_seconds"),
      Date.parse(new X509Certificate(b.cert).validTo) / 1000,
    );
    clock.advance(5000);
    assert.equal(seen.length, 1, "unchanged files are not handed out again");
    assert.equal(await errors(), 0);
  });

  test("a key of another certificate keeps the last good set; counted once when it reads the same twice", async () => {
    const { fs, clock, watch, seen, errors } = setup();
    fs.set("/tls/tls.key", b.key);
    clock.advance(1000);
    assert.equal(await errors(), 0, "one read may straddle a swap");
    clock.advance(1000);
    assert.equal(await errors(), 1);
    clock.advance(10_000);
    assert.equal(await errors(), 1, "the same bad files are counted once");
    assert.equal(watch.current().serial, serialOf(a.cert));
    assert.equal(seen.length, 0);
    fs.set("/tls/tls.crt", b.cert);
    clock.advance(1000);
    assert.equal(watch.current().serial, serialOf(b.cert), "the completed set is taken");
    assert.equal(await errors(), 1);
  });

  test("a read across a swap (new certificate, old key) is no error: the next poll takes the whole set", async () => {
    const { fs, clock, watch, errors } = setup();
    fs.set("/tls/tls.crt", b.cert);
    clock.advance(1000);
    fs.set("/tls/tls.key", b.key);
    clock.advance(1000);
    assert.equal(watch.current().serial, serialOf(b.cert));
    assert.equal(await errors(), 0);
  });

  test("a missing file is counted once, its return to the served set is quiet, a new bad set counts again", async () => {
    const { fs, clock, watch, seen, errors } = setup();
    fs.delete("/tls/ca.crt");
    clock.advance(3000);
    assert.equal(await errors(), 1);
    fs.set("/tls/ca.crt", pki.ca);
    clock.advance(1000);
    assert.equal(seen.length, 0, "the served set again: nothing to apply");
    fs.set("/tls/tls.crt", "-----BEGIN CERTIFICATE-----\nMIIB");
    clock.advance(2000);
    assert.equal(await errors(), 2);
    assert.equal(watch.current().serial, serialOf(a.cert));
  });

  test("a listener that throws is counted and never reaches the timer; stop ends polling and drops the gauge", async () => {
    const { fs, clock, registry, watch, errors } = setup();
    watch.onChange(() => {
      throw new Error("refused");
    });
    fs.set("/tls/tls.crt", b.cert);
    fs.set("/tls/tls.key", b.key);
    assert.doesNotThrow(() => clock.advance(1000));
    assert.equal(await errors(), 1);
    watch.stop();
    assert.equal(clock.pending(), 0);
    assert.equal(await metric(registry, "roster_tls_certificate_not_after_seconds"), undefined);
  });
});
