/**
 * Golden conformance vectors: what a Roster client in another language must
 * compute bit for bit the same way as src/balance so that every process maps
 * a consistent-hash key to the same endpoint and spreads weighted picks the
 * same way. Committed as schemas/balance-vectors.v1.json (`npm run
 * gen:schemas`); test/unit/balance/vectors.test.ts checks the TypeScript
 * balancers against the committed file.
 *
 * Endpoint ids are what the client hashes: `<instance>/<address>` of a
 * published endpoint, sorted by UTF-16 code units (equal to byte order for
 * ASCII names), weight-0 endpoints left out. Keys are hashed as
 * murmur3_x86_32(utf8(key), seed 0). Slow-start vectors pin the ramp a
 * client weighs an endpoint by (slowStartWeight, src/api/published.ts).
 */

import { slowStartFactor, slowStartWeight } from "../api/published.ts";
import { murmur3, murmur3Bytes } from "../util/hash.ts";
import { createMaglev, createRingHash, maglevTableSize, ringPointCounts } from "./consistent-hash.ts";
import { createSmoothWeightedRoundRobin } from "./weighted-round-robin.ts";

export const VECTORS_FILE = "balance-vectors.v1.json";

export interface MurmurVector {
  input: string;
  /** The UTF-8 bytes hashed, hex. */
  utf8: string;
  seed: number;
  hash: number;
}

export interface LookupVector {
  key: string;
  /** murmur3(key, 0). */
  hash: number;
  /** The endpoint id the key maps to. */
  endpoint: string;
}

export interface RingVector {
  name: string;
  ids: string[];
  weights: number[];
  vnodes: number;
  minRingSize: number;
  maxRingSize: number;
  /** Points per endpoint (ringPointCounts). */
  counts: number[];
  /** The whole ring when small: [hash, index into ids], sorted by hash then index. Point v of endpoint i hashes murmur3(utf8(id), seed v). */
  points?: [number, number][];
  lookups: LookupVector[];
}

export interface MaglevVector {
  name: string;
  ids: string[];
  weights: number[];
  requestedTableSize: number;
  tableSize: number;
  /** offset = murmur3(id, 0xa5a5a5a5) mod M, skip = murmur3(id, 0x5a5a5a5a) mod (M-1) + 1. */
  permutations: { offset: number; skip: number }[];
  /** The whole table when small: slot -> index into ids. */
  table?: number[];
  lookups: LookupVector[];
}

export interface WrrVector {
  name: string;
  weights: number[];
  period: number;
  /** Two periods of picks (indexes into weights). */
  sequence: number[];
}

/**
 * One slow-start weight (slowStartWeight in src/api/published.ts): the
 * factor is max(minWeightPercent / 100, (max(elapsed s, 1) / window s)^(1 /
 * aggression)), 1 once the window is over; the weight is weight × factor
 * rounded half up (Math.round), at least 1 for a weight above 0. Factors
 * agree to 1e-12 across languages (pow may differ in the last bit); no
 * vector sits within 1e-6 of a rounding boundary.
 */
export interface SlowStartVector {
  name: string;
  weight: number;
  windowMs: number;
  aggression: number;
  minWeightPercent: number;
  /** The endpoint's published slowStartSince. */
  slowStartSince: string;
  /** The reader's clock, ms since the epoch. */
  nowMs: number;
  factor: number;
  result: number;
}

export interface ConformanceVectors {
  description: string;
  murmur3: MurmurVector[];
  ring: RingVector[];
  maglev: MaglevVector[];
  smoothWeightedRoundRobin: WrrVector[];
  slowStart: SlowStartVector[];
}

