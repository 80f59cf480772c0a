/** What the CLI commands share: errors with exit codes, flag parsing, cluster access checks. */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { kubeClient } from "../kube/index.ts";

export class CliError extends Error {
  readonly exitCode: number;
  readonly usage?: string;
  constructor(message: string, options: { exitCode?: number; usage?: string } = {}) {
    super(message);
    this.exitCode = options.exitCode ?? 1;
    this.usage = options.usage;
  }
}

export function usage(command: string, text: string): string {
  return `Usage: roster ${command} ${text}\n`;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs with `--help` and usage errors turned into CliErrors. */
export function flags<O extends Options>(args: string[], options: O, usageText: string) {
  try {
    const parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if ((parsed.values as Record<string, unknown>).help) {
      process.stdout.write(usageText);
      process.exit(0);
    }
    return parsed;
  } catch (err) {
    throw new CliError((err as Error).message, { exitCode: 2, usage: usageText });
  }
}

/** A KubeConfig from --kubeconfig, $KUBECONFIG, ~/.kube/config or the pod's service account. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new CliError(`cannot load the kubeconfig${path ? ` ${path}` : ""}: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster()) {
    throw new CliError(
      "no cluster configured: set KUBECONFIG or pass --kubeconfig (for a local cluster, `make run` or `roster dev`)",
    );
  }
  return kc;
}

/** Fails with an actionable message when the cluster is unreachable or Roster's CRDs are missing. */
export async function checkCluster(kc: KubeConfig): Promise<void> {
  const client = kubeClient(kc);
  const server = kc.getCurrentCluster()?.server;
  try {
    await client.request({ method: "GET", path: "/version" });
  } catch (err) {
    throw new CliError(`cluster ${server} is unreachable: ${(err as Error).message}`);
  }
  try {
    await client.request({ method: "GET", path: "/apis/roster.dev/v1alpha1" });
  } catch {
    throw new CliError(
      `Roster's CRDs are not installed in ${server}: run \`roster crds | kubectl apply --server-side -f -\` (or install the Helm chart)`,
    );
  }
}
