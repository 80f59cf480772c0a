// The operator's own stalls never become verdicts. The operator runs in this
// process; the test blocks this thread (a busy loop, as 10,000 status writes
// or a long GC would) for 3 s, five times, while 40 healthy instances are
// probed every second with a 500 ms timeout and failureThreshold 1 (one false
// timeout would unpublish an instance). The targets answer after 150 ms, so
// several probes are in flight whenever a stall begins: their answers arrive
// in time, but the operator cannot read them until the stall ends, when the
// probes' deadline timers fire first.
//
// Asserted: a watch on the service's EndpointSlices, from before the first
// stall, never sees a ready set without all 40 addresses; no probe failed;
// the stalled timeouts were voided (counted by cause). Then one target really
// fails and is still unpublished: voiding does not blind the operator.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { startTestOperator } from "../support/operator.ts";
import { createInstance, readyAddresses } from "../support/roster.ts";
import { watchSlicesOn } from "../support/slices.ts";
import { metricSum } from "./support.ts";

const INSTANCES = 40;
const STALLS = 5;
const STALL_MS = 3000;

/** Blocks this thread, and so the in-process operator's event loop, for `ms`. */
function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spin
  }
}

test("stalls of the operator's thread never unpublish a healthy instance", async (t) => {
  const ns = await testNamespace(t, "stalls");
  const failing = new Set<string>();
  // One slow server for every instance: /N answers after 150 ms, 200 unless N is failing.
  const server = createServer((req, res) => {
    setTimeout(() => {
      res.statusCode = failing.has(req.url ?? "") ? 503 : 200;
      res.end();
    }, 150);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  const port = (server.address() as AddressInfo).port;
  const operator = await startTestOperator(t, { namespaces: [ns] });

  const address = (i: number) => `192.0.2.${i + 1}`;
  for (let i = 0; i < INSTANCES; i++) {
    await createInstance(ns, `i${i}`, {
      service: "web",
      address: address(i),
      ports: [{ name: "http", port }],
      healthCheck: {
        probes: [{ type: "http", http: { host: "127.0.0.1", port: "http", path: `/${i}` } }],
        interval: "1s",
        timeout: "500ms",
        failureThreshold: 1,
        successThreshold: 1,
        jitter: 0,
      },
    });
  }
  const all = Array.from({ length: INSTANCES }, (_, i) => address(i)).sort();
  await eventually(
    async () => ((await readyAddresses(ns, "web")).sort().join() === all.join() ? true : undefined),
    { what: `all ${INSTANCES} instances published as ready`, timeoutMs: 60_000 },
  );

  const { kc } = await testCluster();
  const history = await watchSlicesOn(kc, ns, "web");
  for (let i = 0; i < STALLS; i++) {
    await new Promise((r) => setTimeout(r, 700));
    busy(STALL_MS);
  }
  // Time for any verdict the stalls caused to be published and watched.
  await new Promise((r) => setTimeout(r, 3000));
  history.stop();

  assert.deepEqual(history.initial.sort(), all);
  for (const [n, ready] of history.events.map((e) => e.ready).entries()) {
    const missing = all.filter((a) => !ready.includes(a));
    assert.deepEqual(missing, [], `slice version ${n + 1} of ${history.events.length} lost ready addresses`);
  }
  assert.equal(await metricSum(operator, "roster_probe_failures_total"), 0, "no probe failed");
  const voided = await metricSum(operator, "roster_probe_voided_total", { cause: "stall" });
  t.diagnostic(`probes voided because the operator's thread was blocked: ${voided}`);
  assert.ok(voided > 0, "the stalls hit probes in flight, and their timeouts were voided");

  // A real failure is still seen.
  failing.add("/0");
  await eventually(async () => (!(await readyAddresses(ns, "web")).includes(address(0)) ? true : undefined), {
    what: "the failing instance unpublished",
    timeoutMs: 30_000,
  });
});
