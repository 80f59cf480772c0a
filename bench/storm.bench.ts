/**
 * The write path under a storm, against the API server's ceiling measured in
 * the same run and the same sandbox (issue 18).
 *
 * 1. Ceiling: a plain client (node:http2 / node:https, no Roster code) issues
 *    the writes a storm consists of, three ServiceInstance status
 *    merge-patches to one EndpointSlice merge-patch, every one a real change,
 *    at 1, 4, 16, 32 and 64 in flight, over one HTTP/2 connection and over
 *    HTTP/1.1 with as many keep-alive connections as writes in flight. Points
 *    are interleaved over `--rounds` rounds (the order reversed every other
 *    round) and reported as the median; the best is the ceiling. The best
 *    point is also measured with server-side apply, the kind of write Roster
 *    sends, and re-measured before every Roster variant (the operator
 *    stopped), so that each variant is compared with a ceiling measured
 *    next to it.
 * 2. Zone outage: N instances (N/10 services, every service spread over three
 *    zones), the operator in a child process; one zone (a third of the
 *    instances, every service) fails at once; with failureThreshold 1 and
 *    the probe phases spread over the interval, the verdicts arrive within
 *    one interval. Reported: Roster's writes/s (the operator's own
 *    rest_client counts, sampled every 200 ms) sustained during the storm,
 *    i.e. over the samples that found a backlog (writes waiting at the gate
 *    or keys in the work queues), as a ratio of the merge-patch ceiling and
 *    of the server-side apply one (Roster's kind of write); the time from the last verdict to the last EndpointSlice
 *    change seen by a watcher against 1.25 × (EndpointSlice writes ÷
 *    ceiling); how many of the failed instances' statuses were written when
 *    the last slice was; and per instance whether its slice change was seen
 *    before its status. Then the zone recovers (the same storm the other way).
 * 3. Churn: 5 % of the instances (spread over the services) fail, then
 *    recover: EndpointSlice publication latency per transition (verdict →
 *    watcher), p50 / p99.
 * Phases 2 and 3 run once per `--inflight` value (`publishing.maxInflightWrites`),
 * one operator process each, in turn in the same namespace (the first one
 * also writes every status once; later ones restart over written statuses).
 *
 * Runtime, measured at load average 28-30 on the 2 shared cores (2026-12-07):
 * `--quick` with four variants 884 s (ceiling sweep ~60 s, creation 27 s,
 * the first start ~90 s, each later variant ~150 s); the 10k default was not
 * run to its end on that machine (expect 30 min or more: creation and the
 * first start scale with N, each variant is about three intervals plus the
 * backlog).
 *
 *   node bench/storm.bench.ts            # 10k / 1,000 / 10 s, inflight 4,16,64
 *   node bench/storm.bench.ts --quick    # 1k / 100 / 10 s
 *   node bench/storm.bench.ts --instances 50000   # the 50k storm
 *   node bench/storm.bench.ts --quick --inflight 16p4,16   # 16p4: the publisher at 4 workers (before issue 18's fix)
 *   options: --instances N --services S --interval 10s --inflight 4,16,64
 *            --rounds 2 --point-seconds 3 --churn 0.05 --concurrency 4
 *
 * Writes bench/results/storm-<N>.json.
 */
