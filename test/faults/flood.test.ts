// The 10,000-object flood. While the operator runs, 10,000 ServiceInstances
// of 100 services are created at once in one namespace (48 POSTs in flight).
// Probing is kept cheap so that the API server and the operator are what is
// tested: each service's policy checks its instances with a TCP connect every
// 10 s to one of four loopback listeners (probe host override); instances are
// published at 10.0.S.N.
//
// Asserted: every instance gets a status with a Ready condition and is
// recorded healthy; every service is published with exactly its instances
// (EndpointSlices and ConfigMap, compared with what the test created) and its
// policy counts them; the in-process operator never throws (no unhandled
// rejection or exception) and its work queues drain. How long it took is
// printed, never asserted.
//
// A private sandbox: 10,000 objects (and the namespace's deletion) would slow
// the tests that share the cluster.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1ConfigMap, V1EndpointSlice } from "@kubernetes/client-node";
import type { ServiceInstance, ServiceInstanceInput } from "../../src/api/index.ts";
import { parsePublishedEndpoints } from "../../src/api/published.ts";
import type { Operator } from "../../src/operator/operator.ts";
import { eventually } from "../support/cluster.ts";
import { condition, rosterApi } from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";
import { metricSum, privateCluster, startOperatorOn } from "./support.ts";

const SERVICES = 100;
const PER_SERVICE = 100;
const TOTAL = SERVICES * PER_SERVICE;
const IN_FLIGHT = 48;

const serviceName = (s: number) => `svc-${String(s).padStart(3, "0")}`;

test(`${TOTAL} instances created at once: all recorded, every service published exactly, queues drain`, {
  timeout: 15 * 60_000,
}, async (t) => {
  const failures: unknown[] = [];
  const record = (err: unknown) => failures.push(err);
  process.on("unhandledRejection", record);
  process.on("uncaughtException", record);
  t.after(() => {
    process.off("unhandledRejection", record);
    process.off("uncaughtException", record);
  });

  const cluster = await privateCluster(t);
  const k = rosterApi(cluster.kc);
  const ns = "flood";
  await k.createNamespace(ns);
  // Listeners only accept TCP connections (HTTP servers, but the probes are TCP connects).
  const listeners = await httpTargets(t, 4);
  const port = listeners[0]!.port;
  for (let s = 0; s < SERVICES; s++) {
    await k.createPolicy(ns, serviceName(s), {
      service: serviceName(s),
      healthCheck: {
        probes: [{ type: "tcp", tcp: { host: listeners[s % 4]!.host, port: "tcp" } }],
        interval: "10s",
        timeout: "2s",
        failureThreshold: 2,
        successThreshold: 1,
      },
    });
  }
  const operator = await startOperatorOn(t, cluster.kc, { namespaces: [ns] });

  const expected = new Map<string, { name: string; address: string }[]>();
  const specs: { name: string; spec: ServiceInstanceInput["spec"] }[] = [];
  // Interleaved: every service is being filled at the same time.
  for (let i = 0; i < PER_SERVICE; i++) {
    for (let s = 0; s < SERVICES; s++) {
      const name = `${serviceName(s)}-${i}`;
      const address = `10.0.${s}.${i + 1}`;
      const members = expected.get(serviceName(s)) ?? [];
      members.push({ name, address });
      expected.set(serviceName(s), members);
      specs.push({ name, spec: { service: serviceName(s), address, ports: [{ name: "tcp", port }] } });
    }
  }

  const start = Date.now();
  await k.createInstances(ns, specs, IN_FLIGHT);
  const created = Date.now();
  t.diagnostic(
    `created ${TOTAL} instances in ${((created - start) / 1000).toFixed(1)} s (${IN_FLIGHT} in flight)`,
  );

  const listAll = async () => {
    const [slices, configMaps] = await Promise.all([
      k.discovery.listNamespacedEndpointSlice({ namespace: ns }),
      k.core.listNamespacedConfigMap({ namespace: ns, labelSelector: "roster.dev/service" }),
    ]);
    return { slices: slices.items, configMaps: configMaps.items };
  };
  const published = await eventually(
    async () => {
      const all = await listAll();
      return publishedMismatch(all.slices, all.configMaps, expected) === undefined ? all : undefined;
    },
    { what: "every service published with exactly its instances", timeoutMs: 8 * 60_000, intervalMs: 3000 },
  );
  const publishedAt = Date.now();
  t.diagnostic(
    `all ${SERVICES} services published ${((publishedAt - start) / 1000).toFixed(1)} s after the first POST`,
  );

  // The operator is idle once nothing is queued and no reconcile runs (delayed requeues are not
  // queued work); only then is the 10,000-object list worth taking.
  const idle = async () =>
    (await metricSum(operator, "workqueue_depth")) === 0 &&
    (await metricSum(operator, "controller_runtime_active_workers")) === 0;
  let instances: ServiceInstance[] = [];
  await eventually(
    async () => {
      if (!(await idle())) return undefined;
      instances = await k.listInstances(ns);
      return instances.length === TOTAL &&
        instances.every((i) => i.status?.healthy === true && condition(i, "Ready")?.status === "True")
        ? true
        : undefined;
    },
    {
      what: "queues drained, every instance recorded healthy and Ready",
      timeoutMs: 8 * 60_000,
      intervalMs: 2000,
    },
  );
  const recordedAt = Date.now();
  t.diagnostic(
    `all ${TOTAL} statuses written and queues drained ${((recordedAt - start) / 1000).toFixed(1)} s after the first POST`,
  );

  t.diagnostic(
    `probe failures by reason: ${JSON.stringify(await byLabel(operator, "roster_probe_failures_total", "reason"))}; ` +
      `voided (no result) by cause: ${JSON.stringify(await byLabel(operator, "roster_probe_voided_total", "cause"))}`,
  );

  // Exactly what was created, checked once more on the settled state, plus the policies' counts.
  assert.equal(publishedMismatch(published.slices, published.configMaps, expected), undefined);
  const settled = await listAll();
  assert.equal(publishedMismatch(settled.slices, settled.configMaps, expected), undefined);
  for (const i of instances) {
    assert.equal(condition(i, "Ready")?.observedGeneration, i.metadata.generation, i.metadata.name);
  }
  for (let s = 0; s < SERVICES; s++) {
    const p = await k.getPolicy(ns, serviceName(s));
    assert.equal(p.status?.totalInstances, PER_SERVICE, `${serviceName(s)} totalInstances`);
    assert.equal(p.status?.healthyInstances, PER_SERVICE, `${serviceName(s)} healthyInstances`);
  }
  assert.deepEqual(failures, [], "the operator never threw");
  const errors = await metricSum(operator, "controller_runtime_reconcile_errors_total");
  const terminal = await metricSum(operator, "controller_runtime_terminal_reconcile_errors_total");
  assert.equal(terminal, 0, "no reconcile gave up");
  t.diagnostic(
    `reconcile errors (retried): ${errors}; reconciles: ${await metricSum(operator, "controller_runtime_reconcile_total")}; ` +
      `API requests: ${await metricSum(operator, "rest_client_requests_total")}; ` +
      `probes: ${operator.engine.stats().probes}`,
  );
});

