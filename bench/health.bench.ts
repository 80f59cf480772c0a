/**
 * Probe engine at scale: 10,000 HTTP targets (then TCP) on loopback at a 10 s
 * and a 1 s interval. Reports achieved vs scheduled probes/s, CPU µs per
 * probe (process.cpuUsage of the prober process only), p50/p99 schedule
 * lateness (probe start vs plan, queueing for slots included), event-loop
 * delay and RSS.
 *
 * Targets spread over 20 loopback addresses (127.0.1.1-20) with 5 HTTP and 5
 * TCP servers each, 500 paths per server. The servers run in one child
 * process (`--serve`) and each scenario in a fresh prober process
 * (`--scenario`), so CPU and RSS are the prober's alone. On a small machine
 * the servers still compete with the prober for CPU: the load average is
 * recorded with the figures.
 *
 * The cost scenarios (`health-cost-*`) measure CPU per probe of each probe
 * type at a modest rate (500 targets at a 1 s interval): http, tcp, tcp with
 * TLS, udp, and postgres and redis against real servers when their binaries
 * are installed (found as the database tests find them; skipped otherwise).
 * A summary of the per-probe costs goes to health-probe-costs.json.
 *
 *   node bench/health.bench.ts                   # ~5 minutes
 *   node bench/health.bench.ts --quick           # shorter scenarios
 *   node bench/health.bench.ts --only cost       # the per-probe-type costs alone
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { createServer as createTlsServer } from "node:tls";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createProbeEngine } from "../src/health/engine.ts";
import type { ProbeSpec } from "../src/health/types.ts";
import { databasesMissing, postgresCluster, redisServer } from "../test/support/databases.ts";
import { testCerts } from "../test/support/servers.ts";
import { type Figure, percentile, report, rssMiB } from "./report.ts";

const hosts = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`);
const portsPerHost = 5;
const defaultTargets = 10_000;

type ServerKind = "http" | "tcp" | "tls" | "udp" | "postgres" | "redis";
type Ports = Partial<Record<ServerKind, Record<string, number[]>>> & {
  dbPassword?: string;
  dbUser?: string;
  /** The CA of the TLS servers' certificate (made by the server process). */
  ca?: string;
};

// --- child: the servers -------------------------------------------------------

async function serve(): Promise<void> {
  const ports = { http: {}, tcp: {}, tls: {}, udp: {} } as Required<
    Pick<Ports, "http" | "tcp" | "tls" | "udp">
  >;
  const { ca, cert, key } = testCerts();
  const listen = (server: ReturnType<typeof createNetServer>, host: string) =>
    new Promise<number>((resolve) => {
      server.listen({ port: 0, host, backlog: 4096 }, () => {
        const a = server.address();
        resolve(typeof a === "object" && a ? a.port : 0);
      });
    });
  for (const host of hosts) {
    ports.http[host] = [];
    ports.tcp[host] = [];
    for (let i = 0; i < portsPerHost; i++) {
      const http = createHttpServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
        res.end("ok");
      });
      http.keepAliveTimeout = 65_000;
      ports.http[host]!.push(await listen(http, host));
      const tcp = createNetServer((socket) => {
        socket.on("error", () => {});
        socket.on("end", () => socket.destroy());
        socket.resume();
      });
      ports.tcp[host]!.push(await listen(tcp, host));
    }
    const tls = createTlsServer({ cert, key }, (socket) => {
      socket.on("error", () => {});
      socket.end();
    });
    tls.on("tlsClientError", () => {});
    ports.tls[host] = [await listen(tls, host)];
    const udp = createSocket("udp4");
    udp.on("message", (msg, from) => udp.send(msg, from.port, from.address));
    await new Promise<void>((resolve) => udp.bind(0, host, resolve));
    ports.udp[host] = [udp.address().port];
  }
  console.log(JSON.stringify({ ...ports, ca }));
  // Exit with the parent.
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

async function startServers(): Promise<{ child: ChildProcess; ports: Ports }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--serve"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once("line", resolve),
  );
  return { child, ports: JSON.parse(line) as Ports };
}

// --- parent: the scenarios ------------------------------------------------------