import { connect as h2connect } from "node:http2";
import { Agent, request as httpsRequest, type RequestOptions } from "node:https";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { KubeConfig } from "@kubernetes/client-node";
import {
  apiserverRequests,
  benchAddress,
  createNamespace,
  diffCounts,
  pool,
  sleep,
  sorted,
  startCluster,
  startTargets,
  type Targets,
  until,
  watch,
  writesTo,
} from "./lib.ts";
import type { ChildStats } from "./operator-child.ts";
import { type Figure, percentile, report } from "./report.ts";
import {
  distribution,
  instanceBody,
  type OperatorGroup,
  settle,
  startOperators,
  writeRequests,
} from "./setup.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    instances: { type: "string" },
    services: { type: "string" },
    interval: { type: "string", default: "10s" },
    inflight: { type: "string", default: "4,16,64" },
    rounds: { type: "string", default: "2" },
    "point-seconds": { type: "string" },
    churn: { type: "string", default: "0.05" },
    concurrency: { type: "string", default: "4" },
  },
});
const N = Number(args.instances ?? (args.quick ? 1000 : 10_000));
const S = Number(args.services ?? Math.max(100, Math.round(N / 10)));
const intervalMs = Number.parseFloat(args.interval) * 1000;
/** `16`: maxInflightWrites 16; `16p4`: and the publisher's workers at 4 (as before issue 18's fix). */
const variants = args.inflight.split(",").map((v) => {
  const [limit, workers] = v.split("p").map(Number);
  return { name: v, limit: limit!, publisherWorkers: workers };
});
const rounds = Number(args.rounds);
const pointMs = Number(args["point-seconds"] ?? (args.quick ? 2 : 3)) * 1000;
const load1 = () => Math.round(loadavg()[0]! * 100) / 100;
const t0Run = Date.now();

// --- the plain client -------------------------------------------------------------

type Protocol = "h2" | "h1";
type Kind = "merge" | "apply";
interface Write {
  path: string;
  contentType: string;
  body: string;
}
interface Sender {
  send(w: Write): Promise<number>;
  close(): void;
}

async function tlsOf(kc: KubeConfig): Promise<RequestOptions> {
  const opts: RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  return opts;
}

function h2Sender(server: string, tls: RequestOptions): Sender {
  const session = h2connect(server, { ca: tls.ca, cert: tls.cert, key: tls.key });
  session.on("error", () => undefined);
  return {
    send: (w) =>
      new Promise((done, fail) => {
        const req = session.request({
          ":method": "PATCH",
          ":path": w.path,
          "content-type": w.contentType,
          accept: "application/json",
          ...(tls.headers as Record<string, string>),
        });
        let status = 0;
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.on("data", () => undefined);
        req.on("end", () => done(status));
        req.on("error", fail);
        req.end(w.body);
      }),
    close: () => session.close(),
  };
}

function h1Sender(server: string, tls: RequestOptions, connections: number): Sender {
  const url = new URL(server);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: connections,
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
  });
  return {
    send: (w) =>
      new Promise((done, fail) => {
        const req = httpsRequest(
          {
            agent,
            method: "PATCH",
            hostname: url.hostname,
            port: url.port,
            path: w.path,
            headers: { "content-type": w.contentType, accept: "application/json", ...tls.headers },
          },
          (res) => {
            res.on("data", () => undefined);
            res.on("end", () => done(res.statusCode ?? 0));
          },
        );
        req.on("error", fail);
        req.end(w.body);
      }),
    close: () => agent.destroy(),
  };
}

const CEIL_NS = "storm-ceiling";
const CEIL_INSTANCES = 300;
const CEIL_SLICES = 100;
let seq = 0;

/** Write k of the ceiling's mix: every fourth an EndpointSlice, the others instance statuses; each changes something. */
function ceilingWrite(kind: Kind): Write {
  const k = seq++;
  if (k % 4 === 3) {
    const name = `ceil-${(k >> 2) % CEIL_SLICES}`;
    const endpoints = Array.from({ length: 10 }, (_, e) => ({
      addresses: [benchAddress(e, 19)],
      conditions: { ready: e !== k % 10 },
      // The hostname carries the sequence number: no two writes are the same.
      ...(e === 0 ? { hostname: `w${k}` } : {}),
    }));
    const body =
      kind === "merge"
        ? { endpoints }
        : {
            apiVersion: "discovery.k8s.io/v1",
            kind: "EndpointSlice",
            metadata: { name, namespace: CEIL_NS },
            addressType: "IPv4",
            endpoints,
          };
    return {
      path: `/apis/discovery.k8s.io/v1/namespaces/${CEIL_NS}/endpointslices/${name}${kind === "apply" ? "?fieldManager=ceiling&force=true" : ""}`,
      contentType: kind === "merge" ? "application/merge-patch+json" : "application/apply-patch+yaml",
      body: JSON.stringify(body),
    };
  }
  const name = `c-${k % CEIL_INSTANCES}`;
  const status = { healthy: k % 2 === 0, observedGeneration: k };
  const body =
    kind === "merge"
      ? { status }
      : {
          apiVersion: "roster.dev/v1alpha1",
          kind: "ServiceInstance",
          metadata: { name, namespace: CEIL_NS },
          status,
        };
  return {
    path: `/apis/roster.dev/v1alpha1/namespaces/${CEIL_NS}/serviceinstances/${name}/status${kind === "apply" ? "?fieldManager=ceiling&force=true" : ""}`,
    contentType: kind === "merge" ? "application/merge-patch+json" : "application/apply-patch+yaml",
    body: JSON.stringify(body),
  };
}

