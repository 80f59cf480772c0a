/**
 * Load-balancing strategies: picks per second (pick + release, one core) with
 * 10, 100 and 1,000 endpoints, time to rebuild a balancer after a set change,
 * and how many consistent-hash keys move when one endpoint leaves.
 *
 *   node bench/balance.bench.ts            # full run (~30 s)
 *   BENCH_QUICK=1 node bench/balance.bench.ts
 *
 * Rates are picks per second of this process's CPU time (user + system), not
 * of wall time, so that other work on a shared machine does not halve them;
 * the wall-clock rates are in the JSON details.
 */
import { isRoutableState, PUBLISHED_DATA_KEY, serializePublishedEndpoints } from "../src/api/published.ts";
import {
  type BalanceEndpoint,
  type CreateBalancerOptions,
  createBalancer,
  seededRng,
} from "../src/balance/index.ts";
import { RosterClient } from "../src/client/client.ts";
import { memorySource } from "../src/client/source.ts";
import { type Figure, report } from "./report.ts";

const quick = process.env.BENCH_QUICK === "1";
const budgetMs = quick ? 150 : 600;
const sizes = [10, 100, 1000];

interface Ep extends BalanceEndpoint {
  readonly address: string;
}

function endpointSet(n: number, salt = ""): Ep[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `instance-${i}${salt}/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    weight: 50 * (1 + (i % 5)),
    zone: `zone-${i % 3}`,
    healthy: true,
    draining: false,
  }));
}

const keys = Array.from({ length: 4096 }, (_, i) => `user-${(i * 2654435761) >>> 0}`);

const cases: { name: string; options: CreateBalancerOptions }[] = [
  { name: "RoundRobin", options: { strategy: "RoundRobin" } },
  { name: "WeightedRoundRobin", options: { strategy: "WeightedRoundRobin" } },
  { name: "LeastConnections", options: { strategy: "LeastConnections" } },
  {
    name: "LeastConnections-p2c",
    options: { strategy: "LeastConnections", leastConnections: { powerOfTwoChoices: true } },
  },
  { name: "Random", options: { strategy: "Random" } },
  {
    name: "ConsistentHash-ring",
    options: { strategy: "ConsistentHash", consistentHash: { algorithm: "ring" } },
  },
  {
    name: "ConsistentHash-maglev",
    options: { strategy: "ConsistentHash", consistentHash: { algorithm: "maglev" } },
  },
];

let sink = 0;
const wallRates: Record<string, number> = {};
let current = "";

/** CPU milliseconds used by this process so far. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Runs `run` (doing `batch` picks) for the time budget; picks per CPU second. */
function measure(run: () => void, batch: number): number {
  const warmupEnd = performance.now() + budgetMs / 3;
  while (performance.now() < warmupEnd) run();
  let picks = 0;
  const wall0 = performance.now();
  const cpu0 = cpuMs();
  let cpu = cpu0;
  while (cpu - cpu0 < budgetMs) {
    run();
    picks += batch;
    cpu = cpuMs();
  }
  wallRates[current] = Math.round((picks / (performance.now() - wall0)) * 1000);
  return (picks / (cpu - cpu0)) * 1000;
}

/** Picks per second: batches of picks until the time budget is spent. */
function picksPerSecond(options: CreateBalancerOptions, endpoints: Ep[], zone?: string): number {
  const b = createBalancer(endpoints, { ...options, rng: seededRng(1) });
  const batch = 100_000;
  const run = () => {
    for (let i = 0; i < batch; i++) {
      const p = b.pick({ key: keys[i & 4095], zone })!;
      sink += p.endpoint.weight;
      p.release();
    }
  };
  return measure(run, batch);
}

/** Median time to build the balancer for a changed set and make the first pick. */
function rebuildMs(options: CreateBalancerOptions, n: number): number {
  const a = endpointSet(n);
  // The change: one endpoint leaves, one joins, one changes weight.
  const b = [...a.slice(1), endpointSet(1, "-new")[0]!].map((e, i) =>
    i === 0 ? { ...e, weight: e.weight + 50 } : e,
  );
  const times: number[] = [];
  const reps = quick ? 5 : n >= 1000 ? 15 : 40;
  for (let r = 0; r < reps; r++) {
    const set = r % 2 === 0 ? b : a;
    const t0 = performance.now();
    const bal = createBalancer(set, { ...options, rng: seededRng(r) });
    sink += bal.pick({ key: "k" })!.endpoint.weight;
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)]!;
}

/** Share of keys that map elsewhere when one of n endpoints leaves (1/n is ideal). */
function movedFraction(algorithm: "ring" | "maglev", n: number): number {
  const all = endpointSet(n).map((e) => ({ ...e, weight: 100 }));
  const before = createBalancer(all, { strategy: "ConsistentHash", consistentHash: { algorithm } });
  const after = createBalancer(all.slice(0, -1), {
    strategy: "ConsistentHash",
    consistentHash: { algorithm },
  });
  const total = 50_000;
  let moved = 0;
  for (let i = 0; i < total; i++) {
    const key = `moved-${i}`;
    if (before.pick({ key })!.endpoint !== after.pick({ key })!.endpoint) moved++;
  }
  return moved / total;
}

/** The same through RosterClient.pick (name lookup, snapshot check, balancer), from memory. */
async function clientPicksPerSecond(n: number): Promise<number> {
  const endpoints = endpointSet(n).map((e) => ({
    instance: e.id.split("/")[0]!,
    address: e.address,
    family: "IPv4" as const,
    ports: [{ name: "http", port: 8080, protocol: "TCP" as const }],
    weight: e.weight,
    zone: e.zone,
    tags: [],
    metadata: {},
    state: "Ready" as const,
    ready: isRoutableState("Ready"),
    healthy: true,
  }));
  const text = serializePublishedEndpoints({
    formatVersion: 1,
    revision: 1,
    namespace: "default",
    service: "web",
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints,
  });
  const source = memorySource([
    { metadata: { namespace: "default", name: "web-roster" }, data: { [PUBLISHED_DATA_KEY]: text } },
  ]);
  const client = new RosterClient(undefined, { source, rng: seededRng(1) });
  await client.ready();
  const batch = 100_000;
  const run = () => {
    for (let i = 0; i < batch; i++) {
      const p = client.pick("web");
      sink += p.endpoint.weight;
      p.release();
    }
  };
  return measure(run, batch);
}

const figures: Figure[] = [];
for (const c of cases) {
  for (const n of sizes) {
    const target =
      n === 1000 && c.name === "RoundRobin"
        ? ">= 5000000"
        : n === 1000 && c.name.startsWith("ConsistentHash")
          ? ">= 1000000"
          : undefined;
    current = `${c.name} picks n=${n}`;
    figures.push({
      name: current,
      value: Math.round(picksPerSecond(c.options, endpointSet(n))),
      unit: "picks/s",
      target,
    });
  }
}
for (const c of [cases[0]!, cases[1]!, cases[5]!]) {
  current = `${c.name} picks n=1000 zone-aware`;
  figures.push({
    name: current,
    value: Math.round(picksPerSecond(c.options, endpointSet(1000), "zone-1")),
    unit: "picks/s",
  });
}
current = "RosterClient.pick RoundRobin n=1000";
figures.push({ name: current, value: Math.round(await clientPicksPerSecond(1000)), unit: "picks/s" });
for (const c of cases) {
  for (const n of sizes)
    figures.push({ name: `${c.name} rebuild n=${n}`, value: rebuildMs(c.options, n), unit: "ms" });
}
for (const algorithm of ["ring", "maglev"] as const) {
  for (const n of sizes) {
    figures.push({
      name: `ConsistentHash-${algorithm} keys moved, 1 of n=${n} leaves (x 1/n)`,
      value: movedFraction(algorithm, n) * n,
      unit: "x",
      target: "~1",
    });
  }
}
report("balance", figures, {
  budgetMs,
  rateClock: "process CPU time",
  wallClockPicksPerSecond: wallRates,
  sink: sink > 0,
});
