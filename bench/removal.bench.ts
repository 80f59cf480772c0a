/**
 * Removal time, like for like (issue 19): how long after a target starts
 * failing it is gone from the published EndpointSlice, as seen by an
 * independent watcher, with failureThreshold 3 at a 1 s interval (timeout
 * 500 ms, no jitter), real HTTP probes of real loopback servers, one sandbox:
 *
 * - `roster default`: Roster's operator (a child process) with
 *   recheckInterval absent;
 * - `roster <recheck>`: the same operator, other instances, with
 *   recheckInterval `--recheck` (default 10ms, the API minimum);
 * - `peer`: `bench/retry-peer.ts` (a child process), which probes once per
 *   interval, retries back to back after a failure until the threshold, and
 *   replaces its EndpointSlice at once (no batching).
 *
 * Rounds interleave the sides (A, B, C, A, B, C, ...): in a round every target
 * of one side fails at a random point of one interval (so failures fall at
 * any phase), the time from the flip to the watcher seeing its address leave
 * the ready set is taken, then all recover. Each sample is split at the
 * first 503 the target served (the first failed probe): before it is the wait
 * for the next probe (the same for every side), after it is confirmation and
 * publication, which is what differs. For Roster the engine's verdict time
 * splits that further into confirmation and publication. Figures: pooled
 * p50/p99 over every sample, and the median of the per-round p50s and p99s
 * with their range. Steady state (nothing failing): probes per target per
 * second.
 *
 *   node bench/removal.bench.ts             # 50 targets per side, 10 rounds each (~3 min)
 *   node bench/removal.bench.ts --quick     # 25 per side, 4 rounds
 *   options: --per-side N --rounds R --recheck DURATION --batch-window MS
 */
import { type ChildProcess, fork } from "node:child_process";
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  benchAddress,
  createNamespace,
  sleep,
  sorted,
  startCluster,
  startTargets,
  until,
  watch,
} from "./lib.ts";
import { type Figure, percentile, report } from "./report.ts";
import type { PeerRequest, PeerStats } from "./retry-peer.ts";
import { createInstances, operatorDefaults, settle, startOperators, total } from "./setup.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "per-side": { type: "string" },
    rounds: { type: "string" },
    recheck: { type: "string", default: "10ms" },
    "batch-window": { type: "string" },
  },
});
const perSide = Number(args["per-side"] ?? (args.quick ? 25 : 50));
const rounds = Number(args.rounds ?? (args.quick ? 4 : 10));
const batchWindowMs = Number(args["batch-window"] ?? operatorDefaults.batchWindowMs);
const intervalMs = 1000;
const timeoutMs = 500;
const failureThreshold = 3;
const ns = "removal";

interface Side {
  name: string;
  service: string;
  /** Target ids (instance i-<id> for Roster, /h/<id> for both). */
  ids: number[];
  roster: boolean;
  total: number[][];
  afterFirstFail: number[][];
  confirm: number[][];
  publish: number[][];
  /** CPU seconds of the side's process over its rounds (failures, removals, recoveries). */
  cpuSeconds: number;
}
const side = (name: string, service: string, k: number, roster: boolean): Side => ({
  name,
  service,
  ids: Array.from({ length: perSide }, (_, i) => k * perSide + i),
  roster,
  total: [],
  afterFirstFail: [],
  confirm: [],
  publish: [],
  cpuSeconds: 0,
});
const sides = [
  side("roster default", "r-default", 0, true),
  side(`roster ${args.recheck}`, "r-fast", 1, true),
  side("peer", "peer", 2, false),
];

