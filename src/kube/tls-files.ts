/**
 * A TLS file set (certificate chain, private key, optional client CA bundle)
 * that follows its files, so a server serves a renewed certificate without a
 * restart: cert-manager renews the Secret, the kubelet swaps the mounted files
 * atomically (a new directory, then the `..data` symlink renamed onto it).
 * Used by the xDS server (src/xds/server.ts) and the /metrics HTTPS listener
 * (server.ts).
 *
 * Contract:
 * - `watchTlsFiles()` reads and checks the set at once and throws, naming the
 *   setting and the file, when it is not good: a server never starts without
 *   a good set.
 * - Every `intervalMs` (default 10 s, on the injected clock) it reads the
 *   files again. Same bytes as the last read: nothing. A good new set (every
 *   PEM parses, the key is the leaf certificate's, Node builds a secure
 *   context from it) becomes `current()` and is handed to each `onChange`
 *   listener, which applies it to new handshakes (open connections go on).
 * - A bad new set (a file missing, unparsable PEM, a key of another
 *   certificate) keeps the last good one. Once the same bad bytes are read on
 *   two polls in a row it is logged and counted, once, in
 *   `roster_tls_reload_errors_total{server}`: a read that straddles a swap
 *   (the old certificate with the new key) is no error, the next poll sees the
 *   whole new set.
 * - `roster_tls_certificate_not_after_seconds{server}` is the served leaf's
 *   expiry: the gauge to alert on, it comes near when renewals stop arriving.
 * - Never throws after the first read; `stop()` ends polling and drops the
 *   server's gauge.
 */
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Clock, Timer } from "../util/clock.ts";
import type { Logger } from "./log.ts";

/** The files, under the names of their settings (`<server>.tls.<name>`). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  clientCaFile?: string;
}

/** A good set: the bytes to serve and what the served certificate is. */
export interface TlsSet {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** The leaf certificate's serial number (hex, as Node prints it). */
  serial: string;
  notAfterMs: number;
}

export const DEFAULT_TLS_POLL_MS = 10_000;

