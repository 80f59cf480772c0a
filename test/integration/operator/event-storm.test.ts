// A storm in one service: 200 instances turn unhealthy together. Their
// similar Events are combined like client-go's correlator does (9 Events of
// their own, then one about the Service whose series counts the rest), so the
// API server gets a bounded number of Event objects whose counts add up to
// 200, while the transition metric and every status count all 200.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { EventsV1Event } from "@kubernetes/client-node";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { clients, createInstances, createPolicy, listInstances } from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const N = 200;

async function eventsOf(ns: string, reason: string): Promise<EventsV1Event[]> {
  const { events } = await clients();
  return (await events.listNamespacedEvent({ namespace: ns })).items.filter((e) => e.reason === reason);
}

async function transitions(
  registry: { getSingleMetric(name: string): unknown },
  to: string,
): Promise<number> {
  const metric = registry.getSingleMetric("roster_verdict_transitions_total") as {
    get(): Promise<{ values: { labels: Record<string, string | number>; value: number }[] }>;
  };
  return (await metric.get()).values.find((v) => v.labels.to === to)?.value ?? 0;
}

test("200 transitions in one service cost a bounded number of Events whose counts add up", async (t) => {
  const ns = await testNamespace(t, "ev-storm");
  const [shared] = await httpTargets(t, 1);
  await createPolicy(ns, "storm", {
    service: "storm",
    healthCheck: {
      probes: [{ type: "http", http: { host: shared!.host, port: "http", path: "/healthz" } }],
      ...FAST,
    },
  });
  await createInstances(
    ns,
    Array.from({ length: N }, (_, k) => ({
      name: `storm-${k + 1}`,
      spec: {
        service: "storm",
        address: `192.0.2.${k + 1}`,
        ports: [{ name: "http", port: shared!.port }],
      },
    })),
  );
  const operator = await startTestOperator(t, { namespaces: [ns] });
  await eventually(
    async () => ((await listInstances(ns)).every((i) => i.status?.healthy === true) ? true : undefined),
    { timeoutMs: 90_000, intervalMs: 500, what: "every instance recorded healthy" },
  );

  shared!.healthy = false;
  await eventually(
    async () => ((await listInstances(ns)).every((i) => i.status?.healthy === false) ? true : undefined),
    { timeoutMs: 90_000, intervalMs: 500, what: "every instance recorded unhealthy" },
  );
  // Series counts are written in batches (every 30 s); flush them now.
  await operator.manager.events.flush();

  assert.equal(await transitions(operator.manager.metrics.registry, "Unhealthy"), N, "the metric counts all");
  for (const reason of ["BecameHealthy", "BecameUnhealthy"]) {
    const events = await eventsOf(ns, reason);
    const counted = events.reduce((sum, e) => sum + (e.series?.count ?? 1), 0);
    t.diagnostic(`${reason}: ${events.length} Event objects counting ${counted} transitions`);
    assert.ok(events.length <= 10, `${reason}: ${events.length} Event objects`);
    assert.equal(counted, N, `${reason}: the counts add up`);
    const combined = events.filter((e) => e.note?.startsWith("(combined from similar events)"));
    assert.equal(combined.length, 1, `${reason}: one combined Event`);
    assert.equal(combined[0]!.regarding?.kind, "Service");
    assert.equal(combined[0]!.regarding?.name, "storm");
  }
});
