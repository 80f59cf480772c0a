/**
 * `roster dev` (what `make run` does): a local control plane (unless a
 * kubeconfig is given), Roster's CRDs, real demo backends, their
 * ServiceInstances and DiscoveryPolicy, the operator, and a live view until
 * Ctrl-C, which stops everything it started.
 *
 * As root with network namespaces, the demo runs on the data plane
 * (src/dev/testhosts.ts): backends at real 198.18.x.y addresses, and a
 * traffic panel fed by a consumer in the node namespace that connects to
 * the shop's ClusterIP through CoreDNS and kube-proxy. Otherwise (or with
 * --loopback) it says why in one line and runs the backends on loopback.
 *
 * The operator serves xDS on loopback (any free port). On the data plane a
 * second consumer, the grpc-go xDS client (bin/roster-xds-client, `make
 * xds-client`), dials xds:///shop.roster-demo through it and calls the
 * shop's gRPC side; its RPCs per backend are the panel's XDS column.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { KubeConfig } from "@kubernetes/client-node";
import { parseConfig } from "../config/index.ts";
import { installCrds } from "../dev/crds.ts";
import {
  type DemoBackends,
  demoNamespace,
  shopGrpcPort,
  shopPort,
  startDataPlaneDemoBackends,
  startDemoBackends,
} from "../dev/demo.ts";
import { buildDemoImage, demoChartValues, helmBinary, installInCluster } from "../dev/incluster.ts";
import { repoRoot, type Sandbox, startSandbox } from "../dev/sandbox.ts";
import {
  type Consumer,
  type DataPlane,
  dataPlaneUnsupported,
  readDataPlane,
  startDataPlane,
  TestHosts,
} from "../dev/testhosts.ts";
import { applier, createLogger, isAlreadyExists, type KubeClient, kubeClient } from "../kube/index.ts";
import { rosterResources } from "../operator/context.ts";
import { createOperator } from "../operator/operator.ts";
import { operatorSettings } from "../operator/settings.ts";
import { CliError, checkReachable, flags, loadKubeConfig, retryTransient } from "./common.ts";
import { fetchView } from "./status.ts";
import { renderView, type ServiceView } from "./table.ts";
import {
  FAILED,
  kubeProxyRouting,
  RateMeter,
  renderTraffic,
  type SliceEndpoint,
  type TrafficPanel,
  trafficRows,
  trafficSettled,
} from "./traffic.ts";

const USAGE = `Usage: roster dev [--once [--timeout SECONDS]] [--no-tty] [--loopback | --in-cluster] [--dir DIR | --kubeconfig PATH]

Starts a local Kubernetes control plane (bin/roster-sandbox), installs Roster's CRDs, starts
demo backends, registers them, runs the operator and shows a live view of services and
instances until Ctrl-C, which stops everything it started.

As root with network namespaces (and ip, nft, bin/roster-coredns), the demo runs on a data
plane: backends at real 198.18.x.y addresses, kube-proxy and CoreDNS in a node namespace, and a
traffic panel counting the connections a consumer there opens to the shop's ClusterIP, per
backend. Otherwise the backends run on loopback and the view has no traffic panel.

  --dir DIR          data directory of the local control plane (default .sandbox/dev); reusing
                     one keeps its data, certificates and ports
  --kubeconfig PATH  use this cluster instead of a local one (also: $KUBECONFIG); the data
                     plane is used when one runs for it (bin/roster-sandbox --data-plane)
  --loopback         the loopback demo even where the data plane could run
  --in-cluster       the operator as pods, installed by Helm (bin/helm, charts/roster) on a
                     sandbox node running the image built offline (.cache/image/roster-oci.tar):
                     the real install path (data in .sandbox/dev-node by default). Needs root
                     and the node's tools (make node-deps)
  --once             exit once the demo reached its expected state (exit 1 on timeout)
  --timeout S        with --once, give up after S seconds (default 60)
  --no-tty           plain output: no screen redraws
`;

/** The zone of the demo's own data-plane node: shop-3, -4 and -5 are there, so their traffic shows. */
export const demoNodeZone = "zone-b";
/** The traffic panel's window: rates are connections per second over the last 2 s. */
const trafficWindowMs = 2000;

