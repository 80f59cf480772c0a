/**
 * Publication first under a storm, through the whole operator (issue 18):
 * 200 instances in 8 services fail together while the operator may have one
 * write in flight (`maxInflightWrites: 1`). Order is asserted, never time:
 * by the resourceVersions the API server assigned (etcd revisions, one
 * sequence across every resource).
 *
 * The storm is staged so that the order does not depend on how fast this
 * machine is: the test holds the gate's only slot (a `publication` write of
 * its own that sends nothing) while the target fails, and lets go once the
 * engine has all 200 verdicts and the gate has status writes and at least
 * one publication write waiting. From then on the gate decides alone:
 *
 * 1. The first write after the release is an EndpointSlice: a waiting
 *    publication write always gets the next free slot, and the held write
 *    sent nothing, so no status write of the storm reached the API server
 *    before it (strict).
 * 2. Every EndpointSlice reflecting the failures is written before most of
 *    the 200 status writes. After the release the publisher needs about
 *    three writes per service (a slice planned before all verdicts were in,
 *    the final slice, the ConfigMap): ~24. Each waits at most for the one
 *    write in flight, and a status write only gets the slot when no
 *    publication or ConfigMap write is waiting, i.e. while the publisher
 *    computes between two writes or waits for its watch to show the last
 *    one. The status writer's 200 writes all wait in the gate or its work
 *    queue meanwhile, so the publisher finishes after some tens of them, far
 *    from half. Without the priorities (FIFO) the slices would wait behind
 *    the 16 status writes already queued at every turn and finish after
 *    most of them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DiscoveryV1Api, type KubeConfig, Watch } from "@kubernetes/client-node";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { httpCheck } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstances, listInstances } from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const SERVICES = 8;
const N = 200;

interface Seen {
  metadata: { name: string; resourceVersion: string; labels?: Record<string, string> };
  status?: { healthy?: boolean };
  endpoints?: { conditions?: { ready?: boolean } }[];
}

/** Every event on `path` after `from`, in the order the API server sent them. */
async function record(kc: KubeConfig, path: string, from: string) {
  const events: Seen[] = [];
  let failed: unknown;
  const ctl = await new Watch(kc).watch(
    path,
    { resourceVersion: from },
    (type, obj: Seen) => {
      if (type === "ADDED" || type === "MODIFIED") events.push(obj);
      else if (type === "ERROR") failed = obj;
    },
    (err) => {
      if (err) failed ??= err;
    },
  );
  return {
    events,
    stop() {
      ctl.abort();
      assert.equal(failed, undefined, `watch of ${path} failed`);
    },
  };
}

test("a storm of 200 failures at one write in flight: slices first, then most statuses", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "wstorm");
  const [shared] = await httpTargets(t, 1);
  await createInstances(
    ns,
    Array.from({ length: N }, (_, k) => ({
      name: `i-${k}`,
      spec: {
        service: `s-${k % SERVICES}`,
        address: `192.0.2.${k + 1}`,
        ports: [{ name: "http", port: shared!.port }],
        healthCheck: httpCheck(shared!, { failureThreshold: 1 }),
      },
    })),
  );
  const operator = await startTestOperator(t, { namespaces: [ns], maxInflightWrites: 1 });
  await eventually(
    async () => ((await listInstances(ns)).every((i) => i.status?.healthy === true) ? true : undefined),
    { timeoutMs: 120_000, intervalMs: 500, what: "every instance recorded healthy" },
  );
  const sliceList = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`;
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const readyCount = async () => {
    const { items, metadata } = await discovery.listNamespacedEndpointSlice({
      namespace: ns,
      labelSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
    });
    return {
      items,
      resourceVersion: metadata?.resourceVersion ?? "",
      ready: items.reduce((n, s) => n + (s.endpoints ?? []).filter((e) => e.conditions?.ready).length, 0),
    };
  };
  await eventually(async () => ((await readyCount()).ready === N ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 500,
    what: "every endpoint published ready",
  });

  // Hold the only slot; from here no mutating request of the operator reaches the API server.
  const gate = operator.manager.writes;
  let release: (() => void) | undefined;
  const held = gate.run("publication", () => new Promise<void>((r) => (release = r)));
  // A trailing write (an Event) may still be in flight: the slot is ours once it is done.
  await eventually(() => (release ? true : undefined), { what: "the gate's slot held" });
  // Every write after this revision is the storm's.
  const { resourceVersion: from } = await readyCount();
  const instancesSeen = await record(kc, `/apis/roster.dev/v1alpha1/namespaces/${ns}/serviceinstances`, from);
  const slicesSeen = await record(kc, sliceList, from);

  shared!.healthy = false;
  await eventually(
    () => {
      const all = Array.from({ length: N }, (_, k) => operator.engine.summary(`${ns}/i-${k}`)?.verdict);
      const q = gate.stats().queued;
      return all.every((v) => v === "Unhealthy") && q.publication >= 1 && q.status >= 1 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50, what: "all 200 verdicts in, status and publication writes waiting" },
  );
  t.diagnostic(`at the release: ${JSON.stringify(gate.stats().queued)} waiting`);
  release?.();
  await held;

  await eventually(async () => ((await readyCount()).ready === 0 ? true : undefined), {
    timeoutMs: 120_000,
    intervalMs: 500,
    what: "every endpoint published not ready",
  });
  await eventually(
    async () => ((await listInstances(ns)).every((i) => i.status?.healthy === false) ? true : undefined),
    { timeoutMs: 120_000, intervalMs: 500, what: "every instance recorded unhealthy" },
  );
  const { items: after } = await readyCount();
  instancesSeen.stop();
  slicesSeen.stop();

  // The storm's status writes: the first write of healthy=false per instance.
  const statusRv = new Map<string, number>();
  for (const e of instancesSeen.events) {
    if (e.status?.healthy === false && !statusRv.has(e.metadata.name))
      statusRv.set(e.metadata.name, Number(e.metadata.resourceVersion));
  }
  assert.equal(statusRv.size, N, "every instance's status write seen");
  const statuses = [...statusRv.values()].sort((a, b) => a - b);
  const sliceRvs = slicesSeen.events.map((e) => Number(e.metadata.resourceVersion));
  assert.ok(sliceRvs.length > 0, "slice writes seen");

  // 1. The first write after the release is a slice.
  assert.ok(
    Math.min(...sliceRvs) < statuses[0]!,
    `first slice ${Math.min(...sliceRvs)}, first status ${statuses[0]}`,
  );

  // 2. The slices as they ended (every endpoint not ready) were written before most statuses.
  const lastSlice = Math.max(...after.map((s) => Number(s.metadata?.resourceVersion)));
  const statusesBefore = statuses.filter((rv) => rv < lastSlice).length;
  t.diagnostic(
    `${sliceRvs.length} slice writes; ${statusesBefore} of ${N} status writes before the last slice`,
  );
  assert.ok(statusesBefore < N / 2, `${statusesBefore} of ${N} status writes came before the last slice`);
});
