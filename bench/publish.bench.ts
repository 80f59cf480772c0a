/**
 * Publication planning cost: the pure functions the reconciler calls on every
 * batch of verdict changes for one service.
 * - planEndpointSlices on 10,000 endpoints (100 slices) with 1% churn
 *   (50 condition flips, 25 removals, 25 additions);
 * - computeDesired for 10,000 instances;
 * - planConfigMap (validate + serialize + revision) for 2,000 endpoints
 *   (10,000 would not fit in a ConfigMap).
 *
 * The churn is spread over the key space (worst case for slice writes: each
 * change lands in a different slice), as a random set of health flips is.
 *
 * Run: node bench/publish.bench.ts
 */
import type { V1OwnerReference } from "@kubernetes/client-node";
import {
  applySlicePlan,
  buildPublishedContent,
  computeDesired,
  type DesiredSliceEndpoints,
  type InstanceInput,
  planConfigMap,
  planEndpointSlices,
  type SlicePlan,
} from "../src/publish/index.ts";
import { percentile, report, rssMiB } from "./report.ts";

const N = 10_000;
const CHURN = N / 100;
const ROUNDS = 200;
const OWNER: V1OwnerReference = {
  apiVersion: "v1",
  kind: "Service",
  name: "web",
  uid: "u",
  controller: true,
};
const OPTS = { namespace: "bench", service: "web", owner: OWNER };

function ip(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function instances(n: number, offset = 0): InstanceInput[] {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    return {
      name: `web-${i}`,
      addresses: [ip(i + 1)],
      ports: [{ name: "http", port: 8080 }],
      weight: 100,
      zone: `zone-${i % 3}`,
      verdict: "Healthy",
      tags: ["canary"],
      metadata: { version: "1.2.3" },
    };
  });
}

/** 1% churn: half flip health, a quarter leave, a quarter arrive. */
function churned(base: InstanceInput[], round: number): InstanceInput[] {
  const out = [...base];
  const step = Math.floor(N / CHURN);
  for (let c = 0; c < CHURN / 2; c++) {
    const i = (c * step + round) % N;
    out[i] = { ...out[i]!, verdict: "Unhealthy" };
  }
  const leave = new Set<number>();
  for (let c = 0; c < CHURN / 4; c++) leave.add((c * step + round + step / 2) % N);
  return [...out.filter((_, i) => !leave.has(i)), ...instances(CHURN / 4, N + round * CHURN)];
}

function slicesOf(list: InstanceInput[]): DesiredSliceEndpoints {
  return computeDesired("bench", "web", list, { panicThreshold: 0, trafficDistribution: "PreferSameZone" })
    .slices;
}

function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const value = fn();
  return [value, performance.now() - t0];
}

const base = instances(N);
const existing = applySlicePlan([], planEndpointSlices(slicesOf(base), [], OPTS));

// Warm up the JIT on the same shapes.
for (let r = 0; r < 20; r++) planEndpointSlices(slicesOf(churned(base, r)), existing, OPTS);

const planMs: number[] = [];
const desiredMs: number[] = [];
let written = 0;
let lastPlan: SlicePlan | undefined;
for (let r = 0; r < ROUNDS; r++) {
  const list = churned(base, r);
  const [desired, dms] = time(() => slicesOf(list));
  const [plan, pms] = time(() => planEndpointSlices(desired, existing, OPTS));
  desiredMs.push(dms);
  planMs.push(pms);
  written += plan.create.length + plan.update.length + plan.delete.length;
  lastPlan = plan;
}
planMs.sort((a, b) => a - b);
desiredMs.sort((a, b) => a - b);

// One instance flips: exactly one slice should be written.
const oneFlip = [...base];
oneFlip[4242] = { ...oneFlip[4242]!, verdict: "Unhealthy" };
const single = planEndpointSlices(slicesOf(oneFlip), existing, OPTS);
const singleWrites = single.create.length + single.update.length + single.delete.length;

const cmInstances = instances(2000);
const cmContent = buildPublishedContent(
  computeDesired("bench", "web", cmInstances, { panicThreshold: 0, trafficDistribution: "PreferSameZone" }),
  { strategy: "WeightedRoundRobin", zoneAware: true },
);
const first = planConfigMap({ namespace: "bench", name: "web-roster", content: cmContent, owner: OWNER });
const cmMs: number[] = [];
for (let r = 0; r < 50; r++) {
  const [, ms] = time(() =>
    planConfigMap({ namespace: "bench", name: "web-roster", content: cmContent, previous: first.configMap }),
  );
  cmMs.push(ms);
}
cmMs.sort((a, b) => a - b);

report(
  "publish",
  [
    {
      name: "slice plan p50 (10k endpoints, 1% churn)",
      value: percentile(planMs, 50),
      unit: "ms",
      target: "< 20",
    },
    { name: "slice plan p99 (10k endpoints, 1% churn)", value: percentile(planMs, 99), unit: "ms" },
    { name: "slices written per plan, 1% spread churn (of 100)", value: written / ROUNDS, unit: "slices" },
    { name: "slices written when one endpoint changes", value: singleWrites, unit: "slices", target: "1" },
    { name: "computeDesired p50 (10k instances)", value: percentile(desiredMs, 50), unit: "ms" },
    { name: "planConfigMap p50 (2k endpoints)", value: percentile(cmMs, 50), unit: "ms" },
    { name: "ConfigMap document size (2k endpoints)", value: first.bytes / 1024, unit: "KiB" },
    { name: "process RSS at end (harness peak, incl. garbage)", value: rssMiB(), unit: "MiB" },
  ],
  { endpoints: N, churn: CHURN, rounds: ROUNDS, existingSlices: existing.length, lastStats: lastPlan?.stats },
);