const SLOW_START_SINCE = "2030-01-01T00:00:00Z";
/** [name, weight, window ms, aggression, min weight percent, elapsed ms]. */
const SLOW_START_CASES: [string, number, number, number, number, number][] = [
  ["linear/start", 100, 60_000, 1, 10, 0],
  ["linear/under-1s-counts-as-1s", 100, 10_000, 1, 0, 400],
  ["linear/floor", 100, 60_000, 1, 10, 3_000],
  ["linear/quarter", 100, 60_000, 1, 10, 15_000],
  ["linear/half", 100, 60_000, 1, 10, 30_000],
  ["linear/fractional-elapsed", 250, 60_000, 1, 10, 44_321],
  ["linear/end", 100, 60_000, 1, 10, 60_000],
  ["linear/after", 100, 60_000, 1, 10, 3_600_000],
  ["clock-behind-writer", 100, 60_000, 1, 10, -5_000],
  ["aggressive-2/quarter", 100, 60_000, 2, 10, 15_000],
  ["aggressive-4/tenth", 1000, 100_000, 4, 10, 10_000],
  ["gentle-0.5/half", 100, 60_000, 0.5, 10, 30_000],
  ["gentle-0.5/floor", 100, 60_000, 0.5, 10, 9_000],
  ["no-floor/small-weight-stays-1", 3, 60_000, 1, 0, 1_000],
  ["floor-100", 100, 60_000, 1, 100, 1_000],
  ["weight-0", 0, 60_000, 1, 10, 30_000],
  ["max-weight", 10000, 86_400_000, 1.5, 12.5, 3_600_000],
];

function slowStartVector([
  name,
  weight,
  windowMs,
  aggression,
  minWeightPercent,
  elapsed,
]: (typeof SLOW_START_CASES)[number]): SlowStartVector {
  const slowStart = { windowMs, aggression, minWeightPercent };
  const nowMs = Date.parse(SLOW_START_SINCE) + elapsed;
  return {
    name,
    weight,
    windowMs,
    aggression,
    minWeightPercent,
    slowStartSince: SLOW_START_SINCE,
    nowMs,
    factor: slowStartFactor(elapsed, slowStart),
    result: slowStartWeight({ weight, slowStartSince: SLOW_START_SINCE }, slowStart, nowMs),
  };
}

const SEEDS = [0, 1, 42, 0xa5a5a5a5, 0x5a5a5a5a];
const MURMUR_INPUTS = [
  "",
  "a",
  "ab",
  "abc",
  "abcd",
  "abcde",
  "hello, world",
  "user-42",
  "api-0/127.0.0.1",
  "héllo",
  "日本語",
  "emoji 😀",
  "The quick brown fox jumps over the lazy dog",
];
const KEYS = ["", "user-1", "user-2", "user-3", "session:abc", "tenant/acme", "é", "42", "x".repeat(40)];

/** Sample endpoint sets: small enough to print whole tables, plus a weighted and a larger one. */
const SETS: { name: string; ids: string[]; weights: number[] }[] = [
  { name: "one", ids: ["a-0/127.0.0.1"], weights: [100] },
  {
    name: "three-equal",
    ids: ["api-0/198.18.0.10", "api-1/198.18.0.11", "api-2/198.18.0.12"],
    weights: [100, 100, 100],
  },
  {
    name: "three-weighted",
    ids: ["api-0/198.18.0.10", "api-1/198.18.0.11", "api-2/198.18.0.12"],
    weights: [100, 300, 50],
  },
  {
    name: "ipv6-and-unicode",
    ids: ["db-primary/fd00::1", "db-replica/fd00::2", "dé-3/2001:db8::3"],
    weights: [200, 100, 100],
  },
  {
    name: "twenty",
    ids: Array.from({ length: 20 }, (_, i) => `web-${String(i).padStart(2, "0")}/198.18.1.${i + 1}`),
    weights: Array.from({ length: 20 }, (_, i) => 50 + 25 * (i % 5)),
  },
];

const noRng = (): number => {
  throw new Error("vectors never use randomness");
};

const hex = (s: string): string => Buffer.from(s, "utf8").toString("hex");

function ringVector(
  set: (typeof SETS)[number],
  name: string,
  options: { vnodes: number; minRingSize: number; maxRingSize: number },
): RingVector {
  const counts = ringPointCounts(set.weights, options);
  const ring = createRingHash(set.ids, set.weights, noRng, options);
  let points: [number, number][] | undefined;
  if (ring.size <= 64) {
    points = [];
    const enc = new TextEncoder();
    for (const [i, id] of set.ids.entries()) {
      for (let v = 0; v < counts[i]!; v++) points.push([murmur3Bytes(enc.encode(id), v), i]);
    }
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  }
  return {
    name,
    ids: set.ids,
    weights: set.weights,
    ...options,
    counts: [...counts],
    ...(points ? { points } : {}),
    lookups: KEYS.map((key) => ({ key, hash: murmur3(key, 0), endpoint: set.ids[ring.pick(key)]! })),
  };
}

