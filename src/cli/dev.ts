/**
 * `roster dev` (what `make run` does): a local control plane (unless a
 * kubeconfig is given), Roster's CRDs, real demo backends on loopback, their
 * ServiceInstances and DiscoveryPolicy, the operator, and a live view until
 * Ctrl-C, which stops everything it started.
 */
import { resolve } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { parseConfig } from "../config/index.ts";
import { installCrds } from "../dev/crds.ts";
import { type DemoBackends, demoNamespace, startDemoBackends } from "../dev/demo.ts";
import { repoRoot, type Sandbox, startSandbox } from "../dev/sandbox.ts";
import { applier, createLogger, isAlreadyExists, kubeClient } from "../kube/index.ts";
import { rosterResources } from "../operator/context.ts";
import { createOperator, type Operator } from "../operator/operator.ts";
import { operatorSettings } from "../operator/settings.ts";
import { CliError, checkReachable, flags, loadKubeConfig, retryTransient } from "./common.ts";
import { fetchView } from "./status.ts";
import { renderView, type ServiceView } from "./table.ts";

const USAGE = `Usage: roster dev [--once [--timeout SECONDS]] [--no-tty] [--dir DIR | --kubeconfig PATH]

Starts a local Kubernetes control plane (bin/roster-sandbox), installs Roster's CRDs, starts
demo backends on loopback, registers them, runs the operator and shows a live view of services
and instances until Ctrl-C, which stops everything it started.

  --dir DIR          data directory of the local control plane (default .sandbox/dev); reusing
                     one keeps its data, certificates and ports
  --kubeconfig PATH  use this cluster instead of a local one (also: $KUBECONFIG)
  --once             exit once the demo reached its expected state (exit 1 on timeout)
  --timeout S        with --once, give up after S seconds (default 60)
  --no-tty           plain output: no screen redraws
`;

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
      dir: { type: "string" },
      kubeconfig: { type: "string" },
    },
    USAGE,
  );
  if (values.dir && values.kubeconfig) {
    throw new CliError("--dir and --kubeconfig exclude each other", { exitCode: 2, usage: USAGE });
  }
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new CliError("--timeout must be a positive number of seconds", { exitCode: 2 });
  const tty = process.stdout.isTTY && !values["no-tty"];
  let sandbox: Sandbox | undefined;
  let backends: DemoBackends | undefined;
  let operator: Operator | undefined;
  const stopAll = async () => {
    await operator?.stop();
    await backends?.stop();
    await sandbox?.stop();
  };
  try {
    let kc: KubeConfig;
    // --dir asks for the local control plane, even with $KUBECONFIG set.
    if (values.kubeconfig || (process.env.KUBECONFIG && !values.dir)) {
      kc = loadKubeConfig(values.kubeconfig);
      await checkReachable(kc);
    } else {
      console.log("Starting the local control plane (bin/roster-sandbox)...");
      sandbox = await startSandbox({ dir: resolve(values.dir ?? resolve(repoRoot, ".sandbox/dev")) });
      kc = new KubeConfig();
      kc.loadFromFile(sandbox.kubeconfigPath);
      console.log(`  ready in ${sandbox.startSeconds.toFixed(1)}s at ${sandbox.server}`);
    }
    await installCrds(kc);
    const client = kubeClient(kc);
    await client
      .request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: demoNamespace } } })
      .catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
    backends = await startDemoBackends();
    const apply = applier(client, "roster-demo");
    for (const m of backends.manifests) {
      const type =
        m.kind === "DiscoveryPolicy" ? rosterResources.discoveryPolicies : rosterResources.serviceInstances;
      // A CRD that was just established may still answer 429 ("storage is (re)initializing").
      await retryTransient(() => apply.apply(type, m, { force: true }));
    }

    const config = parseConfig("");
    operator = createOperator({
      kubeConfig: kc,
      namespaces: [demoNamespace],
      settings: operatorSettings(config),
      // The demo backends listen on loopback.
      probing: { destinations: { allowLoopback: true } },
      leaderElection: { enabled: false, namespace: demoNamespace, name: "roster-demo" },
      healthPort: 0,
      metricsPort: 0,
      concurrency: { default: 4 },
      logger: createLogger({ level: "warn", name: "roster" }),
    });
    await operator.start();
    const ports = operator.manager.ports();
    const kubeconfigPath = values.kubeconfig ?? process.env.KUBECONFIG ?? sandbox?.kubeconfigPath;
    const header = [
      `Roster demo in namespace ${demoNamespace}. In another terminal:`,
      `  export KUBECONFIG=${kubeconfigPath}`,
      `  kubectl get si,dp -n ${demoNamespace}; kubectl get endpointslices,configmaps -n ${demoNamespace}`,
      `  metrics: http://127.0.0.1:${ports.metrics}/metrics   health: http://127.0.0.1:${ports.health}/readyz`,
      "",
    ].join("\n");
    console.log(header);

    const deadline = Date.now() + timeoutS * 1000;
    let stopped = false;
    const onSignal = () => {
      stopped = true;
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    while (!stopped) {
      const views = await fetchView(client, demoNamespace);
      if (values.once) {
        if (demoSettled(views) || Date.now() > deadline) {
          process.stdout.write(renderView(views));
          const ok = demoSettled(views);
          if (!ok) console.error("roster dev: the demo did not reach its expected state in time");
          return ok ? 0 : 1;
        }
      } else if (tty) {
        process.stdout.write(
          `\x1b[2J\x1b[H${header}\n${renderView(views, { color: true })}\n(Ctrl-C stops everything)\n`,
        );
      } else {
        process.stdout.write(`--- ${new Date().toISOString()}\n${renderView(views)}`);
      }
      await new Promise((r) => setTimeout(r, values.once ? 250 : 1000));
    }
    console.log("\nStopping the operator, the demo backends and the local control plane...");
    return 0;
  } finally {
    await stopAll();
  }
}
