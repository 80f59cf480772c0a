/**
 * MurmurHash3 (x86, 32-bit) over the UTF-8 bytes of a JS string, and its
 * finalizer: the hashes consistent hashing (src/balance) and sharding
 * (src/operator/shards.ts) share.
 *
 * Why this hash: consistent hashing must map the same key to the same endpoint
 * in every process and every language, so the hash is a published, portable
 * algorithm over UTF-8 bytes (not over UTF-16 code units), seeded explicitly.
 * The bytes are produced while hashing, so hashing a key allocates nothing.
 * Lone surrogates are encoded as U+FFFD, exactly as TextEncoder does.
 */

/** murmur3's 32-bit finalizer: spreads every input bit over the whole word. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3_x86_32(utf8(s), seed) as an unsigned 32-bit integer. */
export function murmur3(s: string, seed = 0): number {
  let h = seed | 0;
  let k = 0; // bytes of the block being filled, little-endian
  let shift = 0; // bits already in k
  let len = 0; // bytes hashed
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      k |= c << shift;
      shift += 8;
      len++;
      if (shift === 32) {
        h = mixBlock(h, k);
        k = 0;
        shift = 0;
      }
      continue;
    }
    // Multi-byte sequence: pack its bytes (2 to 4) into `bytes`, first byte lowest.
    let bytes: number;
    let count: number;
    if (c < 0x800) {
      bytes = 0xc0 | (c >> 6) | ((0x80 | (c & 0x3f)) << 8);
      count = 2;
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          i++;
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          bytes =
            0xf0 |
            (cp >> 18) |
            ((0x80 | ((cp >> 12) & 0x3f)) << 8) |
            ((0x80 | ((cp >> 6) & 0x3f)) << 16) |
            ((0x80 | (cp & 0x3f)) << 24);
          count = 4;
        } else {
          c = 0xfffd;
          bytes = 0xe0 | (c >> 12) | ((0x80 | ((c >> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
          count = 3;
        }
      } else {
        bytes = 0xe0 | (c >> 12) | ((0x80 | ((c >> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
        count = 3;
      }
    }
    for (let j = 0; j < count; j++) {
      k |= ((bytes >>> (j * 8)) & 0xff) << shift;
      shift += 8;
      len++;
      if (shift === 32) {
        h = mixBlock(h, k);
        k = 0;
        shift = 0;
      }
    }
  }
  if (shift > 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= len;
  return fmix32(h);
}

/** murmur3_x86_32 over raw bytes; the reference the string version is tested against. */
export function murmur3Bytes(data: Uint8Array, seed = 0): number {
  let h = seed | 0;
  const blocks = data.length >>> 2;
  for (let b = 0; b < blocks; b++) {
    const o = b * 4;
    const k = data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24);
    h = mixBlock(h, k);
  }
  const tail = blocks * 4;
  const rest = data.length & 3;
  if (rest > 0) {
    let k = 0;
    for (let j = rest - 1; j >= 0; j--) k = (k << 8) | data[tail + j]!;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= data.length;
  return fmix32(h);
}
