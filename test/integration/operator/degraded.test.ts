// The Degraded state end to end: a healthy instance whose probe answers a
// degraded status (429 in degradedStatuses) or slower than degradedLatency
// stays healthy, Ready and ready in the EndpointSlices, with a Degraded
// condition and, in the ConfigMap, `degraded: true` at
// publish.degradedWeightPercent of its weight; clean answers take it back.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { type TestContext, test } from "node:test";
import type { ServiceInstance } from "../../../src/api/index.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  condition,
  createInstance,
  createPolicy,
  getInstance,
  hasEvent,
  publishedDocument,
  readyAddresses,
  sliceEndpoints,
} from "../../support/roster.ts";
import { listen } from "../../support/servers.ts";

interface Target {
  host: string;
  port: number;
  /** Status `/healthz` answers. */
  status: number;
  /** Delay before answering, in ms. */
  delayMs: number;
  /** A `Warning` header value to send, if any. */
  warning?: string;
}

/** A loopback health server whose status and delay the test switches. */
async function target(t: TestContext, host: string): Promise<Target> {
  const state: Target = { host, port: 0, status: 200, delayMs: 0 };
  const server: Server = createServer((_req, res) => {
    const { status, delayMs, warning } = state;
    const answer = () => {
      res.statusCode = status;
      if (warning !== undefined) res.setHeader("Warning", warning);
      res.end(status === 200 ? "ok" : "busy");
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  state.port = await listen(server, host);
  t.after(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  return state;
}

function instanceSpec(
  tg: Target,
  index: number,
  check: Record<string, unknown> = {},
  http: Record<string, unknown> = {},
) {
  return {
    service: "web",
    address: `192.0.2.${index + 1}`,
    ports: [{ name: "http", port: tg.port }],
    weight: 100,
    healthCheck: {
      probes: [
        {
          type: "http" as const,
          http: {
            host: tg.host,
            port: "http",
            path: "/healthz",
            degradedStatuses: [{ min: 429, max: 429 }],
            ...http,
          },
        },
      ],
      ...FAST,
      ...check,
    },
  };
}

// Up to two probe rounds at the slowest interval here (3s) plus watch and write margins.
const WAIT = { timeoutMs: 2 * 3000 + 2 * MARGIN_MS };

function instanceWith(ns: string, name: string, degraded: "True" | "False", what: string) {
  return eventually(
    async () => {
      const si = await getInstance(ns, name);
      const c = condition(si, "Degraded");
      return c?.status === degraded && c.observedGeneration === si.metadata.generation ? si : undefined;
    },
    { ...WAIT, what },
  );
}

function assertHealthyReady(si: ServiceInstance) {
  assert.equal(si.status?.healthy, true);
  assert.equal(condition(si, "Ready")?.status, "True");
  assert.equal(condition(si, "Healthy")?.status, "True");
}

type Entry = NonNullable<Awaited<ReturnType<typeof publishedDocument>>>["endpoints"][number];

/** The instance's entry in web-roster's endpoints.json, once `when` holds for it. */
function entryWhen(ns: string, instance: string, when: (e: Entry) => boolean | undefined, what: string) {
  return eventually(
    async () => {
      const e = (await publishedDocument(ns, "web-roster"))?.endpoints.find((x) => x.instance === instance);
      return e && when(e) ? e : undefined;
    },
    { ...WAIT, what },
  );
}

test("a degraded status keeps the instance ready at a reduced weight; a clean answer restores it", async (t) => {
  const ns = await testNamespace(t, "degraded");
  const busy = await target(t, "127.0.0.1");
  const clean = await target(t, "127.0.0.2");
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", {
    service: "web",
    loadBalancing: { strategy: "WeightedRoundRobin" },
    publish: { degradedWeightPercent: 40 },
  });
  busy.status = 429;
  await createInstance(ns, "web-1", instanceSpec(busy, 0));
  await createInstance(ns, "web-2", instanceSpec(clean, 1));

  const si = await instanceWith(ns, "web-1", "True", "web-1 Degraded True");
  assert.equal(condition(si, "Degraded")?.reason, "DegradedStatus");
  assertHealthyReady(si);
  await hasEvent(ns, "web-1", "Degraded");

  const entry = await entryWhen(ns, "web-1", (e) => e.degraded, "web-1 degraded in the ConfigMap");
  assert.equal(entry.weight, 40);
  assert.equal(entry.ready, true);
  assert.equal(entry.healthy, true);
  const other = await entryWhen(ns, "web-2", (e) => e.ready, "web-2 ready in the ConfigMap");
  assert.equal(other.weight, 100);
  assert.equal("degraded" in other, false);
  const cleanSi = await instanceWith(ns, "web-2", "False", "web-2 Degraded False");
  assert.equal(condition(cleanSi, "Degraded")?.reason, "NotDegraded");

  const slice = await eventually(
    async () => {
      const ep = (await sliceEndpoints(ns, "web")).find((e) => e.addresses.includes("192.0.2.1"));
      return ep?.conditions?.ready ? ep : undefined;
    },
    { ...WAIT, what: "web-1 ready in the EndpointSlice" },
  );
  assert.deepEqual({ ...slice.conditions }, { ready: true, serving: true, terminating: false });
  await eventually(async () => ((await readyAddresses(ns, "web")).length === 2 ? true : undefined), {
    ...WAIT,
    what: "both instances ready in the EndpointSlices",
  });

  busy.status = 200;
  const back = await instanceWith(ns, "web-1", "False", "web-1 Degraded False");
  assert.equal(condition(back, "Degraded")?.reason, "NotDegraded");
  assertHealthyReady(back);
  await hasEvent(ns, "web-1", "DegradedEnded");
  const restored = await entryWhen(
    ns,
    "web-1",
    (e) => !e.degraded,
    "web-1 no longer degraded in the ConfigMap",
  );
  assert.equal(restored.weight, 100);
  assert.equal(restored.ready, true);
  assert.equal("degraded" in restored, false);
});

test("a success slower than degradedLatency is degraded with SlowResponse", async (t) => {
  const ns = await testNamespace(t, "degraded-slow");
  const slow = await target(t, "127.0.0.1");
  slow.delayMs = 600;
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web", publish: { degradedWeightPercent: 40 } });
  await createInstance(
    ns,
    "web-1",
    instanceSpec(slow, 0, { interval: "3s", timeout: "2s", degradedLatency: "200ms" }),
  );

  const si = await instanceWith(ns, "web-1", "True", "web-1 Degraded True (slow)");
  assert.equal(condition(si, "Degraded")?.reason, "SlowResponse");
  assertHealthyReady(si);
  const entry = await entryWhen(ns, "web-1", (e) => e.degraded, "slow web-1 degraded in the ConfigMap");
  assert.equal(entry.weight, 40);
  assert.equal(entry.ready, true);
  await eventually(async () => ((await readyAddresses(ns, "web")).includes("192.0.2.1") ? true : undefined), {
    ...WAIT,
    what: "slow web-1 ready in the EndpointSlice",
  });
});

test("degradeOnWarning: a 200 with a Warning header is degraded with WarningHeader until the header goes away", async (t) => {
  const ns = await testNamespace(t, "degraded-warning");
  const warned = await target(t, "127.0.0.1");
  warned.warning = '199 - "overloaded"';
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web", publish: { degradedWeightPercent: 40 } });
  await createInstance(ns, "web-1", instanceSpec(warned, 0, {}, { degradeOnWarning: true }));

  const si = await instanceWith(ns, "web-1", "True", "web-1 Degraded True (Warning)");
  const c = condition(si, "Degraded");
  assert.equal(c?.reason, "WarningHeader");
  assert.match(c?.message ?? "", /Warning: 199 - "overloaded"/);
  assertHealthyReady(si);
  await hasEvent(ns, "web-1", "Degraded");
  const entry = await entryWhen(ns, "web-1", (e) => e.degraded, "warned web-1 degraded in the ConfigMap");
  assert.equal(entry.weight, 40);
  assert.equal(entry.ready, true);

  warned.warning = undefined;
  const back = await instanceWith(ns, "web-1", "False", "web-1 Degraded False (no Warning)");
  assertHealthyReady(back);
  await hasEvent(ns, "web-1", "DegradedEnded");
  const restored = await entryWhen(ns, "web-1", (e) => !e.degraded, "web-1 at full weight in the ConfigMap");
  assert.equal(restored.weight, 100);
});
