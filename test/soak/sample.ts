/**
 * One sample of the operator process, taken from outside where possible:
 * RSS and open descriptors from /proc/<pid>, work-queue depths from its
 * /metrics endpoint (`workqueue_depth` by queue name), heap and probe count
 * over IPC (bench/operator-child.ts `stats`).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { get } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { OperatorProcess } from "../../bench/lib.ts";

export interface Sample {
  /** Seconds since the soak's churn started. */
  t: number;
  /** Mean of the per-second RSS readings of the window. */
  rssMiB: number;
  heapMiB: number;
  /** Open descriptors: fewest, mean and most of the per-second readings of the window. */
  fdsMin: number;
  fdsMean: number;
  fdsMax: number;
  /**
   * At the end of the window, by kind: `probe` (TCP connections to the probe
   * targets, whose number follows the targets and their phases), `socket`
   * (every other socket: API server watches and requests, listeners),
   * `anon_inode`, `pipe`, `file`. `fixed` is everything but `probe`.
   */
  fdKinds: Record<string, number>;
  fixedFds: number;
  /** Depth per work queue at the end of the window. */
  queues: Record<string, number>;
  /** Engine probe counter (cumulative) and its rate since the previous sample. */
  probes: number;
  probesPerSecond: number;
  /** Operator probe failures by reason (cumulative, `roster_probe_failures_total`). */
  probeFailures: Record<string, number>;
  /**
   * Longest event-loop stall in the window, ms: the operator's (prom-client's
   * `nodejs_eventloop_lag_max_seconds`, reset at each scrape) and this
   * process's, which serves the probe targets. A stall longer than the probe
   * timeout makes probes time out whatever the operator does.
   */
  operatorLagMaxMs: number;
  soakLagMaxMs: number;
  /** Live instances (the soak's truth) when the sample was taken. */
  instances?: number;
}

export function procRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

export function procFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Socket inodes of TCP connections to `remotePrefix` (e.g. "127.0.7."), from /proc/<pid>/net/tcp{,6}. */
function socketsTo(pid: number, remotePrefix: string): Set<string> {
  const out = new Set<string>();
  for (const file of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const remote = cols[2];
      if (!remote || !cols[9]) continue;
      // IPv4 as little-endian hex; IPv4-mapped IPv6 ends with it.
      const hex = remote.split(":")[0]!.slice(-8);
      const ip = [6, 4, 2, 0].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)).join(".");
      if (ip.startsWith(remotePrefix)) out.add(cols[9]);
    }
  }
  return out;
}

/** Open descriptors by kind; `probe`: sockets connected to `probePrefix`. */
export function fdKinds(pid: number, probePrefix: string): Record<string, number> {
  const probes = socketsTo(pid, probePrefix);
  const kinds: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const socket = /^socket:\[(\d+)\]$/.exec(link);
    const kind = socket
      ? probes.has(socket[1]!)
        ? "probe"
        : "socket"
      : (/^(\w+):/.exec(link)?.[1] ?? "file");
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

export function scrape(port: number): Promise<string> {
  return new Promise((done, fail) => {
    const req = get({ host: "127.0.0.1", port, path: "/metrics", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => done(body));
    });
    req.on("error", fail);
    req.setTimeout(5000, () => req.destroy(new Error("/metrics timed out")));
  });
}

/** A metric's samples summed by one label (`workqueue_depth` by `name`...). */
export function sumBy(metrics: string, metric: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    const key = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? "";
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return out;
}

/** The value of an unlabelled metric. */
export function metricValue(metrics: string, metric: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${metric} `));
  return line ? Number(line.slice(metric.length + 1)) : Number.NaN;
}

export interface Sampler {
  /** One cheap reading of RSS and open descriptors (every second or so). */
  read(): void;
  /** Closes the window: a sample of the readings since the last one, plus heap, queues and probes. */
  take(t: number): Promise<Sample>;
}

/**
 * Probe connections come and go in bursts, so a single descriptor count
 * every 10 s is mostly noise; the readings of a window give its floor
 * (which a leak raises) and mean.
 */
export function createSampler(op: OperatorProcess, metricsPort: number, probePrefix: string): Sampler {
  const pid = op.child.pid!;
  let rss: number[] = [];
  let fds: number[] = [];
  let previous: Sample | undefined;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const read = () => {
    rss.push(procRssMiB(pid));
    fds.push(procFds(pid));
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    read,
    async take(t) {
      // /proc first: the scrape's own connection must not count as an open descriptor.
      if (rss.length === 0) read();
      const window = { rss, fds };
      rss = [];
      fds = [];
      const kinds = fdKinds(pid, probePrefix);
      const stats = await op.stats();
      const metrics = await scrape(metricsPort);
      const probes = stats.engine.probes;
      const sample: Sample = {
        t,
        rssMiB: mean(window.rss),
        heapMiB: stats.heapMiB,
        fdsMin: Math.min(...window.fds),
        fdsMean: mean(window.fds),
        fdsMax: Math.max(...window.fds),
        fdKinds: kinds,
        fixedFds: Object.entries(kinds).reduce((n, [k, v]) => (k === "probe" ? n : n + v), 0),
        queues: sumBy(metrics, "workqueue_depth", "name"),
        probeFailures: sumBy(metrics, "roster_probe_failures_total", "reason"),
        operatorLagMaxMs: metricValue(metrics, "nodejs_eventloop_lag_max_seconds") * 1000,
        soakLagMaxMs: loop.max / 1e6,
        probes,
        probesPerSecond: previous ? (probes - previous.probes) / (t - previous.t) : Number.NaN,
      };
      loop.reset();
      previous = sample;
      return sample;
    },
  };
}
