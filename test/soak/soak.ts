/**
 * The soak (`make soak`, not in CI): the operator runs for an hour (by
 * default) under steady random churn, against a private sandbox and real
 * loopback HTTP targets, while this process holds the ground truth and
 * checks every published change against it.
 *
 * - Operator: bench/operator-child.ts in a child process (its RSS and FDs
 *   are its own), probe interval 1 s, /metrics served on a free port.
 * - Targets: `--hosts` HTTP servers on 127.0.7.x, one path per instance
 *   (`/h/<serial>` answers 503 while that target fails), reached through the
 *   probe host override; published addresses are in 198.18.0.0/15.
 * - Churn (churn.ts): `--rate` actions per second from a seeded PRNG.
 * - Checking (checker.ts): an independent list+watch of Roster's
 *   EndpointSlices and ConfigMaps (published.ts) against the truth
 *   (truth.ts); a disagreement older than the deadline is a miss, a
 *   readiness change no truth change explains is a flap. Every
 *   `--checkpoint` the churn pauses until everything agrees, and no
 *   Service, slice or ConfigMap may remain for a service that is gone.
 * - Sampling every `--sample`: operator RSS, FDs (by kind), heap, work-queue
 *   depths, probes per second (sample.ts).
 *
 * Writes bench/results/soak.json; exits 1 on a miss, a flap, a leaked
 * object, a checkpoint that does not converge, an operator exit, or growth
 * (trend.ts: the 90th percentile of the last quarter against the third):
 * RSS +10 % or more, descriptors other than probe connections +5 % and more
 * than 2, any work queue +10 items; or more probe connections than live
 * instances.
 *
 *   node test/soak/soak.ts                        # 1 h (or $SOAK_DURATION)
 *   node test/soak/soak.ts --duration 10m --seed 42
 *   options: --instances 200 --services 20 --rate 2 --interval 1 --slack 5s
 *            --checkpoint 5m --sample 10s --hosts 8
 *            --sabotage N (self-check: every N-th action fails a target without
 *            telling the truth; the soak must then report flaps and fail)
 */
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api } from "@kubernetes/client-node";
import {
  createNamespace,
  type OperatorProcess,
  sleep,
  sorted,
  startCluster,
  startOperatorProcess,
  startTargets,
} from "../../bench/lib.ts";
import { type Figure, percentile, report } from "../../bench/report.ts";
import { operatorDefaults } from "../../bench/setup.ts";
import { parseDuration } from "../../src/api/index.ts";
import { type Checker, createChecker, type Incident } from "./checker.ts";
import { clockTime, createChurn } from "./churn.ts";
import { createRng } from "./prng.ts";
import { type Published, SOURCES, watchPublished } from "./published.ts";
import { createSampler, type Sample } from "./sample.ts";
import { type Trend, trend } from "./trend.ts";
import { createTruth } from "./truth.ts";

const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: process.env.SOAK_DURATION || "1h" },
    seed: { type: "string" },
    instances: { type: "string", default: "200" },
    services: { type: "string", default: "20" },
    rate: { type: "string", default: "2" },
    interval: { type: "string", default: "1" },
    slack: { type: "string", default: "5s" },
    checkpoint: { type: "string", default: "5m" },
    sample: { type: "string", default: "10s" },
    hosts: { type: "string", default: "8" },
    sabotage: { type: "string" },
  },
});

const durationMs = parseDuration(args.duration);
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
const intervalSeconds = Number(args.interval);
const timeoutMs = Math.min(500, intervalSeconds * 500);
const failureThreshold = 2;
const successThreshold = 1;
const slackMs = parseDuration(args.slack);
// A target that changes state is probed within one interval (its phase), a
// verdict needs `threshold` probes, a probe may take `timeout`; the slack
// covers the batch window, the writes and the watch on 2 busy cores.
const deadlineMs =
  intervalSeconds * 1000 * (Math.max(failureThreshold, successThreshold) + 1) + timeoutMs + slackMs;
const checkpointMs = parseDuration(args.checkpoint);
const sampleMs = parseDuration(args.sample);
const ns = "soak";

// Limits of "flat" (growth over the last half, trend.ts).
const RSS_GROWTH = 0.1;
const FD_GROWTH = 0.05;
const FD_NOISE = 2;
const QUEUE_GROWTH = 10;

