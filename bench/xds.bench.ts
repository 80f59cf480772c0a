/**
 * Push latency (verdict to pushed), the whole path: an instance's health
 * check starts failing (or recovers); the probe that crosses the threshold
 * changes its verdict; the operator publishes the ConfigMap; every replica's
 * cache sees it; the xDS server pushes the ClusterLoadAssignment; each of
 * 100 connected ADS clients receives the one in which that endpoint's
 * health_status flipped. Latency = the client's Date.now() on receipt − the
 * engine's verdict time (`engine.summary(id).since`, the same clock), so
 * detection (threshold × interval) is not in it; it is the figure the
 * operator's `roster_xds_push_latency_seconds` histogram measures, seen from
 * the client.
 *
 * Three processes: the operator (`bench/operator-child.ts`, xDS on); the
 * ADS clients (`bench/xds-clients-child.ts`: 100 real grpc-js ADS streams,
 * each on its own HTTP/2 connection, decoding with the real protos); this
 * one (sandbox driver, HTTP probe targets). Clients that shared the probe
 * targets' event loop and one HTTP/2 connection measured themselves: 100
 * decodes per push in one process delayed probe answers past their timeout,
 * the spurious verdicts made more pushes, and the one connection's flow
 * control paced all 100 streams behind the slowest reader (the 27 s tail).
 * Flips are sequential: one instance fails, every client sees it, it
 * recovers, every client sees it, then the next. Besides the latency the
 * report says what the machine did meanwhile: load average, CPU per
 * process, and how long each process's event loop waited runnable for a CPU
 * (/proc/<pid>/schedstat), so a figure dominated by an overloaded machine
 * shows as such.
 *
 * Sizes: S services × M endpoints, every client subscribed to every
 * service's assignment: `--instances 1000` (default) and `--instances 10000`
 * (one service, published split across ConfigMaps, format 2; a slower
 * `--interval 5s` keeps 10,000 probes from saturating 2 cores).
 *
 *   node bench/xds.bench.ts [--services 1] [--instances 1000] [--clients 100] [--flips 10] [--interval 1s]
 */
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { benchAddress, createNamespace, startCluster, startOperatorProcess, startTargets } from "./lib.ts";
import { type Figure, percentile, report } from "./report.ts";
import { createInstances, operatorDefaults } from "./setup.ts";
import type { ClientsRequest } from "./xds-clients-child.ts";

const { values } = parseArgs({
  options: {
    services: { type: "string", default: "1" },
    instances: { type: "string", default: "1000" },
    clients: { type: "string", default: "100" },
    flips: { type: "string", default: "10" },
    interval: { type: "string", default: "1s" },
  },
});
const S = Number(values.services);
const M = Number(values.instances);
const CLIENTS = Number(values.clients);
const FLIPS = Number(values.flips);
const NS = "bench";
const svc = (s: number) => `svc-${String(s).padStart(3, "0")}`;
const clusterName = (s: number) => `${svc(s)}.${NS}`;

/**
 * Nanoseconds a process's main thread (the JS event loop) has run, and has
 * waited runnable for a CPU (/proc/<pid>/schedstat): the wait is what an
 * overloaded machine adds to every step, measured rather than guessed.
 */
