/**
 * The client on split documents (format 2): the head and parts as the
 * operator's planner writes them, delivered through a memory source in
 * orders a watch can show them in. A torn set (a head with a part of
 * another revision, or a part not seen yet) is never served.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { PublishedContent, PublishedEndpoint } from "../../../src/api/published.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { memorySource } from "../../../src/client/source.ts";
import { planPartedConfigMaps } from "../../../src/publish/index.ts";
import { configMap, endpoint } from "./fixtures.ts";

const BUDGET = 1_500;

function endpoints(n: number, unhealthy: ReadonlySet<number> = new Set()): PublishedEndpoint[] {
  return Array.from({ length: n }, (_, i) =>
    endpoint({
      instance: `web-${String(i).padStart(3, "0")}`,
      address: `10.2.${i >> 8}.${i & 255}`,
      state: unhealthy.has(i) ? "Unhealthy" : "Ready",
    }),
  );
}

function content(eps: PublishedEndpoint[]): PublishedContent {
  return {
    formatVersion: 1,
    namespace: "default",
    service: "web",
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints: eps,
  };
}

/** The head and parts the operator writes after `previous` (head, parts). */
function split(eps: PublishedEndpoint[], previous?: { head: V1ConfigMap; parts: V1ConfigMap[] }) {
  const plan = planPartedConfigMaps(
    {
      namespace: "default",
      name: "web-roster",
      content: content(eps),
      previous: previous?.head,
      previousParts: previous?.parts ?? [],
      maxParts: 64,
    },
    BUDGET,
  );
  assert.ok(plan && plan.parts.length >= 2, "a split document");
  return plan;
}

type Cm = Parameters<ReturnType<typeof memorySource>["apply"]>[0];
const cm = (c: V1ConfigMap) => c as Cm;

test("a split document is served once the head and every part are seen, in every watch order", async () => {
  const plan = split(endpoints(30));
  // Parts then head (the write order), and head first (a reader starting mid-write).
  for (const order of [
    [...plan.parts, plan.head],
    [plan.head, ...plan.parts],
  ]) {
    const source = memorySource();
    const client = new RosterClient(undefined, { source, namespace: "default" });
    const updates: number[] = [];
    client.on("updated", (e) => updates.push(e.endpoints.length));
    await client.ready();
    for (const c of order) {
      source.apply(cm(c));
      if (c !== order.at(-1)) assert.throws(() => client.endpoints("web"), /UnknownService|not published/i);
    }
    assert.equal(client.endpoints("web").length, 30);
    assert.equal(client.service("web").revision, 1);
    assert.deepEqual(updates, [30], "one update, with the whole set");
    await client.close();
  }
});

test("a torn read (head of revision N, a part of N-1) is not accepted; the last good set stays served", async () => {
  const one = split(endpoints(30));
  const two = split(endpoints(30, new Set([0, 29])), { head: one.head, parts: one.parts });
  assert.equal(two.revision, 2);
  const source = memorySource();
  const client = new RosterClient(undefined, { source, namespace: "default" });
  await client.ready();
  for (const c of [...one.parts, one.head]) source.apply(cm(c));
  assert.equal(client.service("web").revision, 1);
  const invalid: unknown[] = [];
  client.on("invalid", (e) => invalid.push(e));

  // The new head shows before the new last part (part 0 is already new).
  source.apply(cm(two.parts[0]!));
  source.apply(cm(two.head));
  assert.equal(client.service("web").revision, 1, "head 2 with the last part of revision 1: not accepted");
  assert.equal(client.endpoints("web").length, 30, "revision 1 still served");
  for (const p of two.parts.slice(1)) source.apply(cm(p));
  assert.equal(client.service("web").revision, 2);
  assert.deepEqual(
    client
      .service("web")
      .endpoints.filter((e) => !e.ready)
      .map((e) => e.instance),
    ["web-000", "web-029"],
  );
  assert.deepEqual(invalid, [], "a torn read is not an invalid publication");
  await client.close();
});

test("a part rewritten for the next revision does not disturb the served set; deleted parts change nothing", async () => {
  const one = split(endpoints(30));
  const fewer = split(endpoints(12), { head: one.head, parts: one.parts });
  assert.ok(fewer.deleteParts.length > 0, "the smaller set needs fewer parts");
  const source = memorySource();
  const client = new RosterClient(undefined, { source, namespace: "default" });
  await client.ready();
  for (const c of [...one.parts, one.head]) source.apply(cm(c));
  for (const p of fewer.parts) source.apply(cm(p));
  assert.equal(client.service("web").revision, 1);
  assert.equal(client.endpoints("web").length, 30);
  source.apply(cm(fewer.head));
  assert.equal(client.endpoints("web").length, 12);
  for (const p of fewer.deleteParts) source.remove(cm(p));
  assert.equal(client.endpoints("web").length, 12);
  await client.close();
});

test("format 1 and format 2 side by side, and a switch back to format 1", async () => {
  const plan = split(endpoints(30));
  const source = memorySource();
  const client = new RosterClient(undefined, { source, namespace: "default" });
  await client.ready();
  source.apply(configMap({ service: "api", revision: 4, endpoints: endpoints(2) }));
  for (const c of [...plan.parts, plan.head]) source.apply(cm(c));
  assert.equal(client.endpoints("api").length, 2);
  assert.equal(client.endpoints("web").length, 30);
  source.apply(configMap({ service: "web", revision: 2, endpoints: endpoints(3) }));
  assert.equal(client.service("web").revision, 2);
  assert.equal(client.endpoints("web").length, 3);
  await client.close();
});
