// Watch expiry: the operator is cut off from the API server (a TCP fault
// proxy refuses and resets its connections) while instances are created,
// deleted, drained and fail, and etcd compacts past the operator's
// resourceVersions (no watch cache, compaction every second). When it is
// reconnected its watches get 410 Gone, it relists, and it converges: no
// change made during the window is lost.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import { faultProxy, serverAddress, viaProxy } from "../support/kube-faults.ts";
import { httpTargets } from "../support/targets.ts";
import { api, metricSum, privateCluster, sleep, startOperatorOn } from "./support.ts";

test("changes made while the operator's watches expire are not lost", async (t) => {
  const cluster = await privateCluster(t, {
    apiserverArgs: ["--watch-cache=false", "--etcd-compaction-interval=1s"],
  });
  const k = api(cluster.kc);
  const ns = "expiry";
  await k.createNamespace(ns);
  const targets = await httpTargets(t, 6);
  const proxy = await faultProxy(serverAddress(cluster.kc));
  t.after(() => proxy.close());
  const operator = await startOperatorOn(t, viaProxy(cluster.kc, proxy), { namespaces: [ns] });
  await k.createPolicy(ns, "web", { service: "web" });
  for (const i of [0, 1, 2, 3]) await k.createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));
  await eventually(
    async () =>
      (await k.readyAddresses(ns, "web")).join() === "192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4"
        ? true
        : undefined,
    { timeoutMs: 20_000, what: "four ready endpoints" },
  );
  const expiredBefore = await metricSum(operator, "roster_watch_restarts_total", { reason: "expired" });
  const relistsBefore = await metricSum(operator, "roster_watch_relists_total", { reason: "expired" });

  // Off the network: every change below happens while the operator watches nothing.
  proxy.refuse(true);
  proxy.cutAll();
  await k.deleteInstance(ns, "web-1");
  await k.patchInstanceSpec(ns, "web-2", { drain: true });
  for (const i of [4, 5]) await k.createInstance(ns, `web-${i + 1}`, webInstance(targets[i]!, i));
  // A probe failure the engine sees during the window (its status write must wait).
  targets[2]!.healthy = false;
  await sleep(4000); // several compactions
  proxy.refuse(false);
  const backAt = Date.now();

  const want = ["192.0.2.4", "192.0.2.5", "192.0.2.6"];
  await eventually(
    async () => {
      const slices = await k.slicesOf(ns, "web");
      const eps = slices.flatMap((s) => s.endpoints ?? []);
      const ready = eps
        .filter((e) => e.conditions?.ready)
        .flatMap((e) => e.addresses)
        .sort();
      const draining = eps.filter((e) => e.conditions?.terminating).flatMap((e) => e.addresses);
      const all = eps.flatMap((e) => e.addresses);
      if (ready.join() !== want.join() || draining.join() !== "192.0.2.2" || all.includes("192.0.2.1"))
        return undefined;
      const web3 = await k.getInstance(ns, "web-3");
      const web5 = await k.getInstance(ns, "web-5");
      return web3.status?.healthy === false && web5.status?.healthy === true ? true : undefined;
    },
    {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "published set and statuses to reflect the window's changes",
    },
  );
  t.diagnostic(`converged ${Date.now() - backAt} ms after reconnection`);
  const expired =
    (await metricSum(operator, "roster_watch_restarts_total", { reason: "expired" })) - expiredBefore;
  const relists =
    (await metricSum(operator, "roster_watch_relists_total", { reason: "expired" })) - relistsBefore;
  t.diagnostic(`watch restarts (expired): ${expired}, relists (expired): ${relists}`);
  assert.ok(expired >= 1 && relists >= 1, `watches expired and relisted (${expired}, ${relists})`);
});
