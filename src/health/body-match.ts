/**
 * Body checks of HTTP probes, incremental and linear in the bytes read.
 *
 * A server we do not control chooses the framing: 50,000 one-byte chunks
 * must cost what one 50,000-byte chunk costs. Searching the whole prefix at
 * every chunk is quadratic and, being synchronous, cannot be interrupted by
 * the probe's timeout; so:
 * - a substring is found with a KMP automaton over the bytes as they come
 *   (nothing buffered; a chunk at least as long as the needle is searched
 *   natively, only its edges go through the automaton): every byte is looked
 *   at a bounded number of times, and a match is found on the byte that
 *   completes it;
 * - a regex needs the text, so the window (at most `limit` bytes) is kept and
 *   searched when the first bytes come, then each time the bytes kept have
 *   doubled since the last search, and when the body ends or the window is
 *   full: at most about three times the window is ever searched, however the
 *   body is framed (the linear engine runs in time linear in what it reads).
 * `work` counts bytes examined, so tests can check the bound.
 */
import { linearRegex } from "./regex.ts";

export interface BodyMatcher {
  /** Feeds body bytes (beyond the window they are ignored); true once matched. */
  push(bytes: Buffer): boolean;
  /** The body ended (or the window is full): last chance to match. */
  end(): boolean;
  readonly matched: boolean;
  /** Body bytes taken into the window so far. */
  readonly bytes: number;
  /** Bytes examined by searches so far (the linear bound: a few times `bytes`). */
  readonly work: number;
}

/** The first `limit` bytes of the body must contain `needle`. */
export function substringMatcher(needle: Buffer, limit: number): BodyMatcher {
  const m = needle.length;
  // KMP failure function: fail[i] = length of the longest proper border of needle[0..i].
  const fail = new Int32Array(m);
  for (let i = 1, k = 0; i < m; i++) {
    while (k > 0 && needle[i] !== needle[k]) k = fail[k - 1]!;
    if (needle[i] === needle[k]) k++;
    fail[i] = k;
  }
  let state = 0; // needle bytes matched at the end of what was read
  let matched = m === 0;
  let bytes = 0;
  let work = 0;

  /** Runs the automaton over bytes[from, to); true on a complete match. */
  const step = (b: Buffer, from: number, to: number): boolean => {
    work += to - from;
    let k = state;
    for (let i = from; i < to; i++) {
      const c = b[i];
      while (k > 0 && c !== needle[k]) k = fail[k - 1]!;
      if (c === needle[k]) k++;
      if (k === m) {
        state = k;
        return true;
      }
    }
    state = k;
    return false;
  };

  return {
    push(chunk) {
      if (matched || bytes >= limit) return matched;
      const b = chunk.length > limit - bytes ? chunk.subarray(0, limit - bytes) : chunk;
      bytes += b.length;
      if (b.length < m) {
        matched = step(b, 0, b.length);
        return matched;
      }
      // A match straddling the previous bytes ends within the first m-1 bytes; one inside the
      // chunk is found natively; then the automaton's state is that of the chunk's last m-1 bytes.
      work += b.length;
      matched = step(b, 0, m - 1) || b.indexOf(needle) >= 0;
      if (!matched) {
        state = 0;
        step(b, b.length - (m - 1), b.length);
      }
      return matched;
    },
    end() {
      return matched;
    },
    get matched() {
      return matched;
    },
    get bytes() {
      return bytes;
    },
    get work() {
      return work;
    },
  };
}

/** The first `limit` bytes of the body, as UTF-8, must match `re` (a linear-engine regex). */
export function regexMatcher(re: RegExp, limit: number): BodyMatcher {
  let window: Buffer | undefined;
  let bytes = 0;
  let searchedAt = 0; // window size at the last search
  let matched = false;
  let work = 0;

  const search = (): boolean => {
    if (matched || bytes === searchedAt) return matched;
    searchedAt = bytes;
    work += bytes;
    matched = re.test(window!.toString("utf8", 0, bytes));
    return matched;
  };

  return {
    push(chunk) {
      if (matched || bytes >= limit) return matched;
      window ??= Buffer.allocUnsafe(limit);
      bytes += chunk.copy(window, bytes, 0, Math.min(chunk.length, limit - bytes));
      if (bytes >= limit || bytes >= 2 * searchedAt) return search();
      return false;
    },
    end() {
      if (bytes === 0) matched = re.test("");
      return search();
    },
    get matched() {
      return matched;
    },
    get bytes() {
      return bytes;
    },
    get work() {
      return work;
    },
  };
}

/** The body check of a probe spec, or undefined when it has none; throws on a regex the engine cannot run. */
export function bodyMatcher(
  spec: { bodyMatch?: string | undefined; bodyRegex?: string | undefined },
  limit: number,
): BodyMatcher | undefined {
  if (spec.bodyMatch) return substringMatcher(Buffer.from(spec.bodyMatch), limit);
  if (spec.bodyRegex) return regexMatcher(linearRegex(spec.bodyRegex), limit);
  return undefined;
}
