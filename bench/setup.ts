/**
 * Setting up a Roster bench run, shared by the scale suite, the peer
 * comparison and the operator bench: their common options, bench
 * ServiceInstances, the operator as one or more replica processes, waiting
 * for its writes to settle, and the figures they all compute.
 */
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import {
  benchAddress,
  type OperatorProcess,
  pool,
  sleep,
  sorted,
  startOperatorProcess,
  type Targets,
} from "./lib.ts";
import type { ChildLoad, ChildStart, ChildStats } from "./operator-child.ts";
import { percentile } from "./report.ts";

// --- options ------------------------------------------------------------------------

/**
 * Options every Roster bench takes (spread into `parseArgs`): `--quick`,
 * `--concurrency C` (workers per controller), `--replicas R` (operator
 * processes, leader election on when R > 1) and `--sharding` (probing split
 * across the replicas; implies leader election).
 */
export const commonOptions = {
  quick: { type: "boolean", default: false },
  concurrency: { type: "string", default: "4" },
  replicas: { type: "string", default: "1" },
  sharding: { type: "boolean", default: false },
} as const;

export interface GroupOptions {
  replicas: number;
  sharding: boolean;
  concurrency: number;
}

export function groupOptions(args: {
  concurrency: string;
  replicas: string;
  sharding: boolean;
}): GroupOptions {
  return {
    replicas: Math.max(1, Number(args.replicas)),
    sharding: args.sharding,
    concurrency: Number(args.concurrency),
  };
}

/** Report-name suffix of a non-default group: `-c8`, `-r3`, `-sharded`. */
export function groupSuffix(g: GroupOptions): string {
  return `${g.concurrency === 4 ? "" : `-c${g.concurrency}`}${g.replicas === 1 ? "" : `-r${g.replicas}`}${g.sharding ? "-sharded" : ""}`;
}

// --- instances ----------------------------------------------------------------------

export interface InstanceOptions {
  service(i: number): string;
  /** Instance i is probed at `/h/<i>` on `targets.hosts[i % hosts]`. */
  targets: Targets;
  interval: string;
  timeout: string;
  failureThreshold: number;
  successThreshold?: number;
  /** Percent; 0 (default) keeps the schedule exact. */
  jitter?: number;
  zone?: string;
  /** Published address; default `benchAddress(i)` (198.18.0.0/15, never contacted). */
  address?(i: number): string;
  /** healthCheck.recheckInterval of instance i; absent: the default. */
  recheckInterval?(i: number): string | undefined;
}

/** ServiceInstance `i-<i>`: its own HTTP probe, so that single instances can fail. */
export function instanceBody(i: number, o: InstanceOptions): object {
  return {
    apiVersion: "roster.dev/v1alpha1",
    kind: "ServiceInstance",
    metadata: { name: `i-${i}` },
    spec: {
      service: o.service(i),
      address: o.address ? o.address(i) : benchAddress(i),
      ...(o.zone ? { zone: o.zone } : {}),
      ports: [{ name: "http", port: o.targets.port }],
      healthCheck: {
        probes: [
          {
            type: "http",
            http: { host: o.targets.hosts[i % o.targets.hosts.length], port: "http", path: `/h/${i}` },
          },
        ],
        interval: o.interval,
        timeout: o.timeout,
        failureThreshold: o.failureThreshold,
        successThreshold: o.successThreshold ?? 1,
        jitter: o.jitter ?? 0,
        ...(o.recheckInterval?.(i) ? { recheckInterval: o.recheckInterval(i) } : {}),
      },
    },
  };
}

/** Creates instances 0..count-1 (`parallel` requests at a time); resolves to the seconds it took. */
export async function createInstances(
  kc: KubeConfig,
  namespace: string,
  count: number,
  o: InstanceOptions,
  parallel = 32,
): Promise<number> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const t0 = Date.now();
  await pool(
    Array.from({ length: count }, (_, i) => i),
    parallel,
    (i) =>
      custom.createNamespacedCustomObject({
        group: "roster.dev",
        version: "v1alpha1",
        namespace,
        plural: "serviceinstances",
        body: instanceBody(i, o),
      }),
  );
  return (Date.now() - t0) / 1000;
}

// --- the operator: one or more replica processes --------------------------------------------

export type StartOptions = Pick<ChildStart, "kubeconfig" | "namespaces"> &
  Partial<
    Pick<
      ChildStart,
      "batchWindowMs" | "maxConcurrent" | "maxPerHost" | "concurrency" | "maxInflightWrites" | "perController"
    >
  >;

/** The operator's settings in every bench unless a bench says otherwise. */
export const operatorDefaults = { batchWindowMs: 20, maxConcurrent: 512, maxPerHost: 64, concurrency: 4 };

