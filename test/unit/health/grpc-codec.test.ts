import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from "../../../src/health/grpc-probe.ts";

test("encodes grpc.health.v1 messages as protobuf", () => {
  assert.deepEqual(encodeRequest({ service: "" }), Buffer.alloc(0));
  assert.deepEqual(encodeRequest({ service: "db" }), Buffer.from([0x0a, 0x02, 0x64, 0x62]));
  assert.deepEqual(encodeResponse({ status: 1 }), Buffer.from([0x08, 0x01]));
  assert.deepEqual(decodeResponse(Buffer.from([0x08, 0x02])), { status: 2 });
  assert.deepEqual(decodeResponse(Buffer.alloc(0)), { status: 0 });
});

test("skips unknown fields when decoding", () => {
  // field 2 (varint 7), field 3 (bytes "xy"), then status = 1
  const buf = Buffer.from([0x10, 0x07, 0x1a, 0x02, 0x78, 0x79, 0x08, 0x01]);
  assert.deepEqual(decodeResponse(buf), { status: 1 });
  assert.throws(() => decodeResponse(Buffer.from([0x0a, 0x05, 0x01])), /truncated/);
});

test("round-trips any service name", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (service) => {
      assert.equal(decodeRequest(encodeRequest({ service })).service, service);
    }),
  );
});
