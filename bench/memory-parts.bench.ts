/**
 * Memory of the per-instance parts, each on its own (V8 heap after a full
 * GC, per object): the informer's cached ServiceInstance (a real object as
 * the API server lists it, managedFields included), the probe engine's
 * target state (and the target spec the operator builds for it), and one idle keep-alive connection in the HTTP pool (the
 * servers run in a child process, so only the client side is counted).
 * The figures in docs/scaling.md ("Memory") come from here.
 *
 *   node --expose-gc bench/memory-parts.bench.ts [--count 10000]
 */
import { fork } from "node:child_process";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { type ServiceInstance, validateServiceInstance } from "../src/api/index.ts";
import { parseConfig } from "../src/config/load.ts";
import { createProbeEngine } from "../src/health/engine.ts";
import { httpProbe } from "../src/health/http-probe.ts";
import { connectionPool } from "../src/health/http1.ts";
import { ProbeSignal } from "../src/health/signal.ts";
import { createInformer } from "../src/kube/informer.ts";
import { createLogger } from "../src/kube/log.ts";
import type { KubeObject } from "../src/kube/object.ts";
import { rosterResources } from "../src/operator/context.ts";
import { effectiveSettings, instanceTarget } from "../src/operator/effective.ts";
import { fakeClock } from "../src/util/clock.ts";
import { report } from "./report.ts";

/** JSON of a ServiceInstance with its status, as listed (no apiVersion/kind), from a 10k bench run. */
const template =
  '{"metadata":{"creationTimestamp":"2026-11-23T23:30:10Z","generation":1,"managedFields":[{"apiVersion":"roster.dev/v1alpha1","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:addresses":{},"f:conditions":{"k:{\\"type\\":\\"Healthy\\"}":{".":{},"f:lastTransitionTime":{},"f:message":{},"f:observedGeneration":{},"f:reason":{},"f:status":{},"f:type":{}},"k:{\\"type\\":\\"Ready\\"}":{".":{},"f:lastTransitionTime":{},"f:message":{},"f:observedGeneration":{},"f:reason":{},"f:status":{},"f:type":{}}},"f:healthy":{},"f:lastProbe":{"f:message":{},"f:reason":{},"f:result":{},"f:time":{}},"f:lastTransitionTime":{},"f:observedGeneration":{},"f:portSummary":{}}},"manager":"roster","operation":"Apply","subresource":"status","time":"2026-11-23T23:37:21Z"},{"apiVersion":"roster.dev/v1alpha1","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{".":{},"f:address":{},"f:drain":{},"f:healthCheck":{".":{},"f:combine":{},"f:failureThreshold":{},"f:initialDelay":{},"f:interval":{},"f:jitter":{},"f:probes":{},"f:successThreshold":{},"f:timeout":{}},"f:ports":{".":{},"k:{\\"name\\":\\"http\\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{}}},"f:service":{},"f:weight":{}}},"manager":"kubernetes-client-javascript","operation":"Update","time":"2026-11-23T23:30:10Z"}],"name":"i-0","namespace":"memory","resourceVersion":"30158","uid":"69d048f5-49f9-4bcd-b422-638cdfa00822"},"spec":{"address":"198.18.0.1","drain":false,"healthCheck":{"combine":"all","failureThreshold":2,"initialDelay":"0s","interval":"10s","jitter":0,"probes":[{"http":{"expectedStatuses":[{"max":399,"min":200}],"followRedirects":false,"host":"127.0.5.1","method":"GET","path":"/h/0","port":"http","scheme":"HTTP"},"type":"http"}],"successThreshold":1,"timeout":"1s"},"ports":[{"name":"http","port":43299,"protocol":"TCP"}],"service":"svc-0000","weight":100},"status":{"addresses":["198.18.0.1"],"conditions":[{"lastTransitionTime":"2026-11-23T23:37:21Z","message":"HTTP 200","observedGeneration":1,"reason":"ProbeSucceeded","status":"True","type":"Healthy"},{"lastTransitionTime":"2026-11-23T23:37:21Z","message":"published as ready","observedGeneration":1,"reason":"Healthy","status":"True","type":"Ready"}],"healthy":true,"lastProbe":{"message":"HTTP 200","reason":"ProbeSucceeded","result":"Success","time":"2026-11-23T23:32:30Z"},"lastTransitionTime":"2026-11-23T23:37:21Z","observedGeneration":1,"portSummary":"43299/TCP"}}';