/** A counter's values summed by one label (a diagnostic: which probe failures, if any, the flood caused). */
async function byLabel(operator: Operator, name: string, label: string): Promise<Record<string, number>> {
  const metric = operator.manager.metrics.registry.getSingleMetric(name);
  const out: Record<string, number> = {};
  for (const v of metric ? (await metric.get()).values : []) {
    const key = String(v.labels[label]);
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

/** Why the published objects differ from `expected` (service → its instances), or undefined. */
function publishedMismatch(
  slices: readonly V1EndpointSlice[],
  configMaps: readonly V1ConfigMap[],
  expected: ReadonlyMap<string, readonly { name: string; address: string }[]>,
): string | undefined {
  const ready = new Map<string, string[]>();
  for (const slice of slices) {
    const service = slice.metadata?.labels?.["kubernetes.io/service-name"] ?? "";
    const list = ready.get(service) ?? [];
    for (const e of slice.endpoints ?? []) if (e.conditions?.ready) list.push(...e.addresses);
    ready.set(service, list);
  }
  const documents = new Map(
    configMaps.map((cm) => [
      cm.metadata?.labels?.["roster.dev/service"] ?? "",
      parsePublishedEndpoints(cm.data),
    ]),
  );
  if (ready.size !== expected.size) return `${ready.size} services have slices, want ${expected.size}`;
  for (const [service, members] of expected) {
    const want = members.map((m) => m.address).sort();
    const got = (ready.get(service) ?? []).sort();
    if (got.join() !== want.join()) return `${service}: ${got.length} ready addresses, want ${want.length}`;
    const doc = documents.get(service);
    const inDoc = (doc?.endpoints ?? [])
      .filter((e) => e.ready)
      .map((e) => `${e.instance}=${e.address}`)
      .sort();
    const wantDoc = members.map((m) => `${m.name}=${m.address}`).sort();
    if (inDoc.join() !== wantDoc.join())
      return `${service}: ConfigMap lists ${inDoc.length}, want ${wantDoc.length}`;
  }
  return undefined;
}