const log = (msg: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface Checkpoint {
  at: number;
  /** ms from pausing the churn to full agreement; NaN: not reached. */
  convergedMs: number;
  mismatches: number;
  leaks: string[];
}

async function main(): Promise<number> {
  log(
    `seed ${seed} (replay: --seed ${seed}), duration ${args.duration}, ~${args.instances} instances in ~${args.services} services, ${args.rate} actions/s, interval ${intervalSeconds}s, deadline ${deadlineMs} ms`,
  );
  const cluster = await startCluster();
  const targets = await startTargets(Number(args.hosts), "127.0.7");
  const kc = cluster.kc;
  await createNamespace(kc, ns);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);

  const truth = createTruth();
  const rng = createRng(seed);
  let checker: Checker | undefined;
  const churn = createChurn({
    rng,
    truth,
    custom,
    targets,
    config: {
      namespace: ns,
      instances: Number(args.instances),
      services: Number(args.services),
      intervalSeconds,
      timeoutMs,
      failureThreshold,
      successThreshold,
      panicThreshold: 50,
      sabotageEvery: args.sabotage ? Number(args.sabotage) : undefined,
    },
    onChange(ch, at) {
      if (!checker) return;
      checker.touch(ch.touched, at);
      for (const [a, v] of ch.changed) checker.truthChanged(a, v, at);
    },
  });
  const expectedReady = () =>
    new Set([...truth.instances.values()].map((i) => i.address).filter((a) => truth.ready(a)));

  let published: Published | undefined;
  let operator: OperatorProcess | undefined;
  let exited: string | undefined;
  let stopping = false;
  const samples: Sample[] = [];
  const checkpoints: Checkpoint[] = [];
  let actions = 0;
  let churnStart = 0;
  let churnEnd = 0;
  try {
    published = await watchPublished(kc, ns, (source, address, ready, at) =>
      checker?.published(source, address, ready, at),
    );
    const createdAt = Date.now();
    await churn.populate();
    log(
      `created ${truth.instances.size} instances in ${truth.services.size} services (${Date.now() - createdAt} ms)`,
    );

    operator = await startOperatorProcess();
    const op = operator;
    op.child.once("exit", (code, signal) => {
      if (stopping) return;
      exited = `operator exited (code ${code}, signal ${signal})`;
      log(exited);
    });
    const startedAt = await op.start({
      kubeconfig: cluster.sandbox.kubeconfigPath,
      namespaces: [ns],
      ...operatorDefaults,
      metricsPort: 0,
    });
    const metricsPort = (await op.ports()).metrics;
    if (!metricsPort) throw new Error("the operator serves no /metrics");

    const agree = () => {
      const want = expectedReady();
      return SOURCES.every((s) => {
        const have = published!.ready(s);
        return have.size === want.size && [...want].every((a) => have.has(a));
      });
    };
    while (!agree()) {
      if (exited) throw new Error(exited);
      if (Date.now() - startedAt > 180_000) throw new Error("no initial convergence within 180 s");
      await sleep(100);
    }
    log(`initial publication complete ${((Date.now() - startedAt) / 1000).toFixed(1)} s after start`);

    const c = createChecker({
      deadlineMs,
      sources: SOURCES,
      truth: (a) => truth.ready(a),
      describe: (a) => churn.describe(a),
      history: (a) => churn.history(a),
    });
    for (const s of SOURCES) c.seed(s, published.ready(s));
    checker = c;
    const ticker = setInterval(() => c.tick(Date.now()), 250);

    churnStart = Date.now();
    const end = churnStart + durationMs;
    let sampling = true;
    const readings = createSampler(op, metricsPort, `${targets.hosts[0]!.split(".").slice(0, 3).join(".")}.`);
    const sampler = (async () => {
      let last: Sample | undefined;
      let lastLog = 0;
      let windowStart = Date.now();
      while (sampling && !exited) {
        try {
          readings.read();
          if (Date.now() - windowStart >= sampleMs - 500) {
            windowStart = Date.now();
            last = {
              ...(await readings.take((Date.now() - churnStart) / 1000)),
              instances: truth.instances.size,
            };
            samples.push(last);
          }
        } catch (err) {
          if (!exited) log(`sample failed: ${err}`);
        }
        if (last && Date.now() - lastLog >= 60_000) {
          lastLog = Date.now();
          const s = c.summary();
          const q = Object.entries(last.queues)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ");
          log(
            `+${Math.round(last.t)}s actions ${actions}, instances ${truth.instances.size}, transitions ${s.transitions}, misses ${s.misses.length}, flaps ${s.flaps.length}; RSS ${last.rssMiB.toFixed(1)} MiB, heap ${last.heapMiB.toFixed(1)} MiB, FDs ${last.fdsMin}-${last.fdsMax} (${last.fixedFds} not probe connections), queues ${q}, ${last.probesPerSecond.toFixed(0)} probes/s`,
          );
        }
        await sleep(1000);
      }
    })();

    const checkpoint = async () => {
      const at = Date.now();
      let convergedMs = Number.NaN;
      let mismatches = 0;
      while (!exited) {
        mismatches = c.mismatches().length;
        if (mismatches === 0) {
          convergedMs = Date.now() - at;
          break;
        }
        if (Date.now() - at > deadlineMs + 1000) break;
        await sleep(50);
      }
      const leaks = await leaked();
      checkpoints.push({ at: (at - churnStart) / 1000, convergedMs, mismatches, leaks });
      if (mismatches > 0 || leaks.length > 0)
        log(
          `checkpoint: ${mismatches} mismatches after ${deadlineMs + 1000} ms; leaked: ${leaks.join(", ")}`,
        );
    };
    // Published objects of services that no longer exist, once GC had the deadline to act.
    const leaked = async (): Promise<string[]> => {
      const selector = "app.kubernetes.io/managed-by=roster.dev";
      let found: string[] = [];
      for (let attempt = 0; attempt * 1000 <= deadlineMs; attempt++) {
        const [svcs, cms, slices] = await Promise.all([
          core.listNamespacedService({ namespace: ns, labelSelector: selector }),
          core.listNamespacedConfigMap({ namespace: ns, labelSelector: selector }),
          discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: selector }),
        ]);
        found = [
          ...svcs.items.map((o) => ["Service", o.metadata]),
          ...cms.items.map((o) => ["ConfigMap", o.metadata]),
          ...slices.items.map((o) => ["EndpointSlice", o.metadata]),
        ]
          .filter(([, m]) => {
            const svc = (m as { labels?: Record<string, string> }).labels?.["roster.dev/service"] ?? "";
            return !truth.exists(svc);
          })
          .map(([kind, m]) => `${kind} ${(m as { name?: string }).name}`);
        if (found.length === 0) break;
        await sleep(1000);
      }
      return found;
    };

    let nextCheckpoint = churnStart + checkpointMs;
    while (Date.now() < end && !exited) {
      if (Date.now() >= nextCheckpoint) {
        await checkpoint();
        nextCheckpoint = Date.now() + checkpointMs;
      }
      await churn.step();
      actions++;
      await sleep(rng.exponential(1000 / Number(args.rate)));
    }
    churnEnd = Date.now();
    if (!exited) await checkpoint();
    sampling = false;
    await sampler;
    c.tick(Date.now());
    clearInterval(ticker);
  } finally {
    stopping = true;
    published?.stop();
    await operator?.stop();
    await targets.close();
    await cluster.stop();
  }

  return summarize({
    checker: checker!,
    samples,
    checkpoints,
    counts: churn.counts,
    actions,
    t0: churnStart,
    seconds: (churnEnd - churnStart) / 1000,
    exited,
    published: published!,
  });
}

