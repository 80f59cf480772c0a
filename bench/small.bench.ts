/**
 * Small scale (issue 18): what the operator costs in steady state at 500
 * instances probed every 10 s over HTTP (50 probes/s), against the targets
 * ≤ 250 µs of CPU per probe all-in and ≤ 100 MiB RSS.
 *
 * One sandbox; every instance has its own loopback address (127.0.4.x,
 * 127.0.5.x, ...: one connection per instance, as with external hosts) and
 * its own path. For each variant (Node/V8 flags of the operator process),
 * `--rounds` times, interleaved (A, B, A, B): fork the operator
 * (`operator-child.ts`), start it, wait until every service is published and
 * its writes have stopped, let it run `--warmup` seconds, then measure over
 * `--window` seconds: process CPU (process.cpuUsage in the child: every
 * thread, GC included) ÷ probes the engine ran = CPU per probe; cores; RSS,
 * V8 heap; write requests in the window (none expected in steady state).
 * `--profile <file>` writes a V8 CPU profile of the first round's window
 * (`node bench/cpu-summary.ts <file>` breaks it down by category).
 *
 *   node bench/small.bench.ts                       # 500 × 10 s, one round
 *   node bench/small.bench.ts --rounds 2 --variants='|--max-semi-space-size=1'
 *   node bench/small.bench.ts --rounds 3 --trees=/tmp/base,.   # A/B: another checkout vs this one
 *   options: --instances N --services S --interval 10s --warmup 20 --window 60
 *            --rounds R --variants 'flags|flags' (',' separates flags of one variant)
 *            --profile <file> --name <report name>
 *            --wakeups: what wakes the loop (callbacks by source, bench/wakeups.ts, and the main
 *            thread's epoll waits under strace); perturbs the CPU figures of that run
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  createNamespace,
  sleep,
  startCluster,
  startOperatorProcess,
  startTargets,
  until,
  watch,
} from "./lib.ts";
import type { ChildStats } from "./operator-child.ts";
import { type Figure, report } from "./report.ts";
import { cpuSeconds, createInstances, operatorDefaults, quiet, writeRequests } from "./setup.ts";

const { values: args } = parseArgs({
  options: {
    instances: { type: "string", default: "500" },
    services: { type: "string" },
    interval: { type: "string", default: "10s" },
    warmup: { type: "string", default: "20" },
    window: { type: "string", default: "60" },
    rounds: { type: "string", default: "1" },
    variants: { type: "string", default: "" },
    trees: { type: "string", default: "" },
    profile: { type: "string" },
    wakeups: { type: "boolean", default: false },
    name: { type: "string" },
  },
});

const N = Number(args.instances);
const S = Number(args.services ?? Math.max(1, Math.round(N / 10)));
const windowS = Number(args.window);
const flagSets = args.variants.split("|").map((v) => v.split(",").filter(Boolean));
/** Each variant: a checkout (its bench/operator-child.ts; "" is this one) and Node flags. */
const trees = args.trees ? args.trees.split(",") : [""];
const variants = trees.flatMap((tree) => flagSets.map((flags) => ({ tree, flags })));
const variantName = (v: { tree: string; flags: string[] }) =>
  [v.tree && `tree ${v.tree}`, v.flags.join(" ")].filter(Boolean).join(" ") || "(default)";
const svc = (s: number) => `svc-${String(s).padStart(4, "0")}`;
/** One loopback address per instance: 127.0.4.1 ... 127.0.4.250, 127.0.5.1, ... */
const hosts = Array.from({ length: N }, (_, i) => `127.0.${4 + Math.floor(i / 250)}.${(i % 250) + 1}`);

const wakeupsModule = resolve(dirname(fileURLToPath(import.meta.url)), "wakeups.ts");

/** Callbacks by source since the previous call (bench/wakeups.ts, preloaded in the child). */
function takeWakeups(child: import("node:child_process").ChildProcess): Promise<Record<string, number>> {
  return new Promise((done) => {
    const on = (m: { wakeups?: Record<string, number> }) => {
      if (!m?.wakeups) return;
      child.off("message", on);
      done(m.wakeups);
    };
    child.on("message", on);
    child.send({ wakeups: true });
  });
}