/** Heap still in use after a full GC (the engine's real footprint, without V8's slack). */
function liveHeapMiB(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

interface Scenario {
  name: string;
  type: ServerKind;
  intervalMs: number;
  keepAlive?: boolean;
  /** Default: 10,000. */
  targets?: number;
}

/** The probe of target `i` of a scenario against one of its servers. */
function probeOf(s: Scenario, i: number, port: number, ports: Ports): ProbeSpec {
  switch (s.type) {
    case "http":
      return { type: "http", port, path: `/health/${i}` };
    case "tcp":
      return { type: "tcp", port };
    case "tls":
      return { type: "tcp", port, tls: { caBundle: ports.ca!, serverName: "localhost" } };
    case "udp":
      return { type: "udp", port, payload: new TextEncoder().encode("ping"), expectRegex: "^ping$" };
    case "postgres":
      return {
        type: "postgres",
        port,
        database: "postgres",
        user: ports.dbUser!,
        password: ports.dbPassword!,
      };
    case "redis":
      return { type: "redis", port };
  }
}

async function runScenario(s: Scenario, ports: Ports, durationMs: number, warmupMs: number) {
  const load = loadavg()[0]!;
  const lateness: number[] = [];
  let completed = 0;
  let failed = 0;
  let measuring = false;
  const reasons = new Map<string, number>();
  const engine = createProbeEngine({
    policy: { allowLoopback: true },
    httpKeepAlive: s.keepAlive,
    onProbe: (o) => {
      if (!measuring) return;
      completed++;
      lateness.push(o.lateMs);
      if (!o.ok) {
        failed++;
        reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
      }
    },
  });
  const servers = ports[s.type]!;
  const serverHosts = Object.keys(servers);
  const targets = s.targets ?? defaultTargets;
  for (let i = 0; i < targets; i++) {
    const host = serverHosts[i % serverHosts.length]!;
    const onHost = servers[host]!;
    const port = onHost[Math.floor(i / serverHosts.length) % onHost.length]!;
    const probe = probeOf(s, i, port, ports);
    engine.set({
      id: `bench/${s.type}-${i}`,
      host,
      check: { probes: [probe], intervalMs: s.intervalMs, timeoutMs: 2000, failureThreshold: 3 },
    });
  }
  await new Promise((r) => setTimeout(r, warmupMs));
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let rssPeak = rssMiB();
  const rssTimer = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMiB());
  }, 500);
  await new Promise((r) => setTimeout(r, durationMs));
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  measuring = false;
  clearInterval(rssTimer);
  loop.disable();
  const stats = engine.stats();
  const liveHeap = liveHeapMiB();
  const healthy = [...engine.summaries()].filter((x) => x.verdict === "Healthy").length;
  engine.close();
  lateness.sort((a, b) => a - b);
  const rssEnd = rssMiB();
  const cpuUs = cpu.user + cpu.system;
  const figures: Figure[] = [
    { name: "scheduled probes/s", value: targets / (s.intervalMs / 1000), unit: "/s" },
    { name: "achieved probes/s", value: Math.round(completed / seconds), unit: "/s" },
    { name: "CPU per probe", value: completed ? cpuUs / completed : Number.NaN, unit: "µs", target: "< 50" },
    { name: "CPU use", value: cpuUs / 1e6 / seconds, unit: "cores" },
    { name: "lateness p50", value: percentile(lateness, 50), unit: "ms" },
    { name: "lateness p99", value: percentile(lateness, 99), unit: "ms", target: "< 50" },
    { name: "lateness max", value: lateness.at(-1) ?? Number.NaN, unit: "ms" },
    { name: "event loop delay p99", value: loop.percentile(99) / 1e6, unit: "ms" },
    { name: "RSS peak", value: rssPeak, unit: "MiB" },
    { name: "RSS at end", value: rssEnd, unit: "MiB" },
    { name: "live heap after GC", value: liveHeap, unit: "MiB" },
    { name: "load average (1 min)", value: Math.max(load, loadavg()[0]!), unit: "" },
    { name: "failed probes", value: failed, unit: "" },
    { name: "skipped slots", value: stats.skippedSlots, unit: "" },
    { name: "healthy targets at end", value: healthy, unit: `of ${targets}` },
  ];
  return {
    figures,
    details: {
      scenario: s,
      targets,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      measuredSeconds: seconds,
      warmupMs,
      skippedSlots: stats.skippedSlots,
      failureReasons: Object.fromEntries(reasons),
    },
  };
}

