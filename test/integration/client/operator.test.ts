// The RosterClient following a service as the real operator (in-process,
// against the sandbox, probing real loopback targets) publishes it: an
// instance added, one failing (503), one drained, a weight change, and panic.
// After each change the client's endpoints() and pick() reflect it, its
// events say what changed, and it saw every published revision, in order
// (one watch event per ConfigMap write, nothing skipped).
import assert from "node:assert/strict";
import { test } from "node:test";
import { RosterClient } from "../../../src/client/client.ts";
import type { RosterEndpoint } from "../../../src/client/endpoint.ts";
import { NoHealthyEndpointsError } from "../../../src/client/errors.ts";
import type { HealthChangedEvent, UpdatedEvent } from "../../../src/client/registry.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { INTERVAL_MS, MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstance, createPolicy, patchInstanceSpec, publishedDocument } from "../../support/roster.ts";
import { httpTargets, setHealthy } from "../../support/targets.ts";

/** failureThreshold (2) × interval, plus watch round trips and status writes, plus the client's watch. */
const FAIL_MS = 2 * INTERVAL_MS + MARGIN_MS + 2000;

test("the client follows the operator's publications: add, fail, drain, weight, panic", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "client-op");
  const targets = await httpTargets(t, 3);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web-policy", {
    service: "web",
    loadBalancing: { strategy: "WeightedRoundRobin" },
    publish: { panicThreshold: 50 },
  });

  const client = new RosterClient(kc, { namespace: ns });
  t.after(() => client.close());
  const updates: UpdatedEvent[] = [];
  const health: HealthChangedEvent[] = [];
  const registered: string[] = [];
  client.on("updated", (e) => updates.push(e));
  client.on("healthChanged", (e) => health.push(e));
  client.on("registered", (e) => registered.push(e.endpoint.instance));
  await client.ready({ timeoutMs: 15_000 });

  const states = () =>
    Object.fromEntries(client.endpoints("web", { all: true }).map((e) => [e.instance, e.state]));
  const eligible = () => client.endpoints("web").map((e) => e.instance);
  const picks = (n: number) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const p = client.pick("web");
      counts[p.endpoint.instance] = (counts[p.endpoint.instance] ?? 0) + 1;
      p.release();
    }
    return counts;
  };

  /**
   * Waits until the client shows `expected` states, then checks that this is
   * what the operator published: the ConfigMap's revision is the client's,
   * and the last `updated` event announced that revision. Returns the events
   * since the step began.
   */
  async function step(what: string, expected: Record<string, string>, timeoutMs: number) {
    const from = updates.length;
    const fromHealth = health.length;
    await eventually(
      async () => {
        if (!client.synced) return undefined;
        let snap: ReturnType<typeof client.service>;
        try {
          snap = client.service("web");
        } catch {
          return undefined; // not published yet
        }
        if (JSON.stringify(states()) !== JSON.stringify(expected)) return undefined;
        const doc = await publishedDocument(ns, "web-roster");
        // The operator may already be writing the next revision; wait until both agree.
        return doc?.revision === snap.revision ? true : undefined;
      },
      { timeoutMs, what: `${what}: client shows ${JSON.stringify(expected)} (now ${safeStates()})` },
    );
    const revision = client.service("web").revision;
    assert.equal(updates.at(-1)?.revision, revision, `${what}: updated fired with revision ${revision}`);
    return { updates: updates.slice(from), health: health.slice(fromHealth), revision };
  }
  const safeStates = () => {
    try {
      return JSON.stringify(states());
    } catch (err) {
      return (err as Error).name;
    }
  };

  // Two instances: both published Ready.
  await createInstance(ns, "web-1", webInstance(targets[0]!, 0));
  await createInstance(ns, "web-2", webInstance(targets[1]!, 1));
  await step("start", { "web-1": "Ready", "web-2": "Ready" }, 15_000);
  assert.deepEqual(eligible(), ["web-1", "web-2"]);
  assert.deepEqual(registered.sort(), ["web-1", "web-2"]);
  assert.deepEqual(client.endpoints("web")[0]!.address, "192.0.2.1");

  // Add: registered, and in the rotation.
  await createInstance(ns, "web-3", webInstance(targets[2]!, 2));
  const add = await step("add", { "web-1": "Ready", "web-2": "Ready", "web-3": "Ready" }, 10_000);
  assert.ok(
    add.updates.some((u) => u.added.some((e) => e.instance === "web-3")),
    "an updated event added web-3",
  );
  assert.ok(registered.includes("web-3"));
  assert.deepEqual(Object.keys(picks(30)).sort(), ["web-1", "web-2", "web-3"]);

  // Fail: web-2's target answers 503; the client stops picking it.
  targets[1]!.healthy = false;
  const fail = await step("fail", { "web-1": "Ready", "web-2": "Unhealthy", "web-3": "Ready" }, FAIL_MS);
  assert.ok(
    fail.health.some(
      (e) =>
        e.endpoint.instance === "web-2" && e.previous.state === "Ready" && e.endpoint.state === "Unhealthy",
    ),
    "healthChanged web-2 Ready -> Unhealthy",
  );
  assert.deepEqual(eligible(), ["web-1", "web-3"]);
  assert.deepEqual(Object.keys(picks(30)).sort(), ["web-1", "web-3"]);

  // Drain web-1: published Draining, never picked.
  await patchInstanceSpec(ns, "web-1", { drain: true });
  const drain = await step("drain", { "web-1": "Draining", "web-2": "Unhealthy", "web-3": "Ready" }, 10_000);
  assert.ok(drain.health.some((e) => e.endpoint.instance === "web-1" && e.endpoint.state === "Draining"));
  const web1 = client.endpoints("web", { all: true }).find((e) => e.instance === "web-1") as RosterEndpoint;
  assert.equal(web1.draining, true);
  assert.deepEqual(eligible(), ["web-3"]);
  assert.deepEqual(picks(20), { "web-3": 20 });

  // web-2 recovers, then a weight change: WeightedRoundRobin follows the published weights exactly.
  targets[1]!.healthy = true;
  await step("recover", { "web-1": "Draining", "web-2": "Ready", "web-3": "Ready" }, FAIL_MS);
  const beforeWeight = updates.length;
  await patchInstanceSpec(ns, "web-3", { weight: 300 });
  await eventually(
    () => (client.endpoints("web").find((e) => e.instance === "web-3")?.weight === 300 ? true : undefined),
    { timeoutMs: 10_000, what: "web-3 weight 300 in the client" },
  );
  await step("weight", { "web-1": "Draining", "web-2": "Ready", "web-3": "Ready" }, 5000);
  assert.ok(
    updates
      .slice(beforeWeight)
      .some((u) => u.changed.some((e) => e.instance === "web-3" && e.weight === 300)),
    "an updated event reported web-3's new weight",
  );
  assert.deepEqual(picks(400), { "web-2": 100, "web-3": 300 });

  // Everything non-drained fails: below panicThreshold (50 %), the operator
  // publishes all non-drained instances as Panic and the client fails open.
  setHealthy([targets[1]!, targets[2]!], false);
  const panic = await step("panic", { "web-1": "Draining", "web-2": "Panic", "web-3": "Panic" }, FAIL_MS);
  assert.equal(client.service("web").panic, true);
  assert.equal(panic.updates.at(-1)!.panic, true);
  assert.deepEqual(eligible(), ["web-2", "web-3"]);
  assert.deepEqual(Object.keys(picks(40)).sort(), ["web-2", "web-3"], "panic: failed endpoints are picked");

  // Recovery out of panic: back to normal, panic flag cleared.
  setHealthy([targets[1]!, targets[2]!], true);
  await step("out of panic", { "web-1": "Draining", "web-2": "Ready", "web-3": "Ready" }, FAIL_MS);
  assert.equal(client.service("web").panic, false);

  // And with nothing eligible and no panic (threshold 0), pick() says so.
  await patchInstanceSpec(ns, "web-2", { drain: true });
  await patchInstanceSpec(ns, "web-3", { drain: true });
  await step("all drained", { "web-1": "Draining", "web-2": "Draining", "web-3": "Draining" }, 10_000);
  assert.throws(() => client.pick("web"), NoHealthyEndpointsError);

  // Every published revision reached the client once, in order: one watch event per write.
  const revisions = updates.map((u) => u.revision);
  for (const [i, u] of updates.entries()) {
    if (i === 0) continue;
    assert.equal(
      u.revision,
      revisions[i - 1]! + 1,
      `revisions in order without gaps: ${revisions.join(",")}`,
    );
    assert.equal(u.previousRevision, revisions[i - 1]);
  }
  t.diagnostic(`revisions seen: ${revisions.join(",")}`);
});
