// The control plane restarts under live traffic, through the real data plane.
// A consumer in the node namespace resolves the Service through CoreDNS
// before every connection and connects through kube-proxy while
// - the operator (`roster run`, a real process) is SIGKILLed and started
//   again, and
// - the sandbox's API server is SIGKILLed and started again on the same data
//   (a private sandbox; its data plane runs as its own process, so kube-proxy
//   and CoreDNS keep their state and reconnect).
// Every lookup answers and every connection is served by a healthy backend:
// no consumer ever sees an empty set. Afterwards the restarted pieces publish
// a change (the failing backend turns healthy) and it gets traffic.
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import type { Backend, Consumer, TestHosts } from "../../../src/dev/testhosts.ts";
import { api, configFile, privateCluster, startOperatorOn, startReplica } from "../../faults/support.ts";
import type { RosterProcess } from "../../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import {
  canRunDataPlane,
  dataPlaneInstance,
  privateTestHosts,
  servedBy,
  tally,
  testHostDestinations,
  testHosts,
} from "../../support/dataplane.ts";

const PORT = 8080;
const http = [{ name: "http", port: PORT }];
/** Connections the consumer opens while a piece is down (at least). */
const WHILE_DOWN = 300;

type Api = ReturnType<typeof api>;

/** web-1..4 on test hosts; web-4 fails its health check. Waits for web-1..3 ready. */
async function fourBackends(hosts: TestHosts, k: Api, ns: string): Promise<Backend[]> {
  await k.createPolicy(ns, "web-policy", { service: "web" });
  const backends: Backend[] = [];
  for (let i = 0; i < 4; i++) {
    const host = await hosts.host();
    const b = await host.start({ id: `web-${i + 1}`, http: [PORT] });
    if (i === 3) b.setHealth("failing");
    backends.push(b);
    await k.createInstance(ns, `web-${i + 1}`, dataPlaneInstance(host, http));
  }
  return backends;
}

async function readySet(k: Api, ns: string, backends: readonly Backend[], what: string) {
  const want = backends
    .map((b) => b.host.ipv4)
    .sort()
    .join();
  await eventually(async () => ((await k.readyAddresses(ns, "web")).join() === want ? true : undefined), {
    timeoutMs: 30_000,
    what,
  });
}

function liveConsumer(hosts: TestHosts, ns: string): Consumer {
  return hosts.consumer({
    name: `web.${ns}.svc.cluster.local`,
    port: PORT,
    http: true,
    resolveEach: true,
    concurrency: 2,
    intervalMs: 5,
  });
}

/** Waits until the consumer has opened `n` more connections. */
const moreLines = (live: Consumer, n: number, what: string) => {
  const target = live.lines.length + n;
  return eventually(() => (live.lines.length >= target ? true : undefined), { timeoutMs: 60_000, what });
};

/**
 * Restarts a piece under traffic: every line from before `down()` to the end
 * must be a served connection by web-1..3 (then web-4 too, once it is
 * healthy and published again by the restarted control plane).
 */
async function underTraffic(
  t: TestContext,
  hosts: TestHosts,
  k: Api,
  ns: string,
  piece: string,
  down: () => Promise<void>,
  up: () => Promise<void>,
) {
  const backends = await fourBackends(hosts, k, ns);
  await readySet(k, ns, backends.slice(0, 3), "web-1..3 ready");
  const live = liveConsumer(hosts, ns);
  await servedBy(live, ["web-1", "web-2", "web-3"]);
  const from = live.lines.length;
  const downAt = Date.now();
  await down();
  await moreLines(live, WHILE_DOWN, `${WHILE_DOWN} connections while the ${piece} is down`);
  const whileDown = live.lines.length - from;
  await up();
  const upAt = Date.now();
  // The restarted control plane publishes a change, and traffic follows it.
  backends[3]!.setHealth("healthy");
  await readySet(k, ns, backends, "web-4 published by the restarted control plane");
  await servedBy(live, ["web-4"], 30_000);
  const healthyAt = live.lines.findIndex((l, i) => i >= from && l.id === "web-4");
  const lines = await live.stop();
  const during = tally(lines.slice(from, healthyAt));
  const after = tally(lines.slice(from));
  assert.deepEqual(
    during.errors,
    {},
    `every lookup answered and every connection served around the ${piece} restart`,
  );
  assert.deepEqual(
    Object.keys(during.byId).sort(),
    ["web-1", "web-2", "web-3"],
    "only and every healthy backend",
  );
  assert.deepEqual(after.errors, {});
  t.diagnostic(
    `${piece} down ${upAt - downAt} ms: ${during.served} connections (${whileDown} while down) all served ` +
      `by the healthy set ${JSON.stringify(during.byId)}, no failed lookup`,
  );
}

test("operator SIGKILLed and restarted: consumers keep reaching the healthy set", async (t) => {
  const hosts = await testHosts(t);
  if (!hosts) return;
  const { kc, kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, "dp");
  const { subnet4, subnet6 } = hosts.plane;
  const config = configFile(t, [
    "logLevel: info",
    `probing: { destinations: { allow: ["${subnet4}", "${subnet6}"] } }`,
    "publishing: { batchWindow: 10ms, startupHold: 10s }",
  ]);
  const start = async (): Promise<RosterProcess> => {
    const p = startReplica(t, {
      config,
      namespace: ns,
      kubeconfig: kubeconfigPath,
      args: ["--no-leader-elect"],
    });
    await p.waitForOutput(/"msg":"roster started"/, 30_000);
    return p;
  };
  let operator = await start();
  await underTraffic(
    t,
    hosts,
    api(kc),
    ns,
    "operator",
    async () => {
      operator.proc.kill("SIGKILL");
      assert.equal((await operator.exited).signal, "SIGKILL");
    },
    async () => {
      operator = await start();
    },
  );
});

test("API server SIGKILLed and restarted: consumers keep reaching the healthy set", async (t) => {
  if (!canRunDataPlane(t)) return;
  const cluster = await privateCluster(t);
  const hosts = await privateTestHosts(t, cluster.kubeconfigPath);
  const k = api(cluster.kc);
  const ns = "dp-restart";
  await k.createNamespace(ns);
  await startOperatorOn(t, cluster.kc, { namespaces: [ns], destinations: testHostDestinations(hosts.plane) });
  await underTraffic(
    t,
    hosts,
    k,
    ns,
    "API server",
    () => cluster.crash(),
    () => cluster.restart(),
  );
});
