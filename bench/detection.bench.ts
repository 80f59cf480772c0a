/**
 * Detection time with fast confirmation (issue 19): how long after a target
 * starts failing the probe engine turns it Unhealthy, with failureThreshold 3
 * at a 1 s interval (timeout 500 ms, jitter 10 %), real HTTP probes of real
 * loopback servers. Side by side in one process, interleaved: one engine per
 * variant, each with its own targets, flipped in the same rounds so machine
 * noise hits every variant alike:
 *
 * - `off`: recheckInterval = interval (one run per interval: Roster before
 *   fast confirmation);
 * - `default`: recheckInterval absent (a retry at once, then interval/4 = 250 ms);
 * - `floor`: recheckInterval 10 ms (the API minimum: about back-to-back retries).
 *
 * Per round every target of every engine fails at a random point within one
 * interval and the time from the flip to its Unhealthy transition is taken;
 * then all recover. Steady-state probes per target per second are measured
 * apart (nothing failing), to show fast confirmation costs nothing there.
 * Detection only: publication (batching, API write, watch) comes on top;
 * `bench/removal.bench.ts` measures removal end to end against a peer.
 *
 *   node bench/detection.bench.ts            # 100 targets per variant, 10 rounds
 *   node bench/detection.bench.ts --quick    # 50 targets, 4 rounds
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { createProbeEngine } from "../src/health/engine.ts";
import type { CheckSpec } from "../src/health/types.ts";
import { startTargets } from "./lib.ts";
import { type Figure, percentile, report } from "./report.ts";

const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const perVariant = args.quick ? 50 : 100;
const rounds = args.quick ? 4 : 10;
const intervalMs = 1000;

const variants = [
  { name: "off", recheckIntervalMs: intervalMs as number | undefined },
  { name: "default", recheckIntervalMs: undefined },
  { name: "floor", recheckIntervalMs: 10 },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load0 = loadavg()[0]!;
const targets = await startTargets(4, "127.0.3");
const flippedAt = new Map<number, number>();
const detect = new Map<string, number[]>(variants.map((v) => [v.name, []]));
const pendingDown = new Set<number>();
const pendingUp = new Set<number>();

const engines = variants.map((v, vi) => {
  const engine = createProbeEngine({
    policy: { allowLoopback: true },
    onTransition: (t) => {
      if (t.address !== undefined) return;
      const n = Number(t.id.split("-").at(-1));
      if (t.to === "Unhealthy" && pendingDown.delete(n)) {
        detect.get(v.name)!.push(Date.now() - flippedAt.get(n)!);
      }
      if (t.to === "Healthy") pendingUp.delete(n);
    },
  });
  for (let i = 0; i < perVariant; i++) {
    const n = vi * perVariant + i;
    const check: CheckSpec = {
      probes: [{ type: "http", port: targets.port, path: `/h/${n}` }],
      intervalMs,
      timeoutMs: 500,
      failureThreshold: 3,
      successThreshold: 1,
      jitterMs: intervalMs / 10,
    };
    if (v.recheckIntervalMs !== undefined) check.recheckIntervalMs = v.recheckIntervalMs;
    engine.set({ id: `bench/${v.name}-${n}`, host: targets.hosts[n % targets.hosts.length]!, check });
  }
  return engine;
});
const all = variants.length * perVariant;

async function until(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// Warm up: every target healthy.
await until("all healthy", () =>
  engines.every((e) => [...e.summaries()].every((s) => s.verdict === "Healthy")),
);

// Steady state: probes per target per second, nothing failing.
const before = engines.map((e) => e.stats().probes);
const steadyMs = args.quick ? 5000 : 10_000;
await sleep(steadyMs);
const steady = engines.map((e, i) => (e.stats().probes - before[i]!) / perVariant / (steadyMs / 1000));

for (let r = 0; r < rounds; r++) {
  // Every target fails at a random point of one interval, so the flips fall anywhere in each phase.
  const order = Array.from({ length: all }, (_, n) => ({ n, at: Math.random() * intervalMs })).sort(
    (a, b) => a.at - b.at,
  );
  const start = Date.now();
  for (const { n, at } of order) {
    const wait = start + at - Date.now();
    if (wait > 0) await sleep(wait);
    pendingDown.add(n);
    flippedAt.set(n, Date.now());
    targets.failing.add(n);
  }
  await until(`round ${r}: all unhealthy`, () => pendingDown.size === 0);
  for (let n = 0; n < all; n++) pendingUp.add(n);
  targets.failing.clear();
  await until(`round ${r}: all healthy`, () => pendingUp.size === 0);
}

const figures: Figure[] = [];
for (const [i, v] of variants.entries()) {
  const d = detect.get(v.name)!.sort((a, b) => a - b);
  figures.push(
    { name: `${v.name}: detection p50`, value: percentile(d, 50), unit: "ms" },
    { name: `${v.name}: detection p99`, value: percentile(d, 99), unit: "ms" },
    { name: `${v.name}: steady probes per target per s`, value: steady[i]!, unit: "/s" },
    { name: `${v.name}: rechecks`, value: engines[i]!.stats().rechecks, unit: "" },
  );
}
report("detection", figures, {
  targetsPerVariant: perVariant,
  rounds,
  intervalMs,
  timeoutMs: 500,
  failureThreshold: 3,
  variants: variants.map((v) => ({ name: v.name, recheckIntervalMs: v.recheckIntervalMs ?? "default" })),
  loadavgStart: load0,
  loadavgEnd: loadavg()[0],
});
for (const e of engines) e.close();
await targets.close();