function maglevVector(set: (typeof SETS)[number], name: string, requested: number): MaglevVector {
  const m = maglevTableSize(set.ids.length, requested);
  const maglev = createMaglev(set.ids, set.weights, noRng, { tableSize: requested });
  return {
    name,
    ids: set.ids,
    weights: set.weights,
    requestedTableSize: requested,
    tableSize: m,
    permutations: set.ids.map((id) => ({
      offset: murmur3(id, 0xa5a5a5a5) % m,
      skip: (murmur3(id, 0x5a5a5a5a) % (m - 1)) + 1,
    })),
    ...(m <= 257 ? { table: [...maglev.table] } : {}),
    lookups: KEYS.map((key) => ({ key, hash: murmur3(key, 0), endpoint: set.ids[maglev.pick(key)]! })),
  };
}

export function buildConformanceVectors(): ConformanceVectors {
  const small = SETS.filter((s) => s.ids.length <= 3);
  return {
    description:
      "Roster conformance vectors, generated from src/balance by `npm run gen:schemas`. " +
      "See src/balance/vectors.ts and src/balance/consistent-hash.ts for the algorithms.",
    murmur3: MURMUR_INPUTS.flatMap((input) =>
      SEEDS.map((seed) => ({ input, utf8: hex(input), seed, hash: murmur3(input, seed) })),
    ),
    ring: [
      ...small.map((s) =>
        ringVector(s, `${s.name}/vnodes-4`, { vnodes: 4, minRingSize: 0, maxRingSize: 262144 }),
      ),
      ...SETS.map((s) =>
        ringVector(s, `${s.name}/default`, { vnodes: 100, minRingSize: 0, maxRingSize: 262144 }),
      ),
      ringVector(SETS[2]!, "three-weighted/min-1024", {
        vnodes: 100,
        minRingSize: 1024,
        maxRingSize: 262144,
      }),
      ringVector(SETS[4]!, "twenty/max-64", { vnodes: 100, minRingSize: 0, maxRingSize: 64 }),
    ],
    maglev: [
      ...small.map((s) => maglevVector(s, `${s.name}/31`, 31)),
      maglevVector(SETS[4]!, "twenty/13-grows", 13),
      ...SETS.map((s) => maglevVector(s, `${s.name}/65537`, 65537)),
    ],
    smoothWeightedRoundRobin: [
      { name: "equal", weights: [1, 1, 1] },
      { name: "5-1-1", weights: [5, 1, 1] },
      { name: "gcd", weights: [100, 300, 50] },
      { name: "ties", weights: [2, 3, 3, 2] },
      { name: "one", weights: [7] },
    ].map(({ name, weights }) => {
      const wrr = createSmoothWeightedRoundRobin(weights);
      return {
        name,
        weights,
        period: wrr.period,
        sequence: Array.from({ length: 2 * wrr.period }, () => wrr.pick()),
      };
    }),
    slowStart: SLOW_START_CASES.map(slowStartVector),
  };
}

/** The committed file's exact text: one vector per line keeps diffs readable. */
export function renderConformanceVectors(v: ConformanceVectors = buildConformanceVectors()): string {
  const section = (items: readonly unknown[]): string =>
    `[\n${items.map((i) => `    ${JSON.stringify(i)}`).join(",\n")}\n  ]`;
  return (
    `{\n  "description": ${JSON.stringify(v.description)},\n` +
    `  "murmur3": ${section(v.murmur3)},\n` +
    `  "ring": ${section(v.ring)},\n` +
    `  "maglev": ${section(v.maglev)},\n` +
    `  "smoothWeightedRoundRobin": ${section(v.smoothWeightedRoundRobin)},\n` +
    `  "slowStart": ${section(v.slowStart)}\n}\n`
  );
}