/** Counts the main thread's epoll waits (each one ends in a wake-up) until `stop()`. */
function countLoopWaits(pid: number): { stop(): Promise<number> } {
  const st = spawn("strace", ["-c", "-e", "trace=epoll_wait,epoll_pwait,epoll_pwait2", "-p", String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  st.stderr.on("data", (d: Buffer) => {
    err += d;
  });
  return {
    stop: () =>
      new Promise((done) => {
        st.once("exit", () => {
          const row = err.split("\n").find((l) => /epoll_p?wait/.test(l));
          const f = row?.trim().split(/\s+/) ?? [];
          done(Number(f[3] ?? Number.NaN));
        });
        st.kill("SIGINT");
      }),
  };
}

interface Round {
  variant: string;
  round: number;
  cpuPerProbeMicros: number;
  cores: number;
  /** User and system (kernel) shares of `cores`. */
  userCores: number;
  systemCores: number;
  probesPerSecond: number;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  /** RSS split: anonymous (V8 heap, malloc, stacks) and file-backed (the node binary). */
  rssAnonMiB: number;
  rssFileMiB: number;
  externalMiB: number;
  writesInWindow: number;
  getsInWindow: number;
  load1: number;
  /** CPU share per thread name over the window (/proc, 10 ms ticks), cores. */
  threads: Record<string, number>;
  /** With --wakeups: main-thread epoll waits per second, and callbacks per second by source. */
  loopWaitsPerSecond?: number;
  callbacksPerSecond?: Record<string, number>;
}

/** CPU seconds (user + system) per thread name of a process, from /proc (clock ticks of 10 ms). */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")).replace(/\d+$/, "");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {} // the thread ended
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : Number.NaN;
};

const cluster = await startCluster();
const targets = await startTargets(hosts);
const results: Round[] = [];
try {
  const kc = cluster.kc;
  const ns = "bench";
  await createNamespace(kc, ns);
  await createInstances(kc, ns, N, {
    service: (i) => svc(i % S),
    targets,
    interval: args.interval,
    timeout: "1s",
    failureThreshold: 2,
    jitter: 10,
  });
  const w = await watch(kc, ns, {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
    configMaps: true,
  });
  const perService = N / S;
  for (let r = 0; r < Number(args.rounds); r++) {
    for (const v of variants) {
      const { flags } = v;
      const variant = variantName(v);
      const op = await startOperatorProcess(
        args.wakeups ? [...flags, `--import=${wakeupsModule}`] : flags,
        v.tree ? resolve(v.tree, "bench/operator-child.ts") : undefined,
      );
      try {
        await op.start({ ...operatorDefaults, kubeconfig: cluster.sandbox.kubeconfigPath, namespaces: [ns] });
        await until("every service published", 300_000, () => {
          for (let s = 0; s < S; s++) if ((w.sliceReady.get(svc(s)) ?? 0) < perService) return false;
          return true;
        });
        await quiet(async () => writeRequests([await op.stats()]), 3000, 120_000);
        await sleep(Number(args.warmup) * 1000);
        const profiling = args.profile && r === 0 && v === variants[0];
        if (profiling) await op.cpuProfile();
        const pid = op.child.pid!;
        const t0 = threadCpu(pid);
        if (args.wakeups) await takeWakeups(op.child);
        const waits = args.wakeups ? countLoopWaits(pid) : undefined;
        const a: ChildStats = await op.stats();
        await sleep(windowS * 1000);
        const b: ChildStats = await op.stats();
        const loopWaits = await waits?.stop();
        const callbacks = args.wakeups ? await takeWakeups(op.child) : undefined;
        const t1 = threadCpu(pid);
        if (profiling) console.log(`cpu profile: ${await op.cpuProfile(args.profile)}`);
        const mem = await op.memory(false);
        const probes = b.engine.probes - a.engine.probes;
        const cpu = cpuSeconds(a, b);
        const seconds = (b.at - a.at) / 1000;
        const gets = (b.requests.GET ?? 0) - (a.requests.GET ?? 0);
        const round: Round = {
          variant,
          round: r,
          cpuPerProbeMicros: (cpu * 1e6) / probes,
          cores: cpu / seconds,
          userCores: (b.userMicros - a.userMicros) / 1e6 / seconds,
          systemCores: (b.systemMicros - a.systemMicros) / 1e6 / seconds,
          probesPerSecond: probes / seconds,
          rssMiB: mem.rss,
          heapUsedMiB: mem.heapUsed,
          heapTotalMiB: mem.heapTotal,
          rssAnonMiB: mem.rssAnon,
          rssFileMiB: mem.rssFile,
          externalMiB: mem.external,
          writesInWindow: writeRequests([b]) - writeRequests([a]),
          getsInWindow: gets,
          load1: loadavg()[0]!,
          threads: Object.fromEntries(
            [...t1].map(([k, v]) => [k, Math.round(((v - (t0.get(k) ?? 0)) / windowS) * 1e4) / 1e4]),
          ),
        };
        if (callbacks) {
          round.loopWaitsPerSecond = (loopWaits ?? Number.NaN) / seconds;
          round.callbacksPerSecond = Object.fromEntries(
            Object.entries(callbacks)
              .sort((x, y) => y[1] - x[1])
              .map(([k, n]) => [k, Math.round((n / seconds) * 100) / 100]),
          );
        }
        results.push(round);
        console.log(
          `${variant} round ${r}: ${round.cpuPerProbeMicros.toFixed(0)} µs/probe, ${round.cores.toFixed(4)} cores, ` +
            `${round.probesPerSecond.toFixed(1)} probes/s, RSS ${round.rssMiB.toFixed(0)} MiB, heap ${round.heapUsedMiB.toFixed(0)}/${round.heapTotalMiB.toFixed(0)} MiB ` +
            `(anon ${round.rssAnonMiB.toFixed(0)}, file ${round.rssFileMiB.toFixed(0)}), ` +
            `${round.writesInWindow} writes, load ${round.load1.toFixed(1)}`,
        );
        console.log(
          `  user ${round.userCores.toFixed(4)} + system ${round.systemCores.toFixed(4)} cores; threads ${JSON.stringify(round.threads)}`,
        );
        if (round.callbacksPerSecond) {
          console.log(
            `  loop wake-ups (main-thread epoll waits) ${round.loopWaitsPerSecond?.toFixed(1)}/s; callbacks/s:`,
          );
          for (const [k, n] of Object.entries(round.callbacksPerSecond).slice(0, 25))
            console.log(`    ${String(n).padStart(7)}  ${k}`);
        }
      } finally {
        await op.stop();
      }
    }
  }
  w.stop();
} finally {
  await targets.close();
  await cluster.stop(true);
}

const figures: Figure[] = [];
const byVariant: Record<string, unknown> = {};
for (const v of variants) {
  const variant = variantName(v);
  const rs = results.filter((x) => x.variant === variant);
  const label = variants.length > 1 ? ` [${variant}]` : "";
  const spread = (f: (x: Round) => number) => ({
    median: median(rs.map(f)),
    min: Math.min(...rs.map(f)),
    max: Math.max(...rs.map(f)),
  });
  byVariant[variant] = {
    cpuPerProbeMicros: spread((x) => x.cpuPerProbeMicros),
    cores: spread((x) => x.cores),
    rssMiB: spread((x) => x.rssMiB),
  };
  figures.push(
    {
      name: `CPU per probe, all-in${label}`,
      value: median(rs.map((x) => x.cpuPerProbeMicros)),
      unit: "µs",
      target: "<= 250",
    },
    { name: `cores${label}`, value: median(rs.map((x) => x.cores)), unit: "cores" },
    { name: `RSS${label}`, value: median(rs.map((x) => x.rssMiB)), unit: "MiB", target: "<= 100" },
    { name: `V8 heap used${label}`, value: median(rs.map((x) => x.heapUsedMiB)), unit: "MiB" },
    {
      name: `write requests in window${label}`,
      value: Math.max(...rs.map((x) => x.writesInWindow)),
      unit: "",
    },
  );
}
report(args.name ?? `small-${N}`, figures, {
  instances: N,
  services: S,
  interval: args.interval,
  windowSeconds: windowS,
  warmupSeconds: Number(args.warmup),
  byVariant,
  rounds: results,
  method:
    "CPU per probe = process.cpuUsage() (user+system, all threads) of the operator process over the window ÷ probes the engine ran in it; RSS/heap at the window's end",
});
