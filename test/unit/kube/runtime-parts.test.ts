import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import fc from "fast-check";
import { backoff } from "../../../src/kube/backoff.ts";
import { createLogger, setLogLevel } from "../../../src/kube/log.ts";
import { runtimeMetrics } from "../../../src/kube/metrics.ts";
import { objectKey, resourcePath, resources, splitKey } from "../../../src/kube/object.ts";
import { serveEndpoints } from "../../../src/kube/server.ts";
import { createStore } from "../../../src/kube/store.ts";
import { workQueue } from "../../../src/kube/workqueue.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { configMap } from "./fakes.ts";

describe("backoff", () => {
  test("property: jittered delays stay within [base, base * (1 + jitter)] and grow to the cap", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (rs) => {
          let i = 0;
          const b = backoff({
            initialMs: 800,
            maxMs: 30_000,
            jitter: 1,
            random: () => rs[i] ?? 0,
            clock: fakeClock(),
          });
          rs.forEach((_, n) => {
            const base = Math.min(800 * 2 ** n, 30_000);
            const d = b.next();
            i++;
            assert.ok(d >= base && d < base * 2, `attempt ${n}: ${d} not in [${base}, ${2 * base})`);
          });
        },
      ),
    );
  });

  test("resets explicitly and after a quiet period", () => {
    const clock = fakeClock();
    const b = backoff({ initialMs: 100, maxMs: 1000, jitter: 0, resetAfterMs: 60_000, clock });
    assert.deepEqual([b.next(), b.next(), b.next()], [100, 200, 400]);
    b.reset();
    assert.equal(b.next(), 100);
    b.next();
    clock.advance(60_000);
    assert.equal(b.next(), 100);
  });
});

describe("store and keys", () => {
  test("keys and paths", () => {
    assert.equal(objectKey(configMap("a", "ns")), "ns/a");
    assert.deepEqual(splitKey("ns/a"), { namespace: "ns", name: "a" });
    assert.deepEqual(splitKey("cluster-thing"), { name: "cluster-thing" });
    assert.equal(
      resourcePath(resources.configMaps, { namespace: "ns", name: "a" }),
      "/api/v1/namespaces/ns/configmaps/a",
    );
    assert.equal(
      resourcePath(resources.leases, { namespace: "x", name: "l" }),
      "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
    );
    assert.equal(
      resourcePath(resources.namespaces, { namespace: "ignored", name: "n" }),
      "/api/v1/namespaces/n",
    );
    assert.equal(
      resourcePath(resources.configMaps, { namespace: "ns", name: "a", subresource: "status" }),
      "/api/v1/namespaces/ns/configmaps/a/status",
    );
  });

  test("property: indexes always agree with a scan", () => {
    const op = fc.record({
      del: fc.boolean(),
      name: fc.constantFrom("a", "b", "c", "d"),
      ns: fc.constantFrom("x", "y"),
      svc: fc.constantFrom("web", "api"),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 50 }), (ops) => {
        const s = createStore<ReturnType<typeof configMap>>();
        s.addIndex("svc", (o) => [o.metadata.labels?.svc ?? ""]);
        for (const o of ops) {
          if (o.del) s.delete(`${o.ns}/${o.name}`);
          else {
            const cm = configMap(o.name, o.ns);
            cm.metadata.labels = { svc: o.svc };
            s.set(cm);
          }
        }
        for (const svc of ["web", "api"]) {
          const scan = s
            .list()
            .filter((o) => o.metadata.labels?.svc === svc)
            .map(objectKey)
            .sort();
          assert.deepEqual(s.byIndex("svc", svc).map(objectKey).sort(), scan);
        }
        for (const ns of ["x", "y"]) {
          assert.deepEqual(
            s.list(ns).map(objectKey).sort(),
            s
              .list()
              .filter((o) => o.metadata.namespace === ns)
              .map(objectKey)
              .sort(),
          );
        }
      }),
    );
  });
});

