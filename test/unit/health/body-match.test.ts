// Body matchers: the same verdict however the body is framed, for work linear in the bytes read.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type BodyMatcher, bodyMatcher } from "../../../src/health/body-match.ts";

/** Feeds `body` in pieces of `size` bytes (the last one shorter), then ends it. */
function feed(m: BodyMatcher, body: Buffer, size: number): boolean {
  for (let i = 0; i < body.length && !m.matched; i += size) m.push(body.subarray(i, i + size));
  return m.end();
}

const framings = [1, 2, 3, 7, 64, 4096, 1 << 20];

test("substring: found at every position and across every framing, or not at all", () => {
  for (const needle of ["a", "ready", "abab", "aab", "xyzxyzxyq"]) {
    for (const body of [
      "ready",
      "status: ready\n",
      "rea dy",
      "aaab",
      "abaabab",
      "xyzxyzxyzxyq",
      "xyzxyzxyzxyz",
      "",
      "ababababababababababababab",
    ]) {
      for (const size of framings) {
        const m = bodyMatcher({ bodyMatch: needle }, 4096)!;
        assert.equal(
          feed(m, Buffer.from(body), size),
          body.includes(needle),
          `${needle} in ${body} by ${size}`,
        );
      }
    }
  }
});

test("substring: only the first `limit` bytes count", () => {
  for (const size of framings) {
    const body = Buffer.from(`${"x".repeat(100)}ready`);
    assert.equal(feed(bodyMatcher({ bodyMatch: "ready" }, 105)!, body, size), true);
    assert.equal(feed(bodyMatcher({ bodyMatch: "ready" }, 104)!, body, size), false, `by ${size}`);
  }
});

test("regex: found across every framing, within the window", () => {
  for (const size of framings) {
    const body = Buffer.from(`${"x".repeat(1000)}status=ok;${"y".repeat(1000)}`);
    assert.equal(feed(bodyMatcher({ bodyRegex: "status=(ok|up);" }, 4096)!, body, size), true);
    assert.equal(feed(bodyMatcher({ bodyRegex: "status=down" }, 4096)!, body, size), false);
    assert.equal(feed(bodyMatcher({ bodyRegex: "status=ok" }, 1005)!, body, size), false, `by ${size}`);
    assert.equal(feed(bodyMatcher({ bodyRegex: "^x+$" }, 1000)!, body, size), true, `by ${size}`);
  }
  assert.equal(bodyMatcher({ bodyRegex: "^$" }, 10)!.end(), true, "an empty body");
});

// The stall of issue 13: 64 KiB of one-byte chunks used to cost ~64 KiB × 32 KiB of copying and
// searching. The work (bytes examined) is now a small multiple of the bytes read, whatever the framing.
test("work is linear in the bytes read, whatever the framing", () => {
  const limit = 65536;
  const body = Buffer.alloc(limit, "a");
  for (const spec of [
    { bodyMatch: `${"a".repeat(255)}b` },
    { bodyMatch: "b" },
    { bodyRegex: "b" },
    { bodyRegex: "(a+)+b" },
  ]) {
    for (const size of framings) {
      const m = bodyMatcher(spec, limit)!;
      assert.equal(feed(m, body, size), false);
      assert.equal(m.bytes, limit);
      assert.ok(
        m.work <= 3 * limit,
        `${JSON.stringify(spec).slice(0, 40)} by ${size}: ${m.work} bytes examined`,
      );
    }
  }
  // A match as the body comes: no more than what was read, and nothing after it.
  const m = bodyMatcher({ bodyMatch: "ready" }, limit)!;
  for (const b of Buffer.from("....ready....")) m.push(Buffer.of(b));
  assert.equal(m.matched, true);
  assert.equal(m.bytes, 9, "matched on the byte that completes the needle");
});

test("a regex is searched as soon as bytes come, then at each doubling, and at the end", () => {
  const m = bodyMatcher({ bodyRegex: "^ok" }, 4096)!;
  assert.equal(m.push(Buffer.from("ok")), true, "a short body that matches is decided at once");
  const n = bodyMatcher({ bodyRegex: "done" }, 4096)!;
  n.push(Buffer.from("x"));
  for (const b of Buffer.from("...done")) n.push(Buffer.of(b));
  assert.equal(n.matched, true, "found at the doubling after it arrived (8 bytes)");
});
