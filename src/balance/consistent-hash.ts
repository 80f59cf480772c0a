/**
 * Consistent hashing: a caller's key (a user id, a session) maps to the same
 * endpoint while the set stays the same, and when one of N endpoints leaves
 * only about 1/N of the keys move.
 *
 * Both tables are functions of the set alone: endpoints are hashed by `id`
 * with MurmurHash3 (seeded, over UTF-8), and everything is laid out in `id`
 * order, so every process — whatever order it learned the endpoints in —
 * builds the same table and maps every key the same way. Keys are hashed with
 * murmur3(key, seed 0).
 *
 * - Ring hash: each endpoint owns `round(vnodes * weight / 100)` points
 *   (at least 1) at murmur3(id, seed = point number); a key belongs to the
 *   first point at or after its hash, wrapping around. Points of the same hash
 *   are ordered by id. Because an endpoint's point count depends only on its
 *   own weight, removing an endpoint moves exactly the keys it owned. Two
 *   bounds make counts depend on the whole set, and then a change moves up to
 *   about twice as many keys: a set too small to reach `minRingSize` points
 *   is scaled up to it (Envoy's minimum_ring_size), and one beyond
 *   `maxRingSize` is scaled down. Lookup: a bucket index on the top bits of
 *   the hash, then a short search.
 * - Maglev (Eisenbud et al., NSDI 2016; weighted as Envoy does it): each
 *   endpoint walks its own permutation of the table slots (offset =
 *   murmur3(id, 0xa5a5a5a5) mod M, skip = murmur3(id, 0x5a5a5a5a) mod (M-1) + 1)
 *   and claims free slots in turns; in turn `t` an endpoint claims a slot only
 *   if t * weight >= its claims so far * max weight. Lookup is one table read.
 *   Slightly more keys than 1/N move on a change, in exchange for an even
 *   spread and O(1) lookup.
 */
import { murmur3, murmur3Bytes } from "../util/hash.ts";
import type { Rng } from "./types.ts";

export interface ConsistentHash {
  /** Ring points, or Maglev table slots. */
  readonly size: number;
  /** The position (in the input order) of the endpoint owning this key. */
  pick(key: string): number;
  /** Same, for a precomputed 32-bit key hash. */
  pickHash(hash: number): number;
  /** A weighted random position, for callers that have no key. */
  pickRandom(): number;
}

export interface RingHashOptions {
  /** Points of an endpoint of weight 100; default 100. */
  vnodes?: number;
  /** Sets with fewer points in total are scaled up to this many; default 0 (no floor). */
  minRingSize?: number;
  /** Sets with more points in total are scaled down to this many; default 262144. */
  maxRingSize?: number;
}

const DEFAULT_VNODES = 100;
const DEFAULT_MAX_RING = 262144;

/**
 * How many ring points each endpoint owns (see the module comment): the part
 * of the ring that other languages must reproduce exactly, so it is exported
 * and pinned by the conformance vectors.
 */
export function ringPointCounts(weights: ArrayLike<number>, options: RingHashOptions = {}): Int32Array {
  const n = weights.length;
  const vnodes = options.vnodes ?? DEFAULT_VNODES;
  const maxRing = options.maxRingSize ?? DEFAULT_MAX_RING;
  if (!(vnodes >= 1)) throw new RangeError("vnodes must be >= 1");
  const counts = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    counts[i] = Math.max(1, Math.round((vnodes * weights[i]!) / 100));
    total += counts[i]!;
  }
  const minRing = Math.min(options.minRingSize ?? 0, maxRing);
  if (total < minRing) {
    let weightSum = 0;
    for (let i = 0; i < n; i++) weightSum += weights[i]!;
    total = 0;
    for (let i = 0; i < n; i++) {
      counts[i] = Math.max(1, Math.round((minRing * weights[i]!) / weightSum));
      total += counts[i]!;
    }
  }
  if (total > maxRing) {
    const scale = maxRing / total;
    for (let i = 0; i < n; i++) counts[i] = Math.max(1, Math.floor(counts[i]! * scale));
  }
  return counts;
}

/**
 * `ids` must be unique and sorted (code-unit order), the balancer does that;
 * weights are positive integers.
 */