const scenarios: Scenario[] = [
  { name: "health-http-10s", type: "http", intervalMs: 10_000, keepAlive: true },
  { name: "health-http-1s", type: "http", intervalMs: 1_000, keepAlive: true },
  { name: "health-http-fresh-10s", type: "http", intervalMs: 10_000, keepAlive: false },
  { name: "health-http-fresh-1s", type: "http", intervalMs: 1_000, keepAlive: false },
  { name: "health-tcp-10s", type: "tcp", intervalMs: 10_000 },
  { name: "health-tcp-1s", type: "tcp", intervalMs: 1_000 },
  ...(["http", "tcp", "tls", "udp", "postgres", "redis"] as const).map((type) => ({
    name: `health-cost-${type}`,
    type,
    intervalMs: 1_000,
    keepAlive: true,
    targets: 500,
  })),
];

/** PostgreSQL and Redis on 127.0.0.1 for the cost scenarios, when installed; their stop hooks. */
async function startDatabases(ports: Ports, stops: (() => void | Promise<void>)[]): Promise<void> {
  const missing = databasesMissing();
  if (missing) {
    console.log(`  postgres/redis cost scenarios skipped: ${missing}`);
    return;
  }
  const t = { after: (fn: () => void | Promise<void>) => void stops.push(fn) };
  const pg = await postgresCluster(t);
  const redis = await redisServer(t);
  Object.assign(ports, {
    postgres: { "127.0.0.1": [pg.primary.port] },
    redis: { "127.0.0.1": [redis.port] },
    dbUser: pg.user,
    dbPassword: pg.password,
  });
}

/** One scenario in its own process, so that CPU, RSS and JIT state are its own. */
function scenarioProcess(name: string, ports: Ports, quick: boolean): { figures: Figure[]; details: object } {
  const args = [fileURLToPath(import.meta.url), "--scenario", name, "--ports", JSON.stringify(ports)];
  if (quick) args.push("--quick");
  const out = execFileSync(process.execPath, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return JSON.parse(out.trim().split("\n").at(-1)!) as { figures: Figure[]; details: object };
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const only = arg("--only");
  const { child, ports } = await startServers();
  const stops: (() => void | Promise<void>)[] = [];
  const costs: Figure[] = [];
  const loads: number[] = [];
  try {
    if (!only || "health-cost-postgres health-cost-redis".includes(only)) await startDatabases(ports, stops);
    for (const s of scenarios) {
      if (only && !s.name.includes(only)) continue;
      if (!ports[s.type]) continue;
      const { figures, details } = scenarioProcess(s.name, ports, quick);
      report(s.name, figures, { ...details, quick });
      if (s.name.startsWith("health-cost-")) {
        const cpu = figures.find((f) => f.name === "CPU per probe")!;
        costs.push({
          name: `${s.type === "tls" ? "tcp+tls" : s.type} CPU per probe`,
          value: cpu.value,
          unit: "µs",
        });
        loads.push(figures.find((f) => f.name.startsWith("load average"))!.value);
      }
      // Let closed connections settle before the next scenario.
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (costs.length > 0) {
      costs.push({ name: "load average (1 min, max)", value: Math.max(...loads), unit: "" });
      report("health-probe-costs", costs, { targets: 500, intervalMs: 1000, quick });
    }
  } finally {
    child.stdin?.end();
    child.kill();
    for (const stop of stops) await stop(); // in the order given, as node:test runs t.after hooks
  }
}

async function scenarioMain(name: string): Promise<void> {
  const quick = process.argv.includes("--quick");
  const s = scenarios.find((x) => x.name === name);
  if (!s) throw new Error(`no scenario ${name}`);
  const ports = JSON.parse(arg("--ports") ?? "{}") as Ports;
  const result = await runScenario(s, ports, quick ? 6_000 : 20_000, quick ? 2_000 : 5_000);
  console.log(JSON.stringify(result));
  process.exit(0);
}

const scenarioName = arg("--scenario");
if (process.argv.includes("--serve")) await serve();
else if (scenarioName) await scenarioMain(scenarioName);
else await main();
