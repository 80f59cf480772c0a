/**
 * TLS rotation (issue 20): what polling the certificate files costs
 * (src/kube/tls-files.ts) and how long a swap takes to reach new handshakes.
 * On a directory laid out as the kubelet mounts a Secret (EC P-256 leaf and
 * key, a CA bundle): the CPU of one poll of unchanged files (3 reads through
 * the `..data` symlink and a SHA-256 of them) and of one poll that takes a
 * renewed set (parse, key check, a Node secure context); then, on a real
 * /metrics HTTPS listener polling every `--poll` ms, swap → the first new
 * connection served the new certificate (one new connection tried every 1 ms).
 *
 *   node bench/tls-reload.bench.ts            # --polls 2000 --swaps 20 --poll 100
 */
import { X509Certificate } from "node:crypto";
import { performance } from "node:perf_hooks";
import { connect } from "node:tls";
import { parseArgs } from "node:util";
import { Registry } from "prom-client";
import { silentLogger } from "../src/kube/log.ts";
import { serveEndpoints } from "../src/kube/server.ts";
import { watchTlsFiles } from "../src/kube/tls-files.ts";
import { fakeClock } from "../src/util/clock.ts";
import { secretVolume, testPki } from "../test/support/servers.ts";
import { report } from "./report.ts";

const { values } = parseArgs({
  options: {
    polls: { type: "string", default: "2000" },
    swaps: { type: "string", default: "20" },
    poll: { type: "string", default: "100" },
  },
});
const polls = Number(values.polls);
const swaps = Number(values.swaps);
const pollMs = Number(values.poll);

const pki = testPki([
  { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
  { cn: "localhost", san: "DNS:localhost,IP:127.0.0.1" },
]);
const sets = pki.leaves.map((l) => ({ "tls.crt": l.cert, "tls.key": l.key, "ca.crt": pki.ca }));
const volume = secretVolume(sets[0]!);
const files = {
  certFile: volume.path("tls.crt"),
  keyFile: volume.path("tls.key"),
  clientCaFile: volume.path("ca.crt"),
};

const cpuUs = (fn: () => void, n: number) => {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const d = process.cpuUsage(start);
  return (d.user + d.system) / n;
};

const watch = watchTlsFiles({ files, server: "xds", clock: fakeClock(), logger: silentLogger() });
const unchanged = cpuUs(() => watch.poll(), polls);
let next = 1;
const renewed = cpuUs(
  () => {
    volume.swap(sets[next]!);
    next = 1 - next;
    watch.poll();
  },
  Math.min(polls, 200),
);
watch.stop();

const server = await serveEndpoints({
  port: 0,
  host: "127.0.0.1",
  registry: new Registry(),
  tls: { certFile: files.certFile, keyFile: files.keyFile },
  tlsPollMs: pollMs,
});
const served = () =>
  new Promise<string>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: server.port, ca: pki.ca, servername: "localhost" }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.end();
    });
    s.on("error", reject);
  });
const serials = pki.leaves.map((l) => new X509Certificate(l.cert).serialNumber);
const latencies: number[] = [];
let current = serials.indexOf(await served());
for (let i = 0; i < swaps; i++) {
  const target = 1 - current;
  const t0 = performance.now();
  volume.swap(sets[target]!);
  while ((await served()) !== serials[target]) await new Promise((r) => setTimeout(r, 1));
  latencies.push(performance.now() - t0);
  current = target;
}
await server.close();
volume.remove();
latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;

report(
  "tls-reload",
  [
    { name: "poll, files unchanged (CPU)", value: unchanged, unit: "µs" },
    { name: "poll taking a renewed set, swap included (CPU)", value: renewed, unit: "µs" },
    { name: `swap → new handshake served it, p50 (poll ${pollMs} ms)`, value: q(0.5), unit: "ms" },
    { name: `swap → new handshake served it, max (poll ${pollMs} ms)`, value: q(1), unit: "ms" },
  ],
  { polls, swaps, pollMs },
);
