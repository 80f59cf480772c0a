/**
 * The probe-target controller (src/operator/targets.ts) against fakes of the
 * operator context: in-memory caches, a scripted client for Secret reads and
 * an engine that records its targets. Policy and membership changes reach
 * the controller as enqueued keys (operator.ts); here the test reconciles
 * the key itself after changing the cache, as the controller would.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DefaultPolicy } from "../../../src/config/schema.ts";
import type { ProbeEngine, Target } from "../../../src/health/index.ts";
import { destinationPolicy } from "../../../src/health/policy.ts";
import { ApiError, type ReconcileContext, silentLogger } from "../../../src/kube/index.ts";
import {
  byService,
  type InstanceObject,
  type OperatorContext,
  type PolicyObject,
} from "../../../src/operator/context.ts";
import { serviceKey } from "../../../src/operator/effective.ts";
import { publicationPolicy } from "../../../src/operator/publication.ts";
import { runtimeStore } from "../../../src/operator/runtime.ts";
import { probeTargets, SECRET_REFRESH_MS, SECRET_RETRY_MS } from "../../../src/operator/targets.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { fakeInformer, scriptedClient } from "../kube/fakes.ts";
import { instance, NS, policy, T0 } from "./fixtures.ts";

function fakeEngine() {
  const targets = new Map<string, Target>();
  const calls: string[] = [];
  const engine = {
    set(t: Target) {
      calls.push(`set ${t.id}`);
      targets.set(t.id, t);
    },
    remove(id: string) {
      calls.push(`remove ${id}`);
      targets.delete(id);
    },
    has: (id: string) => targets.has(id),
  } as unknown as ProbeEngine;
  return { engine, targets, calls };
}

function setup(
  options: { owns?: (key: string) => boolean; secrets?: Record<string, Record<string, string>> } = {},
) {
  const instances = fakeInformer<InstanceObject>();
  const policies = fakeInformer<PolicyObject>();
  const svc = (o: { metadata: { namespace?: string }; spec?: { service?: string } }) =>
    o.spec?.service ? [serviceKey(o.metadata.namespace!, o.spec.service)] : [];
  instances.addIndex(byService, svc);
  policies.addIndex(byService, svc);
  const { engine, targets, calls } = fakeEngine();
  const client = scriptedClient({
    onRequest(req) {
      const name = req.path.match(/\/secrets\/([^/]+)$/)?.[1];
      const data = name && options.secrets?.[name];
      if (!data) throw new ApiError(404, { reason: "NotFound", code: 404 }, `GET ${req.path}`);
      const encoded = Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
      );
      return { data: encoded };
    },
  });
  const publication = publicationPolicy(destinationPolicy(), { clusterNetworks: [], allow: {} });
  const ctx = {
    client,
    clock: fakeClock(T0),
    logger: silentLogger(),
    engine,
    shards: { owns: options.owns ?? (() => true) },
    instances,
    policies,
    settings: () => ({ defaults: DefaultPolicy.parse({}), probeSecrets: true }),
    publication: () => publication,
  } as unknown as OperatorContext;
  const runtimes = runtimeStore();
  const notified: string[] = [];
  runtimes.subscribe((k) => notified.push(k));
  const controller = probeTargets(ctx, runtimes);
  const reconcile = (key: string) => {
    const [namespace, name] = key.split("/") as [string, string];
    const rc: ReconcileContext = {
      key,
      namespace,
      name,
      reconcileId: "test",
      log: silentLogger(),
      signal: new AbortController().signal,
    };
    return controller.reconcile(key, rc);
  };
  return { ctx, instances, policies, targets, calls, client, runtimes, notified, reconcile, controller };
}

const KEY = `${NS}/web-1`;
const si = (spec: Parameters<typeof instance>[0] = {}, options: Parameters<typeof instance>[1] = {}) =>
  instance({ address: "198.18.0.1", ...spec }, options) as InstanceObject;

describe("probeTargets", () => {
  it("a valid instance gets an engine target with the effective check and a runtime without blocker", async () => {
    const t = setup();
    t.instances.upsert(
      si({
        healthCheck: { probes: [{ type: "http", http: { path: "/ready", port: "http" } }], interval: "7s" },
      }),
    );
    assert.equal(await t.reconcile(KEY), undefined);
    const target = t.targets.get(KEY);
    assert.ok(target, "target registered");
    assert.equal(target.host, "198.18.0.1");
    assert.deepEqual(target.ports, { http: 8080 });
    assert.equal(target.check.intervalMs, 7000);
    assert.equal(target.check.probes.length, 1);
    assert.equal(target.check.probes[0]?.type, "http");
    const rt = t.runtimes.get(KEY);
    assert.equal(rt?.blocker, undefined);
    assert.equal(rt?.generation, 1);
    assert.equal(rt?.healthCheck?.interval, "7s");
    assert.deepEqual(t.notified, [KEY]);
    // Level-triggered and idempotent: an unchanged instance does not touch the engine again.
    await t.reconcile(KEY);
    assert.deepEqual(t.calls, [`set ${KEY}`]);
    assert.deepEqual(t.notified, [KEY], "an unchanged runtime notifies nobody");
  });

  it("an invalid spec that slipped past admission becomes an InvalidSpec blocker and no target", async () => {
    const t = setup();
    const bad = si();
    (bad.spec as unknown as { ports: unknown }).ports = [{ name: "http", port: 70000 }];
    t.instances.upsert(bad);
    await t.reconcile(KEY);
    assert.equal(t.targets.size, 0);
    assert.deepEqual(t.calls, []);
    const rt = t.runtimes.get(KEY);
    assert.equal(rt?.blocker?.reason, "InvalidSpec");
    assert.match(rt?.blocker?.message ?? "", /ports/);
  });

  it("a missing Secret blocks the instance (SecretNotFound, retried); once it exists the target is registered", async () => {
    const secrets: Record<string, Record<string, string>> = {};
    const t = setup({ secrets });
    const header = { name: "Authorization", valueFrom: { secretKeyRef: { name: "token", key: "value" } } };
    t.instances.upsert(si({ healthCheck: { probes: [{ type: "http", http: { headers: [header] } }] } }));
    assert.deepEqual(await t.reconcile(KEY), { requeueAfterMs: SECRET_RETRY_MS });
    assert.equal(t.targets.size, 0);
    assert.equal(t.runtimes.get(KEY)?.blocker?.reason, "SecretNotFound");
    assert.ok(
      t.client.requests.some(
        (r) => r.method === "GET" && r.path === `/api/v1/namespaces/${NS}/secrets/token`,
      ),
      "the Secret is read from the instance's namespace",
    );
    secrets.token = { value: "Bearer s3cret" };
    await t.reconcile(KEY);
    assert.equal(t.runtimes.get(KEY)?.blocker, undefined);
    const probe = t.targets.get(KEY)?.check.probes[0];
    assert.ok(probe?.type === "http");
    assert.equal(probe.headers?.Authorization, "Bearer s3cret", "the header value comes from the Secret");
  });

  it("a tcp probe's TLS client certificate comes from a kubernetes.io/tls Secret: missing blocks, present registers, rotated is re-read", async () => {
    const secrets: Record<string, Record<string, string>> = {};
    const t = setup({ secrets });
    const tls = {
      caBundle: "-----BEGIN CERTIFICATE-----\n",
      clientCertificate: { secretName: "probe-client" },
    };
    t.instances.upsert(si({ healthCheck: { probes: [{ type: "tcp", tcp: { port: "http", tls } }] } }));
    assert.deepEqual(await t.reconcile(KEY), { requeueAfterMs: SECRET_RETRY_MS });
    assert.equal(t.runtimes.get(KEY)?.blocker?.reason, "SecretNotFound");
    assert.match(
      t.runtimes.get(KEY)?.blocker?.message ?? "",
      /tls\.clientCertificate: key tls\.crt of Secret probe-client/,
    );
    assert.equal(t.targets.size, 0);
    secrets["probe-client"] = { "tls.crt": "cert-1", "tls.key": "key-1" };
    assert.deepEqual(await t.reconcile(KEY), { requeueAfterMs: SECRET_REFRESH_MS }, "re-read on rotation");
    const first = t.targets.get(KEY)?.check.probes[0];
    assert.ok(first?.type === "tcp");
    assert.deepEqual(first.tls?.clientCert, { cert: "cert-1", key: "key-1" });
    secrets["probe-client"] = { "tls.crt": "cert-2", "tls.key": "key-2" };
    await t.reconcile(KEY);
    const rotated = t.targets.get(KEY)?.check.probes[0];
    assert.ok(rotated?.type === "tcp");
    assert.deepEqual(rotated.tls?.clientCert, { cert: "cert-2", key: "key-2" });
    assert.deepEqual(t.calls, [`set ${KEY}`, `set ${KEY}`], "the engine gets the rotated certificate");
  });

  it("a blocker that appears later removes the registered target", async () => {
    const t = setup();
    t.instances.upsert(si());
    await t.reconcile(KEY);
    assert.ok(t.targets.has(KEY));
    const bad = si({}, { generation: 2 });
    (bad.spec as unknown as { address: unknown }).address = "";
    t.instances.upsert(bad);
    await t.reconcile(KEY);
    assert.equal(t.targets.has(KEY), false);
    assert.deepEqual(t.calls, [`set ${KEY}`, `remove ${KEY}`]);
    assert.equal(t.runtimes.get(KEY)?.blocker?.reason, "InvalidSpec");
    assert.equal(t.runtimes.get(KEY)?.generation, 2);
  });

  it("deleting the instance removes its target and its runtime", async () => {
    const t = setup();
    t.instances.upsert(si());
    await t.reconcile(KEY);
    assert.ok(t.targets.has(KEY));
    t.instances.remove(KEY);
    await t.reconcile(KEY);
    assert.equal(t.targets.has(KEY), false);
    assert.equal(t.runtimes.get(KEY), undefined);
    assert.deepEqual(t.calls, [`set ${KEY}`, `remove ${KEY}`]);
    assert.deepEqual(t.notified, [KEY, KEY], "the status writer and publisher hear of the deletion");
  });

  it("a policy change re-targets the instances of its service with the policy's check", async () => {
    const t = setup();
    const other = `${NS}/web-2`;
    t.instances.upsert(si());
    t.instances.upsert(si({ address: "198.18.0.2" }, { name: "web-2" }));
    await t.reconcile(KEY);
    await t.reconcile(other);
    const defaultInterval = t.targets.get(KEY)?.check.intervalMs;
    const p = policy("p", {
      healthCheck: { probes: [{ type: "tcp", tcp: { port: "http" } }], interval: "3s" },
    });
    t.policies.upsert(p as PolicyObject);
    // operator.ts enqueues every instance of the policy's service (byService).
    for (const i of t.instances.byIndex(byService, serviceKey(NS, "web"))) {
      await t.reconcile(`${NS}/${i.metadata.name}`);
    }
    for (const k of [KEY, other]) {
      const target = t.targets.get(k);
      assert.equal(target?.check.intervalMs, 3000, `${k} probed with the policy's interval`);
      assert.notEqual(target?.check.intervalMs, defaultInterval);
      assert.equal(target?.check.probes[0]?.type, "tcp");
      assert.equal(t.runtimes.get(k)?.healthCheck?.interval, "3s");
    }
    assert.deepEqual(t.calls, [`set ${KEY}`, `set ${other}`, `set ${KEY}`, `set ${other}`]);
  });

  it("an instance another replica owns is not probed, and losing one drops its target", async () => {
    const owned = new Set<string>();
    const t = setup({ owns: (k) => owned.has(k) });
    t.instances.upsert(si());
    await t.reconcile(KEY);
    assert.equal(t.targets.size, 0);
    assert.equal(t.runtimes.get(KEY), undefined);
    assert.equal(t.runtimes.probingSince(), undefined, "nothing probed yet");
    owned.add(KEY);
    await t.reconcile(KEY);
    assert.ok(t.targets.has(KEY));
    assert.equal(t.runtimes.probingSince(), T0);
    owned.delete(KEY);
    await t.reconcile(KEY);
    assert.equal(t.targets.has(KEY), false);
    assert.equal(t.runtimes.get(KEY), undefined);
  });

  it("reset drops every target and runtime", async () => {
    const t = setup();
    t.instances.upsert(si());
    await t.reconcile(KEY);
    t.controller.reset();
    assert.equal(t.targets.size, 0);
    assert.equal(t.runtimes.get(KEY), undefined);
  });
});
