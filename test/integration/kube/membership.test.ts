/**
 * Lease-based membership against the real API server: members see each
 * other; leaving deletes the Lease at once; a member cut off from the API
 * server is declared dead by the others after one lease duration, while it
 * declares nobody dead itself (it cannot tell); its Lease is then removed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import { kubeClient } from "../../../src/kube/client.ts";
import { createInformer } from "../../../src/kube/informer.ts";
import type { Lease } from "../../../src/kube/leader.ts";
import { silentLogger } from "../../../src/kube/log.ts";
import { LABEL_MEMBER_OF, type Membership, membership } from "../../../src/kube/membership.ts";
import { resources } from "../../../src/kube/object.ts";
import { systemClock } from "../../../src/util/clock.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { faultProxy, serverAddress, viaProxy } from "../../support/kube-faults.ts";

const LEASE_MS = 2000;

function member(
  t: { after(fn: () => unknown): void },
  kc: KubeConfig,
  namespace: string,
  identity: string,
): { m: Membership; stop: () => Promise<void> } {
  const client = kubeClient(kc);
  const leases = createInformer<Lease>({
    client,
    type: resources.leases,
    namespace,
    labelSelector: `${LABEL_MEMBER_OF}=test`,
  });
  leases.start();
  const m = membership({
    client,
    leases,
    namespace,
    group: "test",
    identity,
    fieldManager: "roster",
    leaseDurationMs: LEASE_MS,
    clock: systemClock,
    logger: silentLogger(),
  });
  const abort = new AbortController();
  const run = m.run(abort.signal);
  const stop = async () => {
    abort.abort();
    await run;
    await leases.stop();
  };
  t.after(stop);
  return { m, stop };
}

const same = (m: Membership, want: string[]) => () =>
  m.members().join() === [...want].sort().join() ? true : undefined;

test("members join, leave at once, and a cut-off member is dropped after one lease duration", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "members");
  const proxy = await faultProxy(serverAddress(kc));
  t.after(() => proxy.close());
  const a = member(t, kc, ns, "replica-a");
  const b = member(t, kc, ns, "replica-b");
  const c = member(t, viaProxy(kc, proxy), ns, "replica-c");
  const all = ["replica-a", "replica-b", "replica-c"];
  for (const x of [a, b, c]) await eventually(same(x.m, all), { timeoutMs: 10_000, what: "three members" });

  // Leaving deletes the Lease: the others see it within a check, not a lease duration.
  const left = Date.now();
  await b.stop();
  await eventually(same(a.m, ["replica-a", "replica-c"]), {
    timeoutMs: LEASE_MS,
    intervalMs: 20,
    what: "b gone",
  });
  t.diagnostic(`a saw b leave after ${Date.now() - left} ms`);
  // c too, before it is cut off (its view then freezes).
  await eventually(same(c.m, ["replica-a", "replica-c"]), {
    timeoutMs: 5000,
    intervalMs: 20,
    what: "c sees b gone",
  });

  // c loses the API server: a drops it after about a lease duration; c keeps its view.
  proxy.refuse(true);
  proxy.cutAll();
  const cut = Date.now();
  await eventually(same(a.m, ["replica-a"]), {
    timeoutMs: 3 * LEASE_MS,
    intervalMs: 50,
    what: "c declared dead",
  });
  const after = Date.now() - cut;
  t.diagnostic(`a dropped c ${after} ms after it was cut off`);
  assert.ok(after >= LEASE_MS - 1000, `dropped after ${after} ms, before its lease could expire`);
  assert.deepEqual(c.m.members(), ["replica-a", "replica-c"], "a cut-off member declares nobody dead");

  // Its Lease is removed by the survivor once dead for another lease duration.
  await eventually(
    async () => {
      const list = await kubeClient(kc).request<{ items: Lease[] }>({
        method: "GET",
        path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
      });
      return list.items.every((l) => l.spec?.holderIdentity !== "replica-c") ? true : undefined;
    },
    { timeoutMs: 4 * LEASE_MS, what: "c's Lease removed" },
  );
});
