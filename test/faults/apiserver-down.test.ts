// The API server goes away for ~30 s (SIGKILL of the private sandbox, then a
// restart on the same data dir and port) while one target fails. The
// operator keeps running and probing; after recovery, statuses and the
// published set converge to reality, and no endpoint of an instance that
// stayed healthy is ever unpublished (the slice history from before the
// outage to the end is replayed from etcd, so no write is missed).
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import { sliceSnapshot, watchSlicesOn } from "../support/slices.ts";
import { httpTargets } from "../support/targets.ts";
import { api, privateCluster, sleep, startOperatorOn } from "./support.ts";

const OUTAGE_MS = 30_000;
/**
 * Watch reconnect backoff (informer default: 800 ms doubling to a 30 s cap, so
 * up to 30 s after a long outage) + relist + one probe interval + writes.
 */
const CONVERGE_MS = 40_000;

test("API server down for 30 s: operator keeps probing, converges after, unpublishes nothing healthy", async (t) => {
  const cluster = await privateCluster(t);
  const k = api(cluster.kc);
  const ns = "down";
  await k.createNamespace(ns);
  const targets = await httpTargets(t, 4);
  const operator = await startOperatorOn(t, cluster.kc, { namespaces: [ns] });
  await k.createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of targets.entries())
    await k.createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  const all = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
  await eventually(
    async () => ((await k.readyAddresses(ns, "web")).join() === all.join() ? true : undefined),
    {
      timeoutMs: 20_000,
      what: "four ready endpoints",
    },
  );
  const before = await sliceSnapshot(cluster.kc, ns, "web");

  await cluster.crash();
  const downAt = Date.now();
  const probesAtCrash = operator.engine.stats().probes;
  targets[3]!.healthy = false;
  await sleep(OUTAGE_MS);
  const probesDuring = operator.engine.stats().probes - probesAtCrash;
  // 4 targets at 1 s: ~120 probes in 30 s; allow for scheduling slack.
  assert.ok(probesDuring >= 100, `probes continued during the outage (${probesDuring})`);
  t.diagnostic(`probes during outage: ${probesDuring}`);

  await cluster.restart();
  const upAt = Date.now();
  t.diagnostic(`API server down for ${upAt - downAt} ms`);
  // Every slice write since the snapshot before the outage, replayed from etcd.
  const history = await watchSlicesOn(cluster.kc, ns, "web", before);

  const healthy = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
  await eventually(
    async () => {
      const ready = await k.readyAddresses(ns, "web");
      if (ready.join() !== healthy.join()) return undefined;
      const states = await Promise.all(
        [1, 2, 3, 4].map(async (i) => (await k.getInstance(ns, `web-${i}`)).status?.healthy),
      );
      return states.join() === "true,true,true,false" ? true : undefined;
    },
    { timeoutMs: CONVERGE_MS, intervalMs: 200, what: "statuses and slices to match reality" },
  );
  t.diagnostic(`converged ${Date.now() - upAt} ms after the API server was back`);
  const web4Status = await k.getInstance(ns, "web-4");
  const cond = web4Status.status?.conditions?.find((c) => c.type === "Healthy");
  assert.equal(cond?.status, "False");
  assert.match(cond?.reason ?? "", /HTTPStatus/i);

  await sleep(1500); // let any late write land in the history
  history.stop();
  assert.deepEqual(history.initial, all);
  for (const [i, ready] of history.events.map((e) => e.ready).entries()) {
    for (const a of healthy)
      assert.ok(ready.includes(a), `slice event ${i}: ${a} unpublished (${ready.join()})`);
  }
  t.diagnostic(`slice events after recovery: ${history.events.length}`);
});
