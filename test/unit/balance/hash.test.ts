import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { murmur3, murmur3Bytes } from "../../../src/util/hash.ts";

test("murmur3 matches the published MurmurHash3_x86_32 test vectors", () => {
  assert.equal(murmur3("", 0), 0);
  assert.equal(murmur3("", 1), 0x514e28b7);
  assert.equal(murmur3("hello", 0), 0x248bfa47);
  assert.equal(murmur3("test", 0), 0xba6bd213);
  assert.equal(murmur3("Hello, world!", 1234), 0xfaf6cdb3);
  assert.equal(murmur3("The quick brown fox jumps over the lazy dog", 0), 0x2e4ff723);
});

test("murmur3 of a string equals murmur3 of its UTF-8 bytes (TextEncoder), lone surrogates included", () => {
  const enc = new TextEncoder();
  const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
  const str = fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: anyCodeUnit }), fc.string());
  fc.assert(
    fc.property(str, fc.integer(), (s, seed) => {
      assert.equal(murmur3(s, seed), murmur3Bytes(enc.encode(s), seed));
    }),
    { numRuns: 2000 },
  );
});