export function createRingHash(
  ids: readonly string[],
  weights: ArrayLike<number>,
  rng: Rng,
  options: RingHashOptions = {},
): ConsistentHash {
  const n = ids.length;
  if (n === 0) throw new RangeError("createRingHash: empty set");
  const counts = ringPointCounts(weights, options);
  let total = 0;
  for (let i = 0; i < n; i++) total += counts[i]!;
  // Sort (hash, owner) pairs as one float64: hash * 2^21 + owner is exact below
  // 2^53, and owners are in id order, so equal hashes are ordered by id.
  if (n >= 2 ** 21) throw new RangeError("createRingHash: too many endpoints");
  const keys = new Float64Array(total);
  let p = 0;
  const utf8 = new TextEncoder();
  for (let i = 0; i < n; i++) {
    const id = utf8.encode(ids[i]!); // once per endpoint, not once per point
    for (let v = 0; v < counts[i]!; v++) keys[p++] = murmur3Bytes(id, v) * 2097152 + i;
  }
  keys.sort();
  const hashes = new Uint32Array(total);
  const owners = new Int32Array(total);
  for (let j = 0; j < total; j++) {
    const k = keys[j]!;
    const owner = k % 2097152;
    owners[j] = owner;
    hashes[j] = (k - owner) / 2097152;
  }
  // bucket[b] = first point whose hash >>> shift >= b.
  const bits = Math.max(4, Math.min(16, Math.ceil(Math.log2(total))));
  const shift = 32 - bits;
  const buckets = new Int32Array((1 << bits) + 1);
  {
    let j = 0;
    for (let b = 0; b <= 1 << bits; b++) {
      while (j < total && hashes[j]! >>> shift < b) j++;
      buckets[b] = j;
    }
  }
  const pickHash = (h: number): number => {
    const b = h >>> shift;
    let lo = buckets[b]!;
    const hi = buckets[b + 1]!;
    while (lo < hi && hashes[lo]! < h) lo++;
    return owners[lo === total ? 0 : lo]!;
  };
  return {
    size: total,
    pick: (key) => pickHash(murmur3(key, 0)),
    pickHash,
    pickRandom: () => pickHash((rng() * 4294967296) >>> 0),
  };
}

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

export function nextPrime(n: number): number {
  let p = Math.max(2, Math.ceil(n));
  while (!isPrime(p)) p++;
  return p;
}

/**
 * The table size actually used: the requested prime, or, when the set is too
 * large for it to stay even (fewer than 10 slots per endpoint), the next prime
 * at or above 10 slots per endpoint.
 */
export function maglevTableSize(endpoints: number, requested = DEFAULT_MAGLEV_TABLE_SIZE): number {
  if (!isPrime(requested)) throw new RangeError(`maglev table size must be prime, got ${requested}`);
  return requested >= endpoints * 10 ? requested : nextPrime(endpoints * 10);
}

export function createMaglev(
  ids: readonly string[],
  weights: ArrayLike<number>,
  rng: Rng,
  options: { tableSize?: number } = {},
): ConsistentHash & { readonly table: Int32Array } {
  const n = ids.length;
  if (n === 0) throw new RangeError("createMaglev: empty set");
  const m = maglevTableSize(n, options.tableSize);
  const pos = new Float64Array(n); // current slot of each endpoint's permutation
  const skip = new Float64Array(n);
  const claims = new Float64Array(n);
  let maxW = 0;
  for (let i = 0; i < n; i++) {
    const id = ids[i]!;
    pos[i] = murmur3(id, 0xa5a5a5a5) % m;
    skip[i] = (murmur3(id, 0x5a5a5a5a) % (m - 1)) + 1;
    if (weights[i]! > maxW) maxW = weights[i]!;
  }
  const table = new Int32Array(m).fill(-1);
  let filled = 0;
  for (let turn = 1; filled < m; turn++) {
    for (let i = 0; i < n && filled < m; i++) {
      // Weighted turns: an endpoint of the largest weight claims every turn,
      // one of a third of it every third turn.
      if (turn * weights[i]! < claims[i]! * maxW) continue;
      claims[i] = claims[i]! + 1;
      let c = pos[i]!;
      while (table[c] !== -1) c = (c + skip[i]!) % m;
      table[c] = i;
      pos[i] = (c + skip[i]!) % m;
      filled++;
    }
  }
  const pickHash = (h: number): number => table[h % m]!;
  return {
    size: m,
    table,
    pick: (key) => table[murmur3(key, 0) % m]!,
    pickHash,
    pickRandom: () => table[Math.floor(rng() * m)]!,
  };
}
