import assert from "node:assert/strict";
import { test } from "node:test";
import { deepEqual } from "../../../src/util/equal.ts";

test("deepEqual is JSON equality: key order ignored, undefined-valued keys absent", () => {
  assert.ok(deepEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }));
  assert.ok(deepEqual({ a: [1, { b: "c" }], d: undefined }, { a: [1, { b: "c" }] }));
  assert.ok(deepEqual(undefined, undefined));
  assert.ok(!deepEqual({ a: [1, 2] }, { a: [2, 1] }));
  assert.ok(!deepEqual({ a: 1 }, { a: 1, b: 2 }));
  assert.ok(!deepEqual({ a: 1 }, { a: "1" }));
  assert.ok(!deepEqual([], {}));
  assert.ok(!deepEqual({ a: null }, { a: {} }));
  assert.ok(!deepEqual(undefined, {}));
});