function startPeer(): Promise<{ call<T>(req: PeerRequest): Promise<T>; child: ChildProcess }> {
  const here = dirname(fileURLToPath(import.meta.url));
  const child = fork(resolve(here, "retry-peer.ts"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let seq = 0;
  const pending = new Map<number, (v: unknown) => void>();
  child.on("message", (m: { id?: number; value?: unknown }) => {
    if (m.id !== undefined) pending.get(m.id)?.(m.value);
  });
  const call = <T>(req: PeerRequest) =>
    new Promise<T>((done) => {
      const id = seq++;
      pending.set(id, (v) => done(v as T));
      child.send({ id, req });
    });
  return new Promise((done) => child.once("message", () => done({ call, child })));
}

const load0 = loadavg()[0]!;
const cluster = await startCluster();
const targets = await startTargets(4, "127.0.5");
const group = await startOperators({ replicas: 1, sharding: false });
const peer = await startPeer();
const loads: number[] = [];
try {
  await createNamespace(cluster.kc, ns);
  const watched = await watch(cluster.kc, ns);
  await createInstances(cluster.kc, ns, 2 * perSide, {
    service: (i) => (i < perSide ? "r-default" : "r-fast"),
    targets,
    interval: "1s",
    timeout: "500ms",
    failureThreshold,
    recheckInterval: (i) => (i < perSide ? undefined : args.recheck),
  });
  await group.start({ kubeconfig: cluster.sandbox.kubeconfigPath, namespaces: [ns], batchWindowMs });
  const peerSide = sides[2]!;
  await peer.call({
    op: "start",
    kubeconfig: cluster.sandbox.kubeconfigPath,
    namespace: ns,
    service: peerSide.service,
    targets: peerSide.ids.map((id) => ({
      host: targets.hosts[id % targets.hosts.length]!,
      port: targets.port,
      path: `/h/${id}`,
      address: benchAddress(id),
    })),
    intervalMs,
    timeoutMs,
    failureThreshold,
  });
  await until("every side's slice to hold all its targets", 120_000, () =>
    sides.every((s) => watched.sliceReady.get(s.service) === perSide),
  );
  await settle(group, 1000, 10_000);

  // Steady state, nothing failing: probes per target per second.
  const steadyMs = args.quick ? 5000 : 10_000;
  const r0 = total(await group.stats()).engine.probes;
  const p0 = (await peer.call<PeerStats>({ op: "stats" })).probes;
  await sleep(steadyMs);
  const rosterSteady = (total(await group.stats()).engine.probes - r0) / (2 * perSide) / (steadyMs / 1000);
  const peerSteady =
    ((await peer.call<PeerStats>({ op: "stats" })).probes - p0) / perSide / (steadyMs / 1000);

  for (let r = 0; r < rounds; r++) {
    for (const s of sides) {
      loads.push(loadavg()[0]!);
      const cpu = async () => {
        if (!s.roster) return (await peer.call<PeerStats>({ op: "stats" })).cpuMicros / 1e6;
        const t = total(await group.stats());
        return (t.userMicros + t.systemMicros) / 1e6;
      };
      const cpu0 = await cpu();
      const order = s.ids.map((id) => ({ id, at: Math.random() * intervalMs })).sort((a, b) => a.at - b.at);
      const flippedAt = new Map<number, number>();
      const start = Date.now();
      for (const { id, at } of order) {
        const wait = start + at - Date.now();
        if (wait > 0) await sleep(wait);
        targets.failedAt.delete(id);
        flippedAt.set(id, Date.now());
        targets.failing.add(id);
      }
      const gone = (id: number) => (watched.sliceLeft.get(benchAddress(id)) ?? 0) >= flippedAt.get(id)!;
      await until(`${s.name} round ${r}: all removed`, 60_000, () => s.ids.every(gone));
      const since = s.roster ? await group.since(s.ids.map((id) => `${ns}/i-${id}`)) : [];
      const tot: number[] = [];
      const aff: number[] = [];
      const conf: number[] = [];
      const pub: number[] = [];
      for (const [k, id] of s.ids.entries()) {
        const seen = watched.sliceLeft.get(benchAddress(id))!;
        const first = targets.failedAt.get(id)!;
        tot.push(seen - flippedAt.get(id)!);
        aff.push(seen - first);
        if (s.roster) {
          conf.push(since[k]! - first);
          pub.push(seen - since[k]!);
        }
      }
      s.total.push(tot);
      s.afterFirstFail.push(aff);
      s.confirm.push(conf);
      s.publish.push(pub);
      const recoveredFrom = Date.now();
      for (const id of s.ids) targets.failing.delete(id);
      await until(`${s.name} round ${r}: all back`, 60_000, () =>
        s.ids.every((id) => (watched.sliceEntered.get(benchAddress(id)) ?? 0) >= recoveredFrom),
      );
      // Statuses and policy statuses trail a round: let them land before the next side's.
      await settle(group, 500, 5000);
      s.cpuSeconds += (await cpu()) - cpu0;
    }
  }
  watched.stop();

  const figures: Figure[] = [];
  const stat = (rows: number[][], p: number) => {
    const perRound = sorted(rows.map((row) => percentile(sorted(row), p)));
    return {
      pooled: percentile(sorted(rows.flat()), p),
      median: percentile(perRound, 50),
      min: perRound[0]!,
      max: perRound.at(-1)!,
    };
  };
  const spread: Record<string, unknown> = {};
  for (const s of sides) {
    const parts: [string, number[][]][] = [
      ["removal", s.total],
      ["after first failed probe", s.afterFirstFail],
    ];
    if (s.roster) parts.push(["confirmation (first failure to verdict)", s.confirm]);
    if (s.roster) parts.push(["publication (verdict to slice event)", s.publish]);
    for (const [what, rows] of parts) {
      for (const p of [50, 99]) {
        const x = stat(rows, p);
        figures.push({ name: `${s.name}: ${what} p${p}`, value: x.pooled, unit: "ms" });
        spread[`${s.name}: ${what} p${p}`] = { medianOfRounds: x.median, min: x.min, max: x.max };
      }
    }
  }
  const peerOf = (what: string, p: number) => figures.find((f) => f.name === `peer: ${what} p${p}`)!.value;
  for (const s of sides.slice(0, 2)) {
    for (const p of [50, 99]) {
      const mine = figures.find((f) => f.name === `${s.name}: removal p${p}`)!.value;
      figures.push({
        name: `${s.name}: removal p${p} − peer's`,
        value: mine - peerOf("removal", p),
        unit: "ms",
        target: "<= 0",
      });
    }
  }
  for (const s of sides) {
    figures.push({
      name: `${s.name}: CPU ms per failure (detect, publish, recover)`,
      value: (s.cpuSeconds * 1000) / (rounds * perSide),
      unit: "ms",
    });
  }
  figures.push(
    { name: "roster: steady probes per target per s", value: rosterSteady, unit: "/s" },
    { name: "peer: steady probes per target per s", value: peerSteady, unit: "/s" },
  );
  // Runs with other sizes or batching write files of their own.
  const suffix = `${args["per-side"] ? `-n${perSide}` : ""}${args["batch-window"] ? `-bw${batchWindowMs}` : ""}`;
  report(`removal${args.quick ? "-quick" : ""}${suffix}`, figures, {
    perSide,
    rounds,
    samplesPerSide: perSide * rounds,
    intervalMs,
    timeoutMs,
    failureThreshold,
    recheck: { default: "absent (interval/4 = 250ms)", fast: args.recheck },
    batchWindowMs,
    roundsOf: spread,
    loadavg: {
      start: load0,
      rounds: { min: Math.min(...loads), max: Math.max(...loads) },
      end: loadavg()[0],
    },
    method:
      "removal: watcher Date.now() at the EndpointSlice event without the address − the moment the target began answering 503 (random point of one interval); 'after first failed probe' starts at the first 503 served; roster's verdict time is the engine's summary `since`. Sides interleaved round by round.",
  });
} finally {
  await peer.call({ op: "stop" }).catch(() => undefined);
  await group.stop();
  await targets.close();
  await cluster.stop(true);
}
