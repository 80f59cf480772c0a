/**
 * Real servers on loopback for the probe tests: certificates made with the
 * openssl CLI at test time, listeners that record connections, and a TCP
 * port that accepts no connection (its backlog is full).
 */
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer as createNetServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { ProbeTimeout } from "../../src/health/reasons.ts";
import { ProbeSignal } from "../../src/health/signal.ts";

export interface TestCerts {
  /** CA that signed `cert` (SANs: DNS localhost, IP 127.0.0.1). */
  ca: string;
  cert: string;
  key: string;
}

let certs: TestCerts | undefined;

export function testCerts(): TestCerts {
  if (certs) return certs;
  const { ca, leaves } = testPki([{ cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" }]);
  certs = { ca, ...leaves[0]! };
  return certs;
}

export interface TestLeaf {
  /** Subject CN. */
  cn: string;
  /** OpenSSL subjectAltName value, e.g. `URI:spiffe://x/y,DNS:a.example`. */
  san: string;
}

/** A fresh CA and leaves it signed (EC P-256, 2 days), by openssl. */
export function testPki(leaves: readonly TestLeaf[]): {
  ca: string;
  leaves: { cert: string; key: string }[];
} {
  const dir = mkdtempSync(join(tmpdir(), "roster-pki-"));
  try {
    const f = (name: string) => join(dir, name);
    const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ssl(
      "req",
      "-x509",
      ...ec,
      "-days",
      "2",
      "-subj",
      "/CN=roster-test-pki",
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.crt"),
    );
    const out = leaves.map((leaf, i) => {
      ssl("req", ...ec, "-subj", `/CN=${leaf.cn}`, "-keyout", f(`${i}.key`), "-out", f(`${i}.csr`));
      writeFileSync(f(`${i}.cnf`), `subjectAltName=${leaf.san}\n`);
      ssl(
        "x509",
        "-req",
        "-in",
        f(`${i}.csr`),
        "-CA",
        f("ca.crt"),
        "-CAkey",
        f("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f(`${i}.cnf`),
        "-out",
        f(`${i}.crt`),
      );
      return { cert: readFileSync(f(`${i}.crt`), "utf8"), key: readFileSync(f(`${i}.key`), "utf8") };
    });
    return { ca: readFileSync(f("ca.crt"), "utf8"), leaves: out };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A directory laid out as the kubelet mounts a Secret volume (its atomic
 * writer): each file is a symlink through `..data` to a timestamped directory.
 * `swap()` writes a new directory and renames a new `..data` symlink onto the
 * old one, so a reader sees the whole old set or the whole new one.
 */
export function secretVolume(files: Record<string, string>): {
  dir: string;
  path(name: string): string;
  swap(files: Record<string, string>): void;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), "roster-secret-"));
  let generation = 0;
  let current: string | undefined;
  const swap = (next: Record<string, string>) => {
    const version = `..${new Date().toISOString().replace(/[-:.]/g, "_")}_${generation++}`;
    mkdirSync(join(dir, version));
    for (const [name, text] of Object.entries(next)) writeFileSync(join(dir, version, name), text);
    symlinkSync(version, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    for (const name of Object.keys(next)) {
      try {
        symlinkSync(join("..data", name), join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    if (current) rmSync(join(dir, current), { recursive: true, force: true });
    current = version;
  };
  swap(files);
  return {
    dir,
    path: (name) => join(dir, name),
    swap,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Listens on host:0 and returns the port. */
export async function listen(server: Server, host = "127.0.0.1"): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Closes a server and every connection it still has. */
export function closeAll(
  server: Server & { closeAllConnections?: () => void },
  sockets?: Set<Socket>,
): Promise<void> {
  server.closeAllConnections?.();
  for (const s of sockets ?? []) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP listener that records every connection it gets (and closes it). */
export async function connectionRecorder(host = "127.0.0.1") {
  let connections = 0;
  const server = createNetServer((socket) => {
    connections++;
    socket.destroy();
  });
  const port = await listen(server, host);
  return { port, connections: () => connections, close: () => closeAll(server) };
}

/** A port with nothing listening: connections are refused. */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * A port where connections hang: a listener with a backlog of 1 in a worker
 * whose event loop is blocked (so it never accepts), with the accept queue
 * filled first; further SYNs are dropped by the kernel.
 */
export async function blackholePort(): Promise<{ port: number; close: () => Promise<void> }> {
  const code = `
    const { parentPort } = require("node:worker_threads");
    const net = require("node:net");
    const server = net.createServer();
    server.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      // Block this thread's event loop: the listener never accepts.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`;
  const worker = new Worker(code, { eval: true });
  const port = await new Promise<number>((resolve) => worker.once("message", resolve));
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect({ host: "127.0.0.1", port });
    s.on("error", () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      await worker.terminate();
    },
  };
}

/** A signal that fires with ProbeTimeout after `ms`, as the engine's deadline does. */
export function deadline(ms: number): ProbeSignal {
  const signal = new ProbeSignal();
  setTimeout(() => signal.abort(new ProbeTimeout(`no answer within ${ms} ms`)), ms).unref();
  return signal;
}