describe("logs", () => {
  test("setLogLevel reaches children created before the change", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const root = createLogger({ level: "info" }, sink);
    const child = root.child({ controller: "c" });
    const grandchild = child.child({ key: "ns/a", reconcileId: "r1" });
    grandchild.debug("hidden");
    setLogLevel(root, "debug");
    grandchild.debug("shown");
    child.debug("shown too");
    assert.equal(lines.length, 2);
    const rec = JSON.parse(lines[0]!);
    assert.equal(rec.level, "debug");
    assert.equal(rec.controller, "c");
    assert.equal(rec.key, "ns/a");
    assert.equal(rec.reconcileId, "r1");
  });
});

describe("metrics and endpoints", () => {
  test("controller-runtime metric names, served on /metrics; /healthz and /readyz follow their checks", async () => {
    const m = runtimeMetrics({ processMetrics: false });
    const q = workQueue({ metrics: m.queueSink("instances") });
    m.trackQueue("instances", q);
    q.add("a");
    m.reconcileTotal.inc({ controller: "instances", result: "success" });
    m.leaderStatus.set({ name: "roster" }, 1);
    m.watchRestarts.inc({ resource: "configmaps", reason: "inactivity" });
    m.relists.inc({ resource: "configmaps", reason: "expired" });
    let ready: string | undefined = "informers not synced";
    const server = await serveEndpoints({
      port: 0,
      host: "127.0.0.1",
      registry: m.registry,
      checks: {
        healthz: new Map([["ping", () => undefined]]),
        readyz: new Map([["informers", () => ready]]),
      },
    });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const text = await (await fetch(`${base}/metrics`)).text();
      for (const name of [
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_reconcile_time_seconds",
        "controller_runtime_max_concurrent_reconciles",
        "controller_runtime_active_workers",
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_retries_total",
        "workqueue_queue_duration_seconds",
        "workqueue_work_duration_seconds",
        "workqueue_longest_running_processor_seconds",
        "workqueue_unfinished_work_seconds",
        "leader_election_master_status",
        "roster_watch_restarts_total",
        "roster_watch_relists_total",
      ]) {
        assert.match(text, new RegExp(`# TYPE ${name} `), name);
      }
      assert.match(text, /workqueue_adds_total\{name="instances",controller="instances"\} 1/);
      assert.match(text, /workqueue_depth\{name="instances",controller="instances",priority=""\} 1/);
      assert.match(text, /leader_election_master_status\{name="roster"\} 1/);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      const notReady = await fetch(`${base}/readyz`);
      assert.equal(notReady.status, 503);
      assert.match(await notReady.text(), /\[-\]informers failed: informers not synced/);
      ready = undefined;
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
    } finally {
      await server.close();
    }
  });

  test("with an authorizer, /metrics answers its denial and health paths never ask", async () => {
    const seen: (string | undefined)[] = [];
    const server = await serveEndpoints({
      port: 0,
      host: "127.0.0.1",
      registry: runtimeMetrics().registry,
      checks: { healthz: new Map(), readyz: new Map() },
      authorize: async (h) => {
        seen.push(h);
        return h === "Bearer ok"
          ? undefined
          : { status: h ? 403 : 401, message: h ? "Forbidden" : "Unauthorized" };
      },
    });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      assert.equal((await fetch(`${base}/metrics`)).status, 401);
      const denied = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer no" } });
      assert.equal(denied.status, 403);
      assert.equal(await denied.text(), "Forbidden\n");
      assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: "Bearer ok" } })).status, 200);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      assert.deepEqual(seen, [undefined, "Bearer no", "Bearer ok"], "asked for /metrics only");
    } finally {
      await server.close();
    }
  });

  test("a TLS file that cannot be read fails the listen naming the setting", async () => {
    await assert.rejects(
      serveEndpoints({
        port: 0,
        host: "127.0.0.1",
        tls: { certFile: "/nonexistent/tls.crt", keyFile: "/x" },
      }),
      /cannot serve \/metrics over HTTPS: cannot read metrics\.tls\.certFile \/nonexistent\/tls\.crt: ENOENT/,
    );
  });
});