async function setUpCeiling(kc: KubeConfig, targets: Targets): Promise<void> {
  await createNamespace(kc, CEIL_NS);
  const tls = await tlsOf(kc);
  const server = kc.getCurrentCluster()!.server;
  const post = (path: string, body: object) =>
    new Promise<void>((done, fail) => {
      const url = new URL(path, server);
      const req = httpsRequest(
        {
          ...tls,
          method: "POST",
          hostname: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: { ...tls.headers, "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c;
          });
          res.on("end", () => ((res.statusCode ?? 0) < 300 ? done() : fail(new Error(`${path}: ${text}`))));
        },
      );
      req.on("error", fail);
      req.end(JSON.stringify(body));
    });
  await pool(
    Array.from({ length: CEIL_INSTANCES }, (_, i) => i),
    16,
    (i) => {
      const b = instanceBody(i, {
        service: () => "ceil",
        targets,
        interval: "10s",
        timeout: "1s",
        failureThreshold: 1,
      });
      (b as { metadata: { name: string } }).metadata.name = `c-${i}`;
      return post(`/apis/roster.dev/v1alpha1/namespaces/${CEIL_NS}/serviceinstances`, b);
    },
  );
  await pool(
    Array.from({ length: CEIL_SLICES }, (_, i) => i),
    16,
    (i) =>
      post(`/apis/discovery.k8s.io/v1/namespaces/${CEIL_NS}/endpointslices`, {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: `ceil-${i}` },
        addressType: "IPv4",
        endpoints: [],
      }),
  );
}

interface Point {
  protocol: Protocol;
  inflight: number;
  kind: Kind;
}
const label = (p: Point) =>
  `${p.protocol === "h2" ? "HTTP/2, 1 connection" : `HTTP/1.1, ${p.inflight} connections`}, ${p.inflight} in flight${p.kind === "apply" ? ", server-side apply" : ""}`;