function summarize(o: {
  checker: Checker;
  samples: Sample[];
  checkpoints: Checkpoint[];
  counts: Record<string, number>;
  actions: number;
  t0: number;
  seconds: number;
  exited: string | undefined;
  published: Published;
}): number {
  const { checker, samples, checkpoints, counts, actions, t0, seconds, exited, published } = o;
  const s = checker.summary();
  const rss = trend(samples.map((x) => [x.t, x.rssMiB]));
  const heap = trend(samples.map((x) => [x.t, x.heapMiB]));
  const fds = trend(samples.map((x) => [x.t, x.fixedFds]));
  const fdsAll = trend(samples.map((x) => [x.t, x.fdsMean]));
  const probeConns = trend(samples.map((x) => [x.t, x.fdKinds.probe ?? 0]));
  const queueNames = [...new Set(samples.flatMap((x) => Object.keys(x.queues)))];
  const queues: Record<string, Trend> = {};
  for (const q of queueNames) queues[q] = trend(samples.map((x) => [x.t, x.queues[q] ?? 0]));
  const probeRates = samples.map((x) => x.probesPerSecond).filter((x) => Number.isFinite(x));
  const converged = checkpoints.map((c) => c.convergedMs).filter((x) => Number.isFinite(x));
  const leaks = checkpoints.flatMap((c) => c.leaks);

  // What the machine was doing when an incident happened: probe failures by
  // reason and the longest event-loop stalls, in the windows that cover the
  // few seconds before it (a verdict needs `failureThreshold` probes).
  const contextOf = (i: Incident) => {
    const to = (i.detectedAt - t0) / 1000;
    const from = to - (failureThreshold + 2) * intervalSeconds;
    const windows = samples
      .map((x, k) => ({ x, prev: samples[k - 1] }))
      .filter(({ x, prev }) => x.t >= from && (prev?.t ?? 0) <= to);
    const failuresByReason: Record<string, number> = {};
    for (const { x, prev } of windows)
      for (const [r, v] of Object.entries(x.probeFailures))
        failuresByReason[r] = (failuresByReason[r] ?? 0) + v - (prev?.probeFailures[r] ?? 0);
    const operatorLagMaxMs = Math.max(0, ...windows.map(({ x }) => x.operatorLagMaxMs));
    const soakLagMaxMs = Math.max(0, ...windows.map(({ x }) => x.soakLagMaxMs));
    // Probes timed out while a process stalled longer than the probe timeout:
    // the operator published what its probes really saw.
    const stall =
      (failuresByReason.Timeout ?? 0) > 0 && Math.max(operatorLagMaxMs, soakLagMaxMs) >= timeoutMs;
    return { failuresByReason, operatorLagMaxMs, soakLagMaxMs, stall };
  };
  const contexts = new Map([...s.misses, ...s.flaps].map((i) => [i, contextOf(i)]));
  const stallFlaps = s.flaps.filter((i) => contexts.get(i)!.stall);
  const realFlaps = s.flaps.filter((i) => !contexts.get(i)!.stall);

  const failures: string[] = [];
  if (exited) failures.push(exited);
  if (s.misses.length) failures.push(`${s.misses.length} missed transitions`);
  if (realFlaps.length) failures.push(`${realFlaps.length} flaps`);
  if (leaks.length) failures.push(`${leaks.length} leaked objects`);
  if (checkpoints.some((c) => c.mismatches > 0)) failures.push("a checkpoint did not converge");
  if (!(rss.growthLastHalf < RSS_GROWTH))
    failures.push(`RSS grew ${(rss.growthLastHalf * 100).toFixed(1)} % over the last half`);
  if (!(fds.growthLastHalf < FD_GROWTH || fds.increaseLastHalf <= FD_NOISE))
    failures.push(`FDs (other than probe connections) grew by ${fds.increaseLastHalf} over the last half`);
  // One keep-alive connection per target at most: more means sockets outlive their targets.
  const overConnected = samples.filter(
    (x) => (x.fdKinds.probe ?? 0) > (x.instances ?? Number.POSITIVE_INFINITY),
  );
  if (overConnected.length)
    failures.push(`${overConnected.length} samples with more probe connections than instances`);
  for (const [q, t] of Object.entries(queues))
    if (!(t.increaseLastHalf < QUEUE_GROWTH))
      failures.push(`queue ${q} grew by ${t.increaseLastHalf.toFixed(1)}`);
  if (samples.length < 4) failures.push("too few samples to judge trends");

  const pct = (xs: number[], p: number) => percentile(sorted(xs), p);
  const figures: Figure[] = [
    { name: "duration", value: seconds, unit: "s" },
    { name: "actions", value: actions, unit: "" },
    { name: "transitions (truth changes)", value: s.transitions, unit: "" },
  ];
  for (const [src, b] of Object.entries(s.bySource)) {
    figures.push(
      { name: `${src}: transitions confirmed`, value: b.confirmed, unit: "" },
      { name: `${src}: superseded before publication`, value: b.superseded, unit: "" },
      { name: `${src}: transient moves (within deadline)`, value: b.transient, unit: "" },
      { name: `${src}: publication latency p50`, value: pct(b.latencies, 50), unit: "ms" },
      { name: `${src}: publication latency p99`, value: pct(b.latencies, 99), unit: "ms" },
      { name: `${src}: publication latency max`, value: pct(b.latencies, 100), unit: "ms" },
    );
  }
  figures.push(
    { name: "missed transitions", value: s.misses.length, unit: "", target: "0" },
    { name: "flaps", value: realFlaps.length, unit: "", target: "0" },
    { name: "flaps from probe timeouts during a stall", value: stallFlaps.length, unit: "" },
    {
      name: "longest operator event-loop stall",
      value: Math.max(0, ...samples.map((x) => x.operatorLagMaxMs).filter(Number.isFinite)),
      unit: "ms",
    },
    {
      name: "longest soak (probe targets) event-loop stall",
      value: Math.max(0, ...samples.map((x) => x.soakLagMaxMs).filter(Number.isFinite)),
      unit: "ms",
    },
    { name: "checkpoints", value: checkpoints.length, unit: "" },
    {
      name: "checkpoint convergence max",
      value: converged.length ? Math.max(...converged) : Number.NaN,
      unit: "ms",
    },
    { name: "leaked objects", value: leaks.length, unit: "", target: "0" },
    { name: "RSS first quarter", value: rss.firstQuarter, unit: "MiB" },
    { name: "RSS last quarter", value: rss.lastQuarter, unit: "MiB" },
    { name: "RSS slope", value: rss.slopePerHour, unit: "MiB/h" },
    { name: "RSS growth over the last half", value: rss.growthLastHalf * 100, unit: "%", target: "< 10" },
    { name: "heap first quarter", value: heap.firstQuarter, unit: "MiB" },
    { name: "heap last quarter", value: heap.lastQuarter, unit: "MiB" },
    { name: "heap slope", value: heap.slopePerHour, unit: "MiB/h" },
    { name: "FDs (not probe connections) first quarter", value: fds.firstQuarter, unit: "" },
    { name: "FDs (not probe connections) last quarter", value: fds.lastQuarter, unit: "" },
    { name: "FDs (not probe connections) slope", value: fds.slopePerHour, unit: "/h" },
    {
      name: "FDs (not probe connections) growth over the last half",
      value: fds.increaseLastHalf,
      unit: "",
      target: `< 5 % or <= ${FD_NOISE}`,
    },
    { name: "probe connections first quarter", value: probeConns.firstQuarter, unit: "" },
    { name: "probe connections last quarter", value: probeConns.lastQuarter, unit: "" },
    { name: "probe connections slope", value: probeConns.slopePerHour, unit: "/h" },
    {
      name: "probe connections per live instance, max",
      value: Math.max(...samples.map((x) => (x.fdKinds.probe ?? 0) / (x.instances ?? Number.NaN))),
      unit: "",
      target: "<= 1",
    },
    { name: "FDs (all) first quarter", value: fdsAll.firstQuarter, unit: "" },
    { name: "FDs (all) last quarter", value: fdsAll.lastQuarter, unit: "" },
    { name: "FDs (all) slope", value: fdsAll.slopePerHour, unit: "/h" },
    { name: "FDs (all) max", value: Math.max(...samples.map((x) => x.fdsMax)), unit: "" },
  );
  for (const [q, t] of Object.entries(queues))
    figures.push({ name: `queue ${q} max depth`, value: t.max, unit: "" });
  figures.push({
    name: "probes per second (mean)",
    value: probeRates.reduce((a, b) => a + b, 0) / Math.max(1, probeRates.length),
    unit: "/s",
  });

  const brief = (i: Incident) =>
    `${i.kind} [${i.source}] ${i.address} ${i.what}: expected ${i.expected ? "ready" : "not ready"}, published ${i.published ? "ready" : "not ready"} at ${clockTime(i.detectedAt)} (+${((i.detectedAt - t0) / 1000).toFixed(1)}s; last touched ${Number.isFinite(i.lastTouchAt) ? clockTime(i.lastTouchAt) : "never"})${i.resolvedAt ? `, resolved ${((i.resolvedAt - i.detectedAt) / 1000).toFixed(1)} s later` : ", never resolved"}`;
  for (const i of [...s.misses, ...s.flaps].slice(0, 20)) {
    const c = contexts.get(i)!;
    console.log(`  ${brief(i)}`);
    console.log(
      `      probe failures around it: ${JSON.stringify(c.failuresByReason)}; longest stall: operator ${c.operatorLagMaxMs.toFixed(0)} ms, targets ${c.soakLagMaxMs.toFixed(0)} ms${c.stall ? " (a stall: not counted as a flap)" : ""}`,
    );
    for (const h of i.history.slice(-8)) console.log(`      ${h}`);
  }
  report("soak", figures, {
    seed,
    config: { ...args, deadlineMs, timeoutMs, failureThreshold, successThreshold },
    limits: { rssGrowth: RSS_GROWTH, fdGrowth: FD_GROWTH, fdNoise: FD_NOISE, queueGrowth: QUEUE_GROWTH },
    result: failures.length ? "fail" : "pass",
    failures,
    actionsByKind: counts,
    watchEvents: published.events(),
    trends: { rss, heap, fds, fdsAll, probeConns, queues },
    misses: s.misses.map((i) => ({ ...i, context: contexts.get(i) })),
    flaps: s.flaps.map((i) => ({ ...i, context: contexts.get(i) })),
    checkpoints,
    samples,
  });
  console.log(
    failures.length ? `\nsoak FAILED (seed ${seed}): ${failures.join("; ")}` : `\nsoak passed (seed ${seed})`,
  );
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`soak aborted (seed ${seed}):`, err);
    process.exit(2);
  },
);