function schedstat(pid: number): { run: number; wait: number } {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, "utf8").trim().split(" ").map(Number);
    return { run: run!, wait: wait! };
  } catch {
    return { run: Number.NaN, wait: Number.NaN };
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const cluster = await startCluster();
const targets = await startTargets(20, "127.0.2");
const op = await startOperatorProcess();
interface Clients {
  call(req: ClientsRequest, timeoutMs?: number): Promise<unknown>;
  kill(): void;
  pid: number;
}
let clientsRef: Clients | undefined;

/** The ADS clients' process (bench/xds-clients-child.ts) and a call over its IPC. */
async function startClients(): Promise<Clients> {
  const child = fork(resolve(dirname(fileURLToPath(import.meta.url)), "xds-clients-child.ts"), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let seq = 0;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on("message", (m: { id?: number; value?: unknown; error?: string }) => {
    const p = m.id === undefined ? undefined : pending.get(m.id);
    if (!p) return;
    pending.delete(m.id!);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve(m.value);
  });
  await new Promise((r) => child.once("message", r));
  const call = (req: ClientsRequest, timeoutMs = 180_000) =>
    new Promise<unknown>((res, rej) => {
      const id = seq++;
      const timer = setTimeout(() => {
        pending.delete(id);
        rej(
          new Error(`ADS clients: timed out after ${timeoutMs} ms on ${JSON.stringify(req).slice(0, 120)}`),
        );
      }, timeoutMs);
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          f(v);
        };
      pending.set(id, { resolve: settle(res), reject: settle(rej) });
      child.send({ id, req });
    });
  clientsRef = { call, kill: () => child.kill(), pid: child.pid! };
  return clientsRef;
}
try {
  await createNamespace(cluster.kc, NS);
  await createInstances(cluster.kc, NS, S * M, {
    service: (i) => svc(Math.floor(i / M)),
    targets,
    interval: values.interval,
    timeout: "500ms",
    failureThreshold: 1,
    jitter: 10,
  });
  const xdsPort = await freePort();
  await op.start({
    ...operatorDefaults,
    kubeconfig: cluster.sandbox.kubeconfigPath,
    namespaces: [NS],
    xdsPort,
  });

  const clients = await startClients();
  await clients.call({
    op: "start",
    port: xdsPort,
    names: Array.from({ length: S }, (_, s) => clusterName(s)),
    clients: CLIENTS,
  });
  const startedAt = Date.now();
  await clients.call(
    { op: "healthy", addresses: Array.from({ length: S * M }, (_, i) => benchAddress(i)) },
    600_000,
  );
  console.log(
    `${S} × ${M} endpoints healthy at ${CLIENTS} clients ${(Date.now() - startedAt) / 1000} s after start`,
  );

  const latency: number[] = [];
  const detect: number[] = [];
  const load: number[] = [];
  const pids = { operator: op.child.pid!, clients: clients.pid, bench: process.pid };
  const cpuAt = async () => ({
    at: performance.now(),
    sched: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, schedstat(pid)])),
    bench: process.cpuUsage().user + process.cpuUsage().system,
    clients: (await clients.call({ op: "cpu" })) as number,
    operator: await op.stats().then((s) => s.userMicros + s.systemMicros),
  });
  const cpu0 = await cpuAt();
  for (let k = 0; k < FLIPS; k++) {
    // Spread over the services and over each service's endpoints.
    const i = (k % S) * M + ((k * 97) % M);
    for (const [status, fail] of [
      ["UNHEALTHY", true],
      ["HEALTHY", false],
    ] as const) {
      const flipAt = Date.now();
      if (fail) targets.failing.add(i);
      else targets.failing.delete(i);
      const seen = (await clients.call({
        op: "await",
        address: benchAddress(i),
        status,
        after: flipAt,
      })) as number[];
      const [since] = await op.since([`${NS}/i-${i}`]);
      detect.push(since! - flipAt);
      for (const at of seen) latency.push(at - since!);
      load.push(loadavg()[0]!);
    }
  }
  const cpu1 = await cpuAt();
  const wall = cpu1.at - cpu0.at;
  const share = (k: "bench" | "clients" | "operator") => (cpu1[k] - cpu0[k]) / 1000 / wall;
  /** Per process: the share of the wall time its event loop ran, and waited runnable for a CPU. */
  const sched = Object.fromEntries(
    Object.keys(pids).map((k) => {
      const a = cpu0.sched[k]!;
      const b = cpu1.sched[k]!;
      return [k, { ran: (b.run - a.run) / 1e6 / wall, waitedForCpu: (b.wait - a.wait) / 1e6 / wall }];
    }),
  );
  latency.sort((a, b) => a - b);
  detect.sort((a, b) => a - b);
  const label = `${S * M} endpoints (${S} × ${M}), ${CLIENTS} clients`;
  const figures: Figure[] = [
    { name: `${label}: push latency (verdict to pushed) p50`, value: percentile(latency, 50), unit: "ms" },
    { name: `${label}: push latency (verdict to pushed) p99`, value: percentile(latency, 99), unit: "ms" },
    { name: `${label}: push latency (verdict to pushed) max`, value: latency.at(-1)!, unit: "ms" },
  ];
  report(`xds${S * M === 1000 ? "" : `-${S * M}`}`, figures, {
    services: S,
    instances: M,
    clients: CLIENTS,
    transitions: FLIPS * 2,
    samples: latency.length,
    "detection (flip to verdict) p50 ms": percentile(detect, 50),
    interval: values.interval,
    "load average (1 min) during the flips, min / max": [Math.min(...load), Math.max(...load)],
    "CPU during the flips, cores (operator / ADS clients process / bench: targets and driver)": [
      share("operator"),
      share("clients"),
      share("bench"),
    ],
    "event-loop thread during the flips, share of wall time (ran / runnable but waiting for a CPU)": sched,
    client:
      "100 grpc-js ADS streams, each on its own HTTP/2 connection, in a process of their own (bench/xds-clients-child.ts)",
    method:
      "latency = ADS client's Date.now() when the ClusterLoadAssignment with the flipped health_status arrives − engine summary `since` (the verdict time); probes every `interval`, failureThreshold 1",
  });
} finally {
  await clientsRef?.call({ op: "stop" }, 5000).catch(() => clientsRef?.kill());
  await op.stop().catch(() => {});
  await targets.close();
  await cluster.stop();
}
process.exit(0);
