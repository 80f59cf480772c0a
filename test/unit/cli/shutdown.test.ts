import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { load } from "js-yaml";
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

// The shutdown bound against the chart's setting (two files that must agree); the
// bound against CONTROLLER_STOP_MS was two constants compared: the reason stands in
// the comment on SHUTDOWN_TIMEOUT_MS in run.ts, not as a test.
test("the overall shutdown bound ends before the chart's SIGKILL", () => {
  const values = load(
    readFileSync(new URL("../../../charts/roster/values.yaml", import.meta.url), "utf8"),
  ) as {
    terminationGracePeriodSeconds: number;
  };
  assert.ok(
    SHUTDOWN_TIMEOUT_MS <= values.terminationGracePeriodSeconds * 1000 - 5000,
    `${SHUTDOWN_TIMEOUT_MS} ms must end well within the pod's ${values.terminationGracePeriodSeconds} s grace period`,
  );
});
