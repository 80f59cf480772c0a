/**
 * The peer of `bench/removal.bench.ts`: a minimal prober like the Go
 * operators that retry back to back (issue 19), in a process of its own so
 * that it and Roster's operator each have their own event loop. Every target
 * is probed once per interval at a phase of its own (HTTP GET, keep-alive,
 * the timeout as deadline); after a failure of a ready target it retries at
 * once, back to back, until `failureThreshold` failures in a row (not ready)
 * or a success (ready again). A change is written at once, with no batching:
 * the whole EndpointSlice is replaced (one write in flight, a change during
 * it is written right after). Driven over IPC: `start`, `stats`, `stop`.
 */
import { Agent, request } from "node:http";
import { DiscoveryV1Api, KubeConfig, type V1EndpointSlice } from "@kubernetes/client-node";

export interface PeerTarget {
  /** Probed at http://host:port/path. */
  host: string;
  port: number;
  path: string;
  /** Published address. */
  address: string;
}

export interface PeerStart {
  op: "start";
  kubeconfig: string;
  namespace: string;
  /** The slice is `<service>-peer`, labelled for this Service name. */
  service: string;
  targets: PeerTarget[];
  intervalMs: number;
  timeoutMs: number;
  failureThreshold: number;
}

export type PeerRequest = PeerStart | { op: "stats" } | { op: "stop" };

export interface PeerStats {
  probes: number;
  writes: number;
  /** CPU time of this process (user + system). */
  cpuMicros: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const stats = { probes: 0, writes: 0 };
const timers = new Set<NodeJS.Timeout>();
let stopped = false;

function probe(t: PeerTarget, timeoutMs: number): Promise<boolean> {
  stats.probes++;
  return new Promise((done) => {
    const req = request({ host: t.host, port: t.port, path: t.path, agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => done(res.statusCode === 200));
      res.on("error", () => done(false));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => done(false));
    req.end();
  });
}

function start(req: PeerStart): void {
  const kc = new KubeConfig();
  kc.loadFromFile(req.kubeconfig);
  const api = kc.makeApiClient(DiscoveryV1Api);
  const ready = req.targets.map(() => true);
  const name = `${req.service}-peer`;
  const slice = (): V1EndpointSlice => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      labels: {
        "kubernetes.io/service-name": req.service,
        "endpointslice.kubernetes.io/managed-by": "retry-peer.bench",
      },
    },
    addressType: "IPv4",
    ports: [{ name: "http", port: 80, protocol: "TCP" }],
    endpoints: req.targets.map((t, i) => ({ addresses: [t.address], conditions: { ready: ready[i]! } })),
  });
  let writing = false;
  let dirty = false;
  const write = async (): Promise<void> => {
    if (writing) {
      dirty = true;
      return;
    }
    writing = true;
    try {
      do {
        dirty = false;
        stats.writes++;
        await api.replaceNamespacedEndpointSlice({ name, namespace: req.namespace, body: slice() });
      } while (dirty && !stopped);
    } catch (err) {
      console.error(`retry-peer: write failed: ${err}`);
    } finally {
      writing = false;
    }
  };
  const at = (ms: number, f: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      f();
    }, ms);
    timers.add(timer);
  };
  const loop = (i: number, phase: number) => {
    const t = req.targets[i]!;
    const next = () => {
      const now = Date.now();
      at(phase + Math.ceil((now - phase + 1) / req.intervalMs) * req.intervalMs - now, run);
    };
    const run = async () => {
      if (stopped) return;
      let ok = await probe(t, req.timeoutMs);
      // Not ready: one success turns it ready again. Ready: confirm a failure back to back.
      for (let failures = 1; !ok && ready[i] && failures < req.failureThreshold; failures++) {
        ok = await probe(t, req.timeoutMs);
      }
      if (ok !== ready[i]) {
        ready[i] = ok;
        void write();
      }
      next();
    };
    next();
  };
  void (async () => {
    await api.createNamespacedEndpointSlice({ namespace: req.namespace, body: slice() });
    for (let i = 0; i < req.targets.length; i++) loop(i, Math.floor(Math.random() * req.intervalMs));
  })().catch((err: unknown) => console.error(`retry-peer: start failed: ${err}`));
}

process.on("message", (m: { id: number; req: PeerRequest }) => {
  const reply = (value: unknown) => process.send!({ id: m.id, value });
  switch (m.req.op) {
    case "start":
      start(m.req);
      return reply(true);
    case "stats":
      return reply({ ...stats, cpuMicros: process.cpuUsage().user + process.cpuUsage().system });
    case "stop":
      stopped = true;
      for (const t of timers) clearTimeout(t);
      agent.destroy();
      reply(true);
      process.disconnect();
      return;
  }
});
process.send!({ ready: true });