const gc = (globalThis as { gc?: () => void }).gc;
if (process.argv[2] === "serve") {
  // 100 servers on all loopback addresses: 50 addresses x 100 ports = 5,000 destinations.
  const ports: number[] = [];
  for (let i = 0; i < 100; i++) {
    const server = createServer((_req, res) => res.writeHead(200, { "content-length": "2" }).end("ok"));
    server.keepAliveTimeout = 600_000;
    ports.push(
      await new Promise<number>((r) =>
        server.listen({ port: 0, host: "0.0.0.0", backlog: 4096 }, () =>
          r((server.address() as { port: number }).port),
        ),
      ),
    );
  }
  process.send!(ports);
} else {
  if (!gc) throw new Error("run with --expose-gc");
  const { values } = parseArgs({ options: { count: { type: "string", default: "10000" } } });
  const n = Number(values.count);
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };

  // Informer cache: objects go through the informer's own list path (the
  // page is built inside the request, so only what the cache keeps remains).
  const item = (i: number) =>
    template.replaceAll('"i-0"', `"i-${i}"`).replace('"198.18.0.1"', `"198.18.${i >> 8}.${i & 255}"`);
  let h0 = heap();
  const informer = createInformer<KubeObject>({
    client: {
      async request<T>(): Promise<T> {
        const items = Array.from({ length: n }, (_, i) => item(i));
        const page = `{"metadata":{"resourceVersion":"1"},"items":[${items.join(",")}]}`;
        return JSON.parse(page) as T;
      },
      stream: () => new Promise(() => {}),
    },
    type: rosterResources.serviceInstances,
    clock: fakeClock(),
    logger: createLogger({ level: "warn" }),
  });
  informer.addIndex("byService", (o) => [(o as { spec?: { service?: string } }).spec?.service ?? ""]);
  informer.start();
  await informer.waitForSync();
  const cachePer = (heap() - h0) / n;

  // Probe targets as the probe-target reconciler builds them from the cached
  // instances (src/operator/targets.ts): what it and the engine keep per instance.
  const defaults = parseConfig("").defaultPolicy;
  h0 = heap();
  const built = informer.list().flatMap((obj) => {
    const parsed = validateServiceInstance(obj);
    if (!parsed.ok) return [];
    const instance: ServiceInstance = {
      ...parsed.value,
      metadata: obj.metadata as ServiceInstance["metadata"],
    };
    const t = instanceTarget(
      instance,
      effectiveSettings(undefined, defaults, instance).healthCheck,
      () => undefined,
    );
    return t.ok ? [t.target] : [];
  });
  const targetPer = (heap() - h0) / n;
  if (built.length !== n) throw new Error(`built ${built.length} targets of ${n}`);
  void informer.stop();

  // Probe engine: targets as the operator builds them, scheduled but not probed yet.
  const engine = createProbeEngine({ policy: { allowLoopback: true } });
  const targets = Array.from({ length: n }, (_, i) => ({
    id: `memory/i-${i}`,
    host: `127.0.5.${(i % 16) + 1}`,
    ports: { http: 40000 },
    check: {
      probes: [
        { type: "http" as const, port: "http", path: `/h/${i}`, expectedStatuses: [{ from: 200, to: 399 }] },
      ],
      intervalMs: 10_000,
      timeoutMs: 1000,
      failureThreshold: 2,
      successThreshold: 1,
      jitterMs: 0,
      initialDelayMs: 3_600_000,
    },
  }));
  h0 = heap();
  for (const t of targets) engine.set(t);
  const enginePer = (heap() - h0) / n;
  engine.close();

  // Idle keep-alive connections, one per destination.
  const conns = Math.min(n, 5000);
  const child = fork(process.argv[1]!, ["serve"], {
    execArgv: process.execArgv.filter((a) => a !== "--expose-gc"),
  });
  const ports = await new Promise<number[]>((r) => child.once("message", (m) => r(m as number[])));
  const pool = connectionPool({
    keepAlive: true,
    maxAgeMs: 600_000,
    maxIdlePerKey: 16,
    idleTimeoutMs: 600_000,
  });
  h0 = heap();
  for (let i = 0; i < conns; i += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, conns - i) }, (_, j) => {
        const k = i + j;
        const address = `127.0.7.${(k % 50) + 1}`;
        const port = ports[Math.floor(k / 50) % 100]!;
        return httpProbe(
          { type: "http", port, path: "/" },
          { address, host: address, port, signal: new ProbeSignal() },
          { pool, resolveAllowed: async () => ({ address }) },
        );
      }),
    );
  }
  const idle = pool.idle;
  const connPer = (heap() - h0) / conns;
  pool.destroy();
  child.kill();

  report(
    "memory-parts",
    [
      { name: "informer cache per ServiceInstance", value: Math.round(cachePer), unit: "B" },
      { name: "probe target spec per instance (instanceTarget)", value: Math.round(targetPer), unit: "B" },
      { name: "engine per target", value: Math.round(enginePer), unit: "B" },
      { name: "pool per idle connection", value: Math.round(connPer), unit: "B" },
      { name: "idle connections", value: idle, unit: "" },
    ],
    {
      count: n,
      connections: conns,
      method: "V8 heap used after two full GCs, before and after, divided by the count",
    },
  );
}