/** The state the demo settles in (shop-5 flaps, so it is not checked). */
export function demoSettled(views: readonly ServiceView[]): boolean {
  const inst = new Map(views.flatMap((v) => v.instances.map((i) => [i.name, i] as const)));
  const shop = views.find((v) => v.service === "shop");
  return (
    ["shop-1", "shop-2", "shop-3", "inventory-1"].every((n) => inst.get(n)?.healthy === true) &&
    inst.get("shop-4")?.healthy === false &&
    inst.get("inventory-2")?.reason === "Draining" &&
    shop?.revision !== undefined
  );
}

export async function dev(args: string[]): Promise<number> {
  const { values } = flags(
    args,
    {
      once: { type: "boolean" },
      timeout: { type: "string", default: "60" },
      "no-tty": { type: "boolean" },
      loopback: { type: "boolean" },
      "in-cluster": { type: "boolean" },
      dir: { type: "string" },
      kubeconfig: { type: "string" },
    },
    USAGE,
  );
  if (values.dir && values.kubeconfig) {
    throw new CliError("--dir and --kubeconfig exclude each other", { exitCode: 2, usage: USAGE });
  }
  const inCluster = values["in-cluster"] === true;
  if (inCluster && (values.kubeconfig || values.loopback)) {
    throw new CliError("--in-cluster runs on its own sandbox node: no --kubeconfig or --loopback", {
      exitCode: 2,
      usage: USAGE,
    });
  }
  if (inCluster) {
    const reason = inClusterUnsupported();
    if (reason) {
      console.error(`roster dev --in-cluster: ${reason}`);
      return 1;
    }
  }
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new CliError("--timeout must be a positive number of seconds", { exitCode: 2 });
  const tty = process.stdout.isTTY && !values["no-tty"];
  let sandbox: Sandbox | undefined;
  let dataPlane: { stop(): Promise<void> } | undefined;
  let backends: DemoBackends | undefined;
  let operator: DemoOperator | undefined;
  let traffic: TrafficFeed | undefined;
  // In this order: nothing probes or dials a test host after its namespace
  // and routes are gone (the sandbox and data plane are in process groups of
  // their own, so a Ctrl-C does not stop them first).
  const stopAll = async () => {
    await traffic?.stop();
    await operator?.stop();
    await backends?.stop();
    await dataPlane?.stop();
    await sandbox?.stop();
  };
  try {
    let kc: KubeConfig;
    // --dir asks for the local control plane, even with $KUBECONFIG set.
    if (!inCluster && (values.kubeconfig || (process.env.KUBECONFIG && !values.dir))) {
      kc = loadKubeConfig(values.kubeconfig);
      await checkReachable(kc);
    } else {
      let nodeImage: string | undefined;
      if (inCluster) {
        console.log("Building the operator image offline (.cache/image/roster-oci.tar)...");
        const image = await buildDemoImage();
        if (image.reused) console.log("  reused: built from this commit");
        nodeImage = image.archive;
      }
      console.log(
        `Starting the local control plane (bin/roster-sandbox${inCluster ? " --node, with the image" : ""})...`,
      );
      sandbox = await startSandbox({
        dir: resolve(values.dir ?? resolve(repoRoot, inCluster ? ".sandbox/dev-node" : ".sandbox/dev")),
        ...(nodeImage ? { node: true, nodeImages: [nodeImage], readyTimeoutMs: 300_000 } : {}),
      });
      kc = new KubeConfig();
      kc.loadFromFile(sandbox.kubeconfigPath);
      console.log(`  ready in ${sandbox.startSeconds.toFixed(1)}s at ${sandbox.server}`);
    }
    const kubeconfigPath = inCluster
      ? sandbox?.kubeconfigPath
      : (values.kubeconfig ?? process.env.KUBECONFIG ?? sandbox?.kubeconfigPath);
    let plane: DataPlane | undefined;
    let noPlane = values.loopback ? "--loopback" : dataPlaneUnsupported();
    if (inCluster && sandbox) {
      // The node's sandbox runs its own data plane (zone-a): read it.
      plane = readDataPlane(sandbox.kubeconfigPath);
      if (!plane) throw new Error("the node's sandbox runs no data plane");
      noPlane = undefined;
      console.log(`  node ${plane.node} (${plane.zone}), test hosts in ${plane.subnet4}`);
    } else if (!noPlane && sandbox) {
      console.log("Starting the data plane (node namespace with kube-proxy and CoreDNS)...");
      const started = await startDataPlane(sandbox.kubeconfigPath, { zone: demoNodeZone });
      dataPlane = started;
      plane = started.plane;
      console.log(`  node ${plane.node} (${plane.zone}), test hosts in ${plane.subnet4}`);
    } else if (!noPlane) {
      plane = kubeconfigPath ? readDataPlane(kubeconfigPath) : undefined;
      if (!plane)
        noPlane = "no data plane runs for this cluster (bin/roster-sandbox --data-plane starts one)";
    }
    if (noPlane) console.log(`No data plane (${noPlane}): demo backends on loopback, no traffic panel.`);
    await installCrds(kc);
    const client = kubeClient(kc);
    await client
      .request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: demoNamespace } } })
      .catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
    const hosts = plane ? TestHosts.open(plane) : undefined;
    backends = hosts ? await startDataPlaneDemoBackends(hosts) : await startDemoBackends();
    const apply = applier(client, "roster-demo");
    for (const m of backends.manifests) {
      const type =
        m.kind === "DiscoveryPolicy" ? rosterResources.discoveryPolicies : rosterResources.serviceInstances;
      // A CRD that was just established may still answer 429 ("storage is (re)initializing").
      await retryTransient(() => apply.apply(type, m, { force: true }));
    }

    // Probes go to the data plane's test hosts only, or to the loopback backends.
    const destinations = plane ? { allow: [plane.subnet4, plane.subnet6] } : { allowLoopback: true };
    if (inCluster && kubeconfigPath)
      console.log("Installing the operator with Helm (bin/helm, charts/roster)...");
    operator =
      inCluster && kubeconfigPath && plane
        ? await inClusterOperator(client, kubeconfigPath, [plane.subnet4, plane.subnet6])
        : await inProcessOperator(kc, destinations);
    const header = [
      `Roster demo in namespace ${demoNamespace}. In another terminal:`,
      `  export KUBECONFIG=${kubeconfigPath}`,
      `  kubectl get si,dp -n ${demoNamespace}; kubectl get endpointslices,configmaps -n ${demoNamespace}`,
      ...operator.header,
      ...(plane
        ? [
            "  the shop by DNS name through CoreDNS and kube-proxy, from the node namespace (as root):",
            `  ${curlCommand(plane)}`,
          ]
        : []),
      "",
    ].join("\n");
    console.log(header);

    const deadline = Date.now() + timeoutS * 1000;
    let stopped = false;
    let wake = () => {};
    const onSignal = () => {
      stopped = true;
      wake();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    if (hosts && plane) traffic = trafficFeed(client, hosts, plane, operator.xdsPort);
    while (!stopped) {
      const views = await fetchView(client, demoNamespace);
      const panel = await traffic?.panel(views);
      const render = (color: boolean) =>
        `${renderView(views, { color })}${panel ? `\n${renderTraffic(panel, { color })}` : ""}`;
      if (values.once) {
        const settled = () => demoSettled(views) && (!traffic || trafficSettled(panel));
        if (settled() || Date.now() > deadline) {
          process.stdout.write(render(false));
          const ok = settled();
          if (!ok) console.error("roster dev: the demo did not reach its expected state in time");
          return ok ? 0 : 1;
        }
      } else if (tty) {
        process.stdout.write(`\x1b[2J\x1b[H${header}\n${render(true)}\n(Ctrl-C stops everything)\n`);
      } else {
        process.stdout.write(`--- ${new Date().toISOString()}\n${render(false)}`);
      }
      // A signal ends the wait: everything stops in order at once.
      await new Promise<void>((r) => {
        const timer = setTimeout(r, values.once ? 250 : 1000);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
    console.log(
      `\nStopping the operator${inCluster ? " (helm uninstall)" : ""}, the demo backends${plane ? ", the data plane" : ""} and the local control plane${inCluster ? " with its node" : ""}...`,
    );
    return 0;
  } finally {
    await stopAll();
  }
}

/**
 * The demo's operator, however it runs: everything else (sandbox, demo
 * objects, view, traffic panel) is the same for both modes.
 */
interface DemoOperator {
  /** Header lines saying where the operator runs and how to reach it. */
  header: string[];
  /** The xDS server on loopback, for the xDS consumer (in-process only). */
  xdsPort?: number;
  stop(): Promise<void>;
}

/** The operator in this process (`roster dev`'s default). */
async function inProcessOperator(
  kc: KubeConfig,
  destinations: { allow?: string[]; allowLoopback?: boolean },
): Promise<DemoOperator> {
  const config = parseConfig("");
  const operator = createOperator({
    kubeConfig: kc,
    namespaces: [demoNamespace],
    settings: operatorSettings(config),
    probing: { destinations },
    leaderElection: { enabled: false, namespace: demoNamespace, name: "roster-demo" },
    healthPort: 0,
    metricsPort: 0,
    // The xDS consumer's server (every replica serves; here the only one).
    xds: { enabled: true, port: 0, bindAddress: "127.0.0.1" },
    concurrency: { default: 4 },
    logger: createLogger({ level: "warn", name: "roster" }),
  });
  await operator.start();
  const ports = operator.manager.ports();
  const xdsPort = operator.xds?.port();
  return {
    header: [
      `  metrics: http://127.0.0.1:${ports.metrics}/metrics   health: http://127.0.0.1:${ports.health}/readyz`,
      `  xDS (ADS): 127.0.0.1:${xdsPort}, e.g. gRPC target xds:///shop.${demoNamespace}`,
    ],
    ...(xdsPort !== undefined ? { xdsPort } : {}),
    stop: () => operator.stop(),
  };
}

/**
 * The operator as pods on the sandbox's node, installed by Helm with the
 * in-process operator's configuration as chart values (src/dev/incluster.ts).
 */
async function inClusterOperator(
  client: KubeClient,
  kubeconfig: string,
  allow: string[],
): Promise<DemoOperator> {
  const op = await installInCluster(client, { kubeconfig, values: demoChartValues(demoNamespace, allow) });
  return {
    header: [
      `  the operator runs as pods ${op.pods.join(", ")} (Ready), installed by Helm: release ${op.release} in namespace ${op.namespace}`,
      `  kubectl get pods -n ${op.namespace}; bin/helm status ${op.release} -n ${op.namespace}`,
    ],
    stop: () => op.stop(),
  };
}

/** Why `roster dev --in-cluster` cannot run here, or undefined when it can. */
function inClusterUnsupported(): string | undefined {
  const plane = dataPlaneUnsupported();
  if (plane) return `${plane}; the sandbox node runs on it`;
  if (!existsSync(helmBinary)) return "bin/helm is missing (`make helm`)";
  if (!existsSync(resolve(repoRoot, "bin/roster-pause")))
    return "bin/roster-pause is missing (`make node-images`)";
  for (const tool of ["containerd", "ctr", "runc", "nsenter"]) {
    if (!process.env.PATH?.split(":").some((d) => d && existsSync(join(d, tool))))
      return `the sandbox node needs \`${tool}\` (\`make node-deps\`)`;
  }
  if (!existsSync("/usr/lib/cni/bridge"))
    return "the sandbox node needs the CNI plugins in /usr/lib/cni (`make node-deps`)";
  return undefined;
}

/** The copy-paste command the demo prints: the shop by DNS name from the node namespace. */
export function curlCommand(plane: Pick<DataPlane, "node">): string {
  return `ip netns exec ${plane.node} curl http://shop.${demoNamespace}.svc.cluster.local:${shopPort}/`;
}

interface TrafficFeed {
  /** The panel now, for the shop's instances in `views`. */
  panel(views: readonly ServiceView[]): Promise<TrafficPanel>;
  stop(): Promise<void>;
}

/**
 * The traffic panel's source: a consumer in the node namespace opening new
 * connections to the shop by DNS name (about 50 a second), each answered by
 * the backend that served it, and the shop's EndpointSlices read at each
 * refresh to say what kube-proxy should do. The consumer starts once the
 * shop's slices exist (its name resolves from then on) and again if it
 * exits (the name did not resolve yet).
 */
function trafficFeed(
  client: KubeClient,
  hosts: TestHosts,
  plane: DataPlane,
  xdsPort: number | undefined,
): TrafficFeed {
  const name = `shop.${demoNamespace}.svc.cluster.local`;
  const xds = xdsPort !== undefined && existsSync(XDS_CLIENT) ? xdsFeed(xdsPort) : undefined;
  let consumer: Consumer | undefined;
  let meter: RateMeter | undefined;
  let clusterIP: string | undefined;
  const start = () => {
    const m = new RateMeter(trafficWindowMs, Date.now());
    const c = hosts.consumer({
      name,
      port: shopPort,
      http: true,
      concurrency: 2,
      intervalMs: 40,
      onLine: (l) => {
        if (l.resolved !== undefined) clusterIP = l.resolved;
        else if (l.dnsErr === undefined) m.add(l.t, l.id ?? FAILED);
      },
    });
    c.done.catch(() => {
      if (consumer === c) consumer = undefined;
    });
    consumer = c;
    meter = m;
  };
  return {
    async panel(views) {
      const slices = await retryTransient(() =>
        client.request<{ items: { endpoints?: SliceEndpoint[] | null }[] }>({
          method: "GET",
          path: `/apis/discovery.k8s.io/v1/namespaces/${demoNamespace}/endpointslices`,
          query: { labelSelector: "kubernetes.io/service-name=shop" },
        }),
      );
      if (!consumer && slices.items.length > 0) start();
      const now = Date.now();
      const rates = meter?.rates(now) ?? new Map<string, number>();
      const routing = kubeProxyRouting(
        slices.items.flatMap((s) => s.endpoints ?? []),
        plane.zone,
      );
      const instances = views.find((v) => v.service === "shop")?.instances ?? [];
      // The xDS client names backends by address:port; the rows by instance.
      const xdsRates = xds && new Map<string, number>();
      const xdsByAddress = xds?.meter.rates(now);
      if (xdsRates && xdsByAddress) {
        for (const i of instances) {
          const r = xdsByAddress.get(`${i.address}:${shopGrpcPort}`);
          if (r !== undefined) xdsRates.set(i.name, r);
        }
      }
      return {
        target: `${name}:${shopPort}`,
        ...(clusterIP ? { clusterIP } : {}),
        node: plane.node,
        nodeZone: plane.zone,
        windowMs: trafficWindowMs,
        rows: trafficRows(instances, routing, rates, xdsRates),
        failed: rates.get(FAILED) ?? 0,
        complete: meter?.complete(now) ?? false,
        ...(xds && xdsByAddress
          ? {
              xds: {
                target: xds.target,
                failed: xdsByAddress.get(FAILED) ?? 0,
                complete: xds.meter.complete(now),
              },
            }
          : {}),
      };
    },
    async stop() {
      xds?.stop();
      await consumer?.stop().catch(() => undefined);
    },
  };
}

const XDS_CLIENT = resolve(repoRoot, "bin/roster-xds-client");

/**
 * The xDS consumer: bin/roster-xds-client (grpc-go) dialing
 * xds:///shop.roster-demo with a bootstrap naming the operator's xDS server,
 * asked for 10 RPCs at a time in a loop (about as many RPCs a second as the
 * DNS consumer opens connections); each answer counts for the backend
 * (address:port) that served it, each failure for FAILED.
 */
function xdsFeed(xdsPort: number): { target: string; meter: RateMeter; stop(): void } {
  const target = `xds:///shop.${demoNamespace}`;
  const meter = new RateMeter(trafficWindowMs, Date.now());
  const bootstrap = JSON.stringify({
    xds_servers: [
      {
        server_uri: `127.0.0.1:${xdsPort}`,
        channel_creds: [{ type: "insecure" }],
        server_features: ["xds_v3"],
      },
    ],
    node: { id: "roster-demo/xds-consumer", locality: {} },
  });
  let stopped = false;
  const child: ChildProcessWithoutNullStreams = spawn(XDS_CLIENT, ["-target", target, "-timeout", "1s"], {
    env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stderr.resume(); // grpc-go's logs: not the demo's
  child.stdin.on("error", () => undefined);
  const ask = () => {
    if (!stopped) setTimeout(() => child.stdin.write("rpcs 10\n"), 150);
  };
  createInterface({ input: child.stdout }).on("line", (line) => {
    const t = Date.now();
    try {
      const r = JSON.parse(line) as { counts?: Record<string, number>; errors?: Record<string, number> };
      for (const [backend, n] of Object.entries(r.counts ?? {}))
        for (let k = 0; k < n; k++) meter.add(t, backend);
      for (const n of Object.values(r.errors ?? {})) for (let k = 0; k < n; k++) meter.add(t, FAILED);
    } catch {} // not a result line
    ask();
  });
  ask();
  return {
    target,
    meter,
    stop() {
      stopped = true;
      child.stdin.end("quit\n");
      child.kill();
    },
  };
}