export interface OperatorGroup {
  readonly replicas: readonly OperatorProcess[];
  /** Starts every replica at once; resolves to the earliest start time (Date.now()). */
  start(options: StartOptions): Promise<number>;
  /** One entry per replica; `total()` adds them up. */
  stats(): Promise<ChildStats[]>;
  /** The engine's verdict-change time per id, from the replica that probes it (the latest if several). */
  since(ids: string[]): Promise<number[]>;
  /** Every probed target's time since its last probe, over all replicas. */
  ages(): Promise<number[]>;
  load(): Promise<ChildLoad[]>;
  stop(): Promise<void>;
}

/**
 * R operator processes. With one and no sharding: leader election off, as
 * in a single-replica install. Otherwise every replica campaigns for one
 * Lease in the first watched namespace under its own identity
 * (`replica-<k>`); with `sharding` they also join a membership group and
 * split the probing. Processes are forked at once (they load the operator's
 * modules while the bench creates objects); `start` starts the operators.
 */
export async function startOperators(
  g: Pick<GroupOptions, "replicas" | "sharding">,
  execArgv: string[] = [],
): Promise<OperatorGroup> {
  const replicas = await Promise.all(
    Array.from({ length: g.replicas }, () => startOperatorProcess(execArgv)),
  );
  const elect = g.replicas > 1 || g.sharding;
  const all = <T>(f: (p: OperatorProcess) => Promise<T>) => Promise.all(replicas.map(f));
  return {
    replicas,
    async start(options) {
      const lease = options.namespaces[0] ?? "default";
      const times = await Promise.all(
        replicas.map((p, k) =>
          p.start({
            ...operatorDefaults,
            ...options,
            leaderElection: elect
              ? { namespace: lease, name: "roster-bench", identity: `replica-${k}` }
              : undefined,
            sharding: g.sharding
              ? { namespace: lease, group: "roster-bench", leaseDurationMs: 15_000 }
              : undefined,
          }),
        ),
      );
      return Math.min(...times);
    },
    stats: () => all((p) => p.stats()),
    async since(ids) {
      const per = await all((p) => p.since(ids));
      return ids.map((_, k) => {
        const known = per.map((s) => s[k]!).filter(Number.isFinite);
        return known.length ? Math.max(...known) : Number.NaN;
      });
    },
    ages: async () => (await all((p) => p.ages())).flat(),
    load: () => all((p) => p.load()),
    stop: () => all((p) => p.stop()).then(() => undefined),
  };
}

/** The group as one operator: CPU, requests, transitions and engine counters added up; RSS and heap the largest. */
export function total(stats: ChildStats[]): ChildStats {
  const add = (a: Record<string, number>, b: Record<string, number>) => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return stats.reduce((a, b) => ({
    at: Math.max(a.at, b.at),
    userMicros: a.userMicros + b.userMicros,
    systemMicros: a.systemMicros + b.systemMicros,
    rssMiB: Math.max(a.rssMiB, b.rssMiB),
    heapMiB: Math.max(a.heapMiB, b.heapMiB),
    engine: add(
      a.engine as unknown as Record<string, number>,
      b.engine as unknown as Record<string, number>,
    ) as unknown as ChildStats["engine"],
    requests: add(a.requests, b.requests),
    transitions: a.transitions + b.transitions,
    leader: a.leader || b.leader,
  }));
}

/** Write requests (every method but GET) the group sent so far. */
export const writeRequests = (stats: ChildStats[]) =>
  Object.entries(total(stats).requests)
    .filter(([m]) => m !== "GET")
    .reduce((n, [, v]) => n + v, 0);

/**
 * Waits until `count()` stayed the same for `quietMs` (polled every 100 ms),
 * at most `maxMs`; resolves to the time waited. Used instead of fixed sleeps
 * to let the writes that trail a change (statuses, Events, policy statuses)
 * land before counters are read.
 */
export async function quiet(
  count: () => number | Promise<number>,
  quietMs: number,
  maxMs: number,
): Promise<number> {
  const t0 = Date.now();
  let last = await count();
  let since = Date.now();
  while (Date.now() - t0 < maxMs) {
    await sleep(100);
    const now = await count();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
  }
  return Date.now() - t0;
}

/** Until the group's write requests stop for `quietMs` (at most `maxMs`). */
export const settle = (group: OperatorGroup, quietMs: number, maxMs: number) =>
  quiet(async () => writeRequests(await group.stats()), quietMs, maxMs);

// --- figures ------------------------------------------------------------------------

export function distribution(xs: number[]): { p50: number; p99: number; max: number } {
  const s = sorted(xs);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN };
}

/** Operator CPU seconds (user + system) between two readings. */
export const cpuSeconds = (a: ChildStats, b: ChildStats) =>
  (b.userMicros + b.systemMicros - a.userMicros - a.systemMicros) / 1e6;
