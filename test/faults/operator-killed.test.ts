// `roster run` as a real process, SIGKILLed while it is writing (new
// instances are being published and one target is failing), then started
// again, twice. A test-side watch on the EndpointSlices sees every write:
// the healthy endpoints published before the kill are never removed, the
// set never goes empty, and the instances that stayed healthy never flap
// (no BecameUnhealthy Event, Healthy condition unchanged since before).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { RosterProcess } from "../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import {
  createInstance,
  createPolicy,
  eventCounts,
  getInstance,
  readyAddresses,
  watchSlices,
} from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";
import { configFile, sleep, startReplica } from "./support.ts";

test("SIGKILL mid-write and restart: healthy endpoints stay published, no flapping", async (t) => {
  const { kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "killed");
  const config = configFile(t, [
    "logLevel: info",
    "probing: { destinations: { allowLoopback: true } }",
    "publishing: { batchWindow: 10ms, startupHold: 10s }",
  ]);
  const start = async (): Promise<RosterProcess> => {
    const p = startReplica(t, {
      config,
      namespace: ns,
      kubeconfig: kubeconfigPath,
      args: ["--no-leader-elect"],
    });
    await p.waitForOutput(/"msg":"roster started"/, 30_000);
    return p;
  };
  const kill = async (p: RosterProcess) => {
    p.proc.kill("SIGKILL");
    const r = await p.exited;
    assert.equal(r.signal, "SIGKILL");
  };

  const targets = await httpTargets(t, 12);
  await createPolicy(ns, "web", { service: "web" });
  for (const i of [0, 1, 2, 3, 4, 5]) await createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));
  let operator = await start();
  const first = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"];
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === first.join() ? true : undefined),
    {
      timeoutMs: 20_000,
      what: "six ready endpoints",
    },
  );
  const transitions = new Map<string, string | undefined>();
  for (const i of [1, 2, 3, 4, 5]) {
    transitions.set(
      `web-${i}`,
      (await getInstance(ns, `web-${i}`)).status?.conditions?.find((c) => c.type === "Healthy")
        ?.lastTransitionTime,
    );
  }
  const watch = await watchSlices(ns, "web");

  // Round 1: kill as soon as the first of six new instances has its status written, while
  // the other statuses, the slice and the ConfigMap are being written.
  await Promise.all(
    [6, 7, 8, 9, 10, 11].map((i) => createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i))),
  );
  await eventually(
    async () => {
      const statuses = await Promise.all(
        [7, 8, 9, 10, 11, 12].map(async (i) => (await getInstance(ns, `web-${i}`)).status?.healthy),
      );
      return statuses.some((h) => h === true) ? statuses : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 10, what: "the first new status written" },
  ).then((statuses) => t.diagnostic(`killed with new statuses ${statuses.join()}`));
  await kill(operator);
  operator = await start();
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 12 ? true : undefined), {
    timeoutMs: 20_000,
    what: "twelve ready endpoints after the first restart",
  });

  // Round 2: kill while a failure is being written (status, slices, ConfigMap, Event).
  targets[5]!.healthy = false;
  await eventually(
    async () => ((await getInstance(ns, "web-6")).status?.healthy === false ? true : undefined),
    { timeoutMs: 10_000, intervalMs: 20, what: "web-6 unhealthy (status write started)" },
  );
  await kill(operator);
  operator = await start();
  await eventually(
    async () => {
      const ready = await readyAddresses(ns, "web");
      return ready.length === 11 && !ready.includes("192.0.2.6") ? true : undefined;
    },
    { timeoutMs: 20_000, what: "eleven ready endpoints after the second restart" },
  );
  await sleep(3000); // a few more probe rounds under the new process
  watch.stop();

  const kept = first.filter((a) => a !== "192.0.2.6");
  assert.deepEqual(watch.initial, first);
  assert.ok(watch.events.length > 0, "the watch saw the writes");
  for (const e of watch.events) {
    assert.ok(e.ready.length > 0, `set never empty (${e.type} ${e.name} rv ${e.resourceVersion})`);
    for (const a of kept)
      assert.ok(e.ready.includes(a), `${a} never unpublished (${e.type} ${e.name}: ${e.ready})`);
  }
  for (const [name, before] of transitions) {
    const si = await getInstance(ns, name);
    assert.equal(si.status?.healthy, true, `${name} healthy`);
    assert.equal(
      si.status?.conditions?.find((c) => c.type === "Healthy")?.lastTransitionTime,
      before,
      `${name}'s Healthy condition never flipped`,
    );
    const events = await eventCounts(ns, name);
    assert.equal(
      events.BecameUnhealthy ?? 0,
      0,
      `${name}: no BecameUnhealthy Event (${JSON.stringify(events)})`,
    );
  }
  t.diagnostic(`slice events watched: ${watch.events.length}`);
});
