import assert from "node:assert/strict";
import { test } from "node:test";
import { SHUTDOWN_TIMEOUT_MS, stopWithin } from "../../../src/cli/run.ts";

test("stopWithin: a stop that finishes is 'stopped', even when it fails", async () => {
  assert.equal(await stopWithin(async () => {}, 1000), "stopped");
  assert.equal(await stopWithin(() => Promise.reject(new Error("boom")), 1000), "stopped");
});

test("stopWithin: a stop that hangs is cut off after the timeout", async () => {
  assert.equal(await stopWithin(() => new Promise<void>(() => {}), 50), "timeout");
});

test("stopWithin: a second signal interrupts the wait", async () => {
  const interrupt = Promise.resolve("SIGINT");
  assert.equal(await stopWithin(() => new Promise<void>(() => {}), 60_000, interrupt), "SIGINT");
});

test("the overall bound leaves room for the controllers' 30 s graceful stop", () => {
  assert.ok(SHUTDOWN_TIMEOUT_MS > 30_000);
});