/** Checks one set of bytes; throws naming the setting that is wrong. `setting("keyFile")` names it. */
export function parseTlsSet(
  bytes: { cert: Buffer; key: Buffer; ca?: Buffer },
  setting: (name: keyof TlsFiles) => string = (n) => n,
): TlsSet {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(bytes.cert);
  } catch (err) {
    throw new Error(`${setting("certFile")} is not a PEM certificate: ${(err as Error).message}`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(bytes.key);
  } catch (err) {
    throw new Error(`${setting("keyFile")} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new Error(`${setting("keyFile")} is not the key of the certificate in ${setting("certFile")}`);
  }
  if (bytes.ca !== undefined) {
    const blocks = bytes.ca
      .toString("latin1")
      .match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
    try {
      if (!blocks) throw new Error("no PEM certificate in it");
      for (const b of blocks) new X509Certificate(b);
    } catch (err) {
      throw new Error(`${setting("clientCaFile")} is not a PEM CA bundle: ${(err as Error).message}`);
    }
  }
  try {
    createSecureContext({ cert: bytes.cert, key: bytes.key, ...(bytes.ca ? { ca: bytes.ca } : {}) });
  } catch (err) {
    throw new Error(
      `TLS cannot use ${setting("certFile")} and ${setting("keyFile")}: ${(err as Error).message}`,
    );
  }
  return { ...bytes, serial: leaf.serialNumber, notAfterMs: Date.parse(leaf.validTo) };
}

interface TlsMetrics {
  errors: Counter<"server">;
  notAfter: Gauge<"server">;
}

/** One pair per registry: the xDS server and the /metrics listener share the operator's. */
function tlsMetrics(registry: Registry): TlsMetrics {
  const errors = "roster_tls_reload_errors_total";
  const notAfter = "roster_tls_certificate_not_after_seconds";
  return {
    errors:
      (registry.getSingleMetric(errors) as Counter<"server"> | undefined) ??
      new Counter({
        name: errors,
        help: "Renewed TLS files a server refused (missing, unparsable, key not the certificate's); it keeps serving the last good set.",
        labelNames: ["server"],
        registers: [registry],
      }),
    notAfter:
      (registry.getSingleMetric(notAfter) as Gauge<"server"> | undefined) ??
      new Gauge({
        name: notAfter,
        help: "Expiry (Unix seconds) of the certificate a server presents to new connections.",
        labelNames: ["server"],
        registers: [registry],
      }),
  };
}

export interface TlsWatchOptions {
  files: TlsFiles;
  /** Metric label and setting prefix: "xds" names `xds.tls.certFile`. */
  server: "xds" | "metrics";
  clock: Clock;
  logger: Logger;
  registry?: Registry;
  intervalMs?: number;
  /** Reads a file; tests give their own. */
  read?: (file: string) => Buffer;
}

export interface TlsWatch {
  /** The last good set. */
  current(): TlsSet;
  /** Called with each new good set; returns the unsubscribe. */
  onChange(listener: (set: TlsSet) => void): () => void;
  /** Reads the files now, as each poll does. */
  poll(): void;
  stop(): void;
}

export function watchTlsFiles(options: TlsWatchOptions): TlsWatch {
  const { files, server, clock } = options;
  const read = options.read ?? ((f: string) => readFileSync(f));
  const intervalMs = options.intervalMs ?? DEFAULT_TLS_POLL_MS;
  const log = options.logger.child({ component: "tls", server });
  const metrics = options.registry ? tlsMetrics(options.registry) : undefined;
  const setting = (name: keyof TlsFiles) => `${server}.tls.${name} ${files[name]}`;

  function readAll(): { cert: Buffer; key: Buffer; ca?: Buffer } {
    const one = (name: keyof TlsFiles) => {
      try {
        return read(files[name]!);
      } catch (err) {
        throw new Error(`cannot read ${setting(name)}: ${(err as Error).message}`);
      }
    };
    return {
      cert: one("certFile"),
      key: one("keyFile"),
      ...(files.clientCaFile === undefined ? {} : { ca: one("clientCaFile") }),
    };
  }

  let current = parseTlsSet(readAll(), setting);
  let currentDigest = digest(current);
  metrics?.notAfter.set({ server }, current.notAfterMs / 1000);
  metrics?.errors.inc({ server }, 0); // shown at 0, so an alert on its increase has a series
  const listeners = new Set<(set: TlsSet) => void>();
  /** Digest of the last bytes read (or of the read error), and whether they were reported as bad. */
  let lastRead = currentDigest;
  let reported = false;
  let timer: Timer | undefined;
  let stopped = false;

  function poll(): void {
    let bytes: { cert: Buffer; key: Buffer; ca?: Buffer } | undefined;
    let error: Error | undefined;
    try {
      bytes = readAll();
    } catch (err) {
      error = err as Error;
    }
    const seen = bytes ? digest(bytes) : `error:${error!.message}`;
    const again = seen === lastRead;
    lastRead = seen;
    if (seen === currentDigest) {
      reported = false;
      return;
    }
    if (again && reported) return; // the same bad set, already reported
    if (bytes) {
      try {
        const next = parseTlsSet(bytes, setting);
        const renewed = next.serial !== current.serial;
        current = next;
        currentDigest = seen;
        reported = false;
        metrics?.notAfter.set({ server }, next.notAfterMs / 1000);
        log.info(
          { serial: next.serial, notAfter: new Date(next.notAfterMs).toISOString() },
          renewed ? "TLS certificate renewed: new connections get it" : "TLS files changed: reloaded",
        );
        for (const l of listeners) {
          try {
            l(next);
          } catch (err) {
            // The server refused what Node's own check accepted: counted, never thrown into a timer.
            metrics?.errors.inc({ server });
            log.error({ err }, "the server could not apply the renewed TLS files");
          }
        }
        return;
      } catch (err) {
        error = err as Error;
      }
    }
    if (!again) {
      // Perhaps a read across a swap: judged at the next poll.
      reported = false;
      log.debug({ err: error!.message }, "TLS files not usable yet: checking again at the next poll");
      return;
    }
    reported = true;
    metrics?.errors.inc({ server });
    log.error(
      { err: error!.message, serial: current.serial, notAfter: new Date(current.notAfterMs).toISOString() },
      "renewed TLS files refused: still serving the last good certificate",
    );
  }

  function schedule(): void {
    timer = clock.setTimer(() => {
      if (stopped) return;
      try {
        poll();
      } finally {
        schedule();
      }
    }, intervalMs);
  }
  schedule();

  return {
    current: () => current,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    poll,
    stop() {
      stopped = true;
      timer?.cancel();
      listeners.clear();
      metrics?.notAfter.remove({ server });
    },
  };
}

function digest(bytes: { cert: Buffer; key: Buffer; ca?: Buffer }): string {
  const h = createHash("sha256");
  for (const b of [bytes.cert, bytes.key, bytes.ca ?? Buffer.alloc(0)]) {
    h.update(String(b.length)).update(":").update(b);
  }
  return h.digest("hex");
}