/** Writes per second (2xx answers) at one point, over `pointMs`. */
async function measurePoint(kc: KubeConfig, p: Point): Promise<{ rate: number; errors: number }> {
  const tls = await tlsOf(kc);
  const server = kc.getCurrentCluster()!.server;
  const sender = p.protocol === "h2" ? h2Sender(server, tls) : h1Sender(server, tls, p.inflight);
  // Warm-up: the connections are open and TLS done before the clock runs.
  await Promise.all(Array.from({ length: p.inflight }, () => sender.send(ceilingWrite(p.kind))));
  let ok = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + pointMs;
  await Promise.all(
    Array.from({ length: p.inflight }, async () => {
      while (performance.now() < end) {
        const status = await sender.send(ceilingWrite(p.kind)).catch(() => 0);
        if (status >= 200 && status < 300) ok++;
        else errors++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  sender.close();
  return { rate: ok / seconds, errors };
}

// --- Roster ----------------------------------------------------------------------------

const svc = (s: number) => `svc-${String(s).padStart(4, "0")}`;
const serviceOf = (i: number) => Math.floor((i * S) / N);
const perService = (s: number) => Math.floor(((s + 1) * N) / S) - Math.floor((s * N) / S);

interface Sample {
  at: number;
  writes: number;
  /** Writes waiting for a gate slot. */
  queued: number;
  /** Keys waiting in the work queues (work not yet turned into writes). */
  depth: number;
}

/**
 * Writes/s while the operator had more work than it was doing: over the
 * sampling intervals that began with writes waiting at the gate or keys in
 * the work queues. Demand below capacity (a trickle of verdicts) is not
 * throughput, so the intervals without a backlog do not count.
 */
function backloggedRate(samples: Sample[]): { rate: number; seconds: number } {
  let writes = 0;
  let ms = 0;
  for (let k = 1; k < samples.length; k++) {
    const a = samples[k - 1]!;
    if (a.queued + a.depth === 0) continue;
    writes += samples[k]!.writes - a.writes;
    ms += samples[k]!.at - a.at;
  }
  return { rate: ms > 0 ? (writes * 1000) / ms : Number.NaN, seconds: ms / 1000 };
}

async function main(): Promise<void> {
  console.log(
    `storm bench: ${N} instances, ${S} services, interval ${args.interval}, inflight ${args.inflight}`,
  );
  const loadAverage: Record<string, number> = { start: load1() };
  const cluster = await startCluster();
  const kc = cluster.kc;
  const targets = await startTargets(16, "127.0.6");
  try {
    // --- phase 1: the ceiling ---
    await setUpCeiling(kc, targets);
    const points: Point[] = [];
    for (const protocol of ["h2", "h1"] as const)
      for (const inflight of [1, 4, 16, 32, 64]) points.push({ protocol, inflight, kind: "merge" });
    const rates = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? points : [...points].reverse();
      for (const p of order) {
        const m = await measurePoint(kc, p);
        rates.set(label(p), [...(rates.get(label(p)) ?? []), m.rate]);
        console.log(
          `  ceiling ${label(p)}: ${m.rate.toFixed(0)} writes/s${m.errors ? ` (${m.errors} errors)` : ""}`,
        );
      }
    }
    const median = (xs: number[]) => percentile(sorted(xs), 50);
    const sweep = points.map((p) => ({
      ...p,
      label: label(p),
      rates: rates.get(label(p))!,
      median: median(rates.get(label(p))!),
    }));
    const best = sweep.reduce((a, b) => (b.median > a.median ? b : a));
    const bestH2 = sweep.filter((p) => p.protocol === "h2").reduce((a, b) => (b.median > a.median ? b : a));
    const bestH1 = sweep.filter((p) => p.protocol === "h1").reduce((a, b) => (b.median > a.median ? b : a));
    const applyBest = { ...best, kind: "apply" as const };
    const applyRates: number[] = [];
    for (let r = 0; r < rounds; r++) applyRates.push((await measurePoint(kc, applyBest)).rate);
    console.log(
      `  ceiling: ${best.median.toFixed(0)} writes/s (${best.label}); HTTP/2 best ${bestH2.median.toFixed(0)}, HTTP/1.1 best ${bestH1.median.toFixed(0)}; server-side apply at the best point ${median(applyRates).toFixed(0)}`,
    );
    loadAverage.ceiling = load1();

    // --- phases 2 and 3: Roster ---
    const ns = "storm";
    await createNamespace(kc, ns);
    const c0 = Date.now();
    const server = kc.getCurrentCluster()!.server;
    const tls = await tlsOf(kc);
    await pool(
      Array.from({ length: N }, (_, i) => i),
      32,
      async (i) => {
        const body = instanceBody(i, {
          service: (j) => svc(serviceOf(j)),
          targets,
          interval: args.interval,
          timeout: "1s",
          failureThreshold: 1,
          zone: `zone-${i % 3}`,
        });
        const url = new URL(`/apis/roster.dev/v1alpha1/namespaces/${ns}/serviceinstances`, server);
        await new Promise<void>((done, fail) => {
          const req = httpsRequest(
            {
              ...tls,
              method: "POST",
              hostname: url.hostname,
              port: url.port,
              path: url.pathname,
              headers: { ...tls.headers, "content-type": "application/json" },
            },
            (res) => {
              res.on("data", () => undefined);
              res.on("end", () =>
                (res.statusCode ?? 0) < 300 ? done() : fail(new Error(`create i-${i}: ${res.statusCode}`)),
              );
            },
          );
          req.on("error", fail);
          req.end(JSON.stringify(body));
        });
      },
    );
    console.log(`  created ${N} instances in ${((Date.now() - c0) / 1000).toFixed(1)} s`);

    // Status changes as the watcher sees them: name → when status.healthy last changed.
    const statusChanged = new Map<string, number>();
    const lastHealthy = new Map<string, boolean>();
    const w = await watch(kc, ns, {
      sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
      configMaps: true,
      instances: true,
      onEvent: (resource, _type, obj) => {
        if (resource !== "serviceinstances") return;
        const o = obj as { metadata: { name: string }; status?: { healthy?: boolean } };
        const h = o.status?.healthy;
        if (h === undefined || h === lastHealthy.get(o.metadata.name)) return;
        lastHealthy.set(o.metadata.name, h);
        statusChanged.set(o.metadata.name, Date.now());
      },
    });

    const results: Record<string, unknown>[] = [];
    const figures: Figure[] = [
      { name: "instances", value: N, unit: "" },
      { name: "services", value: S, unit: "" },
      { name: "ceiling (best point, merge-patch)", value: Math.round(best.median), unit: "writes/s" },
      { name: "ceiling, HTTP/2 best", value: Math.round(bestH2.median), unit: "writes/s" },
      { name: "ceiling, HTTP/1.1 best", value: Math.round(bestH1.median), unit: "writes/s" },
      {
        name: "ceiling, server-side apply at the best point",
        value: Math.round(median(applyRates)),
        unit: "writes/s",
      },
    ];
    for (const [vi, variant] of variants.entries()) {
      const limit = variant.name;
      // The ceiling next to this variant, at the best point (the operator stopped).
      const near = await measurePoint(kc, best);
      const nearApply = await measurePoint(kc, applyBest);
      const ceiling = near.rate;
      console.log(
        `\n maxInflightWrites ${variant.limit}, publisher workers ${variant.publisherWorkers ?? "default"}: ceiling now ${ceiling.toFixed(0)} writes/s (server-side apply ${nearApply.rate.toFixed(0)})`,
      );
      const op: OperatorGroup = await startOperators({ replicas: 1, sharding: false });
      const load: Record<string, number> = { start: load1() };
      try {
        const startedAt = await op.start({
          kubeconfig: cluster.sandbox.kubeconfigPath,
          namespaces: [ns],
          concurrency: Number(args.concurrency),
          maxInflightWrites: variant.limit,
          perController:
            variant.publisherWorkers === undefined
              ? undefined
              : { "service-publisher": variant.publisherWorkers },
        });
        let lastLog = 0;
        let probed = 0;
        const prober = (async () => {
          while (probed < N) {
            probed = (await op.ages()).length;
            await sleep(500);
          }
        })();
        await until("every status written and every set published", 1_800_000, () => {
          let slices = 0;
          for (let s = 0; s < S; s++) if (w.sliceReady.get(svc(s)) === perService(s)) slices++;
          let healthy = 0;
          for (const h of w.healthy.values()) if (h) healthy++;
          if (Date.now() - lastLog > 10_000) {
            lastLog = Date.now();
            console.log(`  statuses healthy ${healthy}/${N}, slice sets ${slices}/${S}`);
          }
          return slices === S && healthy === N;
        });
        // After a restart the sets are already complete: wait for this operator's first probe of every target.
        await until("every target probed", 600_000, () => probed === N);
        await prober;
        const startSeconds = (Date.now() - startedAt) / 1000;
        await settle(op, 1000, intervalMs);
        console.log(`  started, everything published in ${startSeconds.toFixed(1)} s`);

        const samples: Sample[] = [];
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            const st = (await op.stats()) as ChildStats[];
            const queued = Object.values(st[0]!.gateQueued ?? {}).reduce((a, b) => a + b, 0);
            samples.push({
              at: Date.now(),
              writes: writeRequests(st),
              queued,
              depth: st[0]!.queueDepth ?? 0,
            });
            await sleep(200);
          }
        })();

        // --- zone outage, then recovery ---
        const zone = Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === 0);
        const storms: Record<string, unknown>[] = [];
        for (const healthy of [false, true]) {
          load[healthy ? "recovery" : "outage"] = load1();
          const a0 = await apiserverRequests(kc);
          const firstSample = samples.length;
          const at = Date.now();
          for (const i of zone) {
            if (healthy) targets.failing.delete(i);
            else targets.failing.add(i);
          }
          const sliceSeen = healthy ? w.sliceEntered : w.sliceLeft;
          await until(`the zone's ${zone.length} endpoints and statuses`, 600_000, () =>
            zone.every(
              (i) => (sliceSeen.get(benchAddress(i)) ?? 0) > at && (statusChanged.get(`i-${i}`) ?? 0) > at,
            ),
          );
          await settle(op, 1000, intervalMs);
          const requests = diffCounts(await apiserverRequests(kc), a0);
          const since = await op.since(zone.map((i) => `${ns}/i-${i}`));
          const verdicts = sorted(since);
          const lastVerdict = verdicts.at(-1)!;
          const sliceTimes = zone.map((i) => sliceSeen.get(benchAddress(i))!);
          const statusTimes = zone.map((i) => statusChanged.get(`i-${i}`)!);
          const lastSlice = Math.max(...sliceTimes);
          const lastStatus = Math.max(...statusTimes);
          const sliceWrites = writesTo(requests, "endpointslices");
          const window = samples.slice(firstSample);
          const active = window.filter((s, k) => k > 0 && s.writes > window[k - 1]!.writes);
          const writes = window.at(-1)!.writes - window[0]!.writes;
          const busySeconds = active.length ? (active.at(-1)!.at - verdicts[0]!) / 1000 : Number.NaN;
          const backlog = backloggedRate(window);
          const sustained = backlog.rate;
          const bound = (1.25 * sliceWrites) / ceiling;
          const storm = {
            direction: healthy ? "recovery" : "outage",
            transitions: zone.length,
            verdictSpreadSeconds: (lastVerdict - verdicts[0]!) / 1000,
            lastVerdictToLastSliceSeconds: (lastSlice - lastVerdict) / 1000,
            boundSeconds: bound,
            lastVerdictToLastStatusSeconds: (lastStatus - lastVerdict) / 1000,
            statusesWrittenAtLastSlice: statusTimes.filter((t) => t <= lastSlice).length / zone.length,
            sliceBeforeStatus: zone.filter((_, k) => sliceTimes[k]! <= statusTimes[k]!).length / zone.length,
            sliceWrites,
            configMapWrites: writesTo(requests, "configmaps"),
            statusWrites: writesTo(requests, "serviceinstances/status"),
            eventWrites: writesTo(requests, "events"),
            operatorWrites: writes,
            meanWritesPerSecond: writes / busySeconds,
            sustainedWritesPerSecond: sustained,
            backlogSeconds: backlog.seconds,
            ratioToCeiling: sustained / ceiling,
            ratioToApplyCeiling: sustained / nearApply.rate,
            maxQueued: Math.max(...window.map((s) => s.queued)),
            apiserver: requests,
          };
          console.log(
            `  ${storm.direction}: ${zone.length} transitions, verdicts over ${storm.verdictSpreadSeconds.toFixed(1)} s; last verdict → last slice ${storm.lastVerdictToLastSliceSeconds.toFixed(2)} s (bound ${bound.toFixed(2)} s for ${sliceWrites} slice writes), → last status ${storm.lastVerdictToLastStatusSeconds.toFixed(2)} s; statuses written at the last slice ${(storm.statusesWrittenAtLastSlice * 100).toFixed(0)} %; slice before status ${(storm.sliceBeforeStatus * 100).toFixed(0)} %; sustained ${sustained.toFixed(0)} writes/s = ${storm.ratioToCeiling.toFixed(2)} × ceiling (${(sustained / nearApply.rate).toFixed(2)} × apply) over ${backlog.seconds.toFixed(1)} s of backlog (mean ${storm.meanWritesPerSecond.toFixed(0)}); gate queue max ${storm.maxQueued}`,
          );
          storms.push(storm);
        }

        // --- churn: single transitions ---
        load.churn = load1();
        const count = Math.max(1, Math.round(N * Number(args.churn)));
        const flipped = Array.from({ length: count }, (_, k) => Math.floor((k * N) / count) + 1);
        const latency: number[] = [];
        for (const healthy of [false, true]) {
          const at = Date.now();
          for (const i of flipped) {
            if (healthy) targets.failing.delete(i);
            else targets.failing.add(i);
          }
          const seen = healthy ? w.sliceEntered : w.sliceLeft;
          await until(`${count} churned endpoints`, 600_000, () =>
            flipped.every((i) => (seen.get(benchAddress(i)) ?? 0) > at),
          );
          const since = await op.since(flipped.map((i) => `${ns}/i-${i}`));
          for (const [k, i] of flipped.entries()) latency.push(seen.get(benchAddress(i))! - since[k]!);
          await settle(op, 1000, intervalMs);
        }
        sampling = false;
        await sampler;
        const churn = distribution(latency);
        console.log(
          `  churn ${count} × 2 transitions: slice latency p50 ${churn.p50} ms, p99 ${churn.p99} ms`,
        );
        load.end = load1();
        const [outage, recovery] = storms as {
          ratioToCeiling: number;
          lastVerdictToLastSliceSeconds: number;
          boundSeconds: number;
          statusesWrittenAtLastSlice: number;
        }[];
        figures.push(
          { name: `[${limit}] start to everything published`, value: startSeconds, unit: "s" },
          { name: `[${limit}] ceiling next to it`, value: Math.round(ceiling), unit: "writes/s" },
          {
            name: `[${limit}] ceiling next to it, server-side apply`,
            value: Math.round(nearApply.rate),
            unit: "writes/s",
          },
          {
            name: `[${limit}] outage: sustained writes ÷ ceiling`,
            value: outage!.ratioToCeiling,
            unit: "",
            target: ">= 0.8",
          },
          {
            name: `[${limit}] outage: last verdict → last slice`,
            value: outage!.lastVerdictToLastSliceSeconds,
            unit: "s",
            target: `<= ${outage!.boundSeconds.toFixed(2)}`,
          },
          {
            name: `[${limit}] outage: statuses written at the last slice`,
            value: outage!.statusesWrittenAtLastSlice,
            unit: "",
          },
          {
            name: `[${limit}] recovery: sustained writes ÷ ceiling`,
            value: recovery!.ratioToCeiling,
            unit: "",
            target: ">= 0.8",
          },
          {
            name: `[${limit}] recovery: last verdict → last slice`,
            value: recovery!.lastVerdictToLastSliceSeconds,
            unit: "s",
            target: `<= ${recovery!.boundSeconds.toFixed(2)}`,
          },
          { name: `[${limit}] churn: slice latency p50`, value: churn.p50, unit: "ms" },
          { name: `[${limit}] churn: slice latency p99`, value: churn.p99, unit: "ms", target: "< 100" },
        );
        results.push({
          maxInflightWrites: limit,
          order: vi,
          ceiling,
          startSeconds,
          storms,
          churn,
          loadAverage: load,
        });
      } finally {
        await op.stop();
      }
    }
    loadAverage.end = load1();
    figures.push({ name: "bench wall time", value: Math.round((Date.now() - t0Run) / 1000), unit: "s" });
    w.stop();
    report(`storm-${N >= 1000 ? `${N / 1000}k` : N}`, figures, {
      command: `node bench/storm.bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
      ceiling: { sweep, best: best.label, applyAtBest: applyRates, pointSeconds: pointMs / 1000, rounds },
      variants: results,
      loadAverage,
    });
  } finally {
    await targets.close();
    await cluster.stop(true);
  }
}

await main();
