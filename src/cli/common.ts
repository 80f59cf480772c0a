/** What the CLI commands share: errors with exit codes, flag parsing, cluster access checks. */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
// Not the package root: it loads every generated API and model (src/kube/lean-client-node.ts).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { ApiError, kubeClient, RequestTimeoutError } from "../kube/index.ts";

export class CliError extends Error {
  readonly exitCode: number;
  readonly usage?: string;
  constructor(message: string, options: { exitCode?: number; usage?: string } = {}) {
    super(message);
    this.exitCode = options.exitCode ?? 1;
    this.usage = options.usage;
  }
}

/** The usage text of a command; `text` is either a whole usage text or just the synopsis after the name. */
export function usage(command: string, text: string): string {
  const full = text.startsWith("Usage:") ? text : `Usage: roster ${command} ${text}`;
  return full.endsWith("\n") ? full : `${full}\n`;
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

const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/**
 * A KubeConfig from --kubeconfig, $KUBECONFIG, ~/.kube/config or the pod's
 * service account, in that order. client-node's loadFromDefault() falls back
 * to http://localhost:8080 when it finds none of them, which would surface
 * later as a baffling "unreachable" error: here it is a clear one instead.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  const env = process.env.KUBECONFIG;
  const home = process.env.HOME || homedir();
  const homeConfig = home ? join(home, ".kube", "config") : undefined;
  let source: string;
  try {
    if (path) {
      source = `--kubeconfig ${path}`;
      kc.loadFromFile(path);
    } else if (env) {
      source = `KUBECONFIG=${env}`;
      kc.loadFromDefault();
    } else if (homeConfig && existsSync(homeConfig)) {
      source = homeConfig;
      kc.loadFromFile(homeConfig);
    } else if (process.env.KUBERNETES_SERVICE_HOST && existsSync(serviceAccountToken)) {
      source = "the pod's service account";
      kc.loadFromCluster();
    } else {
      throw new CliError(
        `no kubeconfig: KUBECONFIG is not set, ${homeConfig ?? "~/.kube/config"} does not exist and this is not a pod. ` +
          "Set KUBECONFIG or pass --kubeconfig (for a local cluster: `make run` or `roster dev`)",
      );
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    const hint = path ? "" : " (set KUBECONFIG or pass --kubeconfig)";
    throw new CliError(`cannot load the kubeconfig from ${source!}: ${(err as Error).message}${hint}`);
  }
  if (!kc.getCurrentCluster()) {
    throw new CliError(
      `the kubeconfig from ${source} has no current cluster (current-context: ${JSON.stringify(kc.getCurrentContext())}): ` +
        "set KUBECONFIG or pass --kubeconfig (for a local cluster, `make run` or `roster dev`)",
    );
  }
  return kc;
}

/** The innermost cause of a transport error: "connect ECONNREFUSED 127.0.0.1:1" rather than "fetch failed". */
export function rootMessage(err: unknown): string {
  let e = err;
  const seen = new Set<unknown>();
  while (e instanceof Error && e.cause !== undefined && !seen.has(e.cause)) {
    seen.add(e);
    e = e.cause;
  }
  if (e instanceof AggregateError && e.errors.length) e = e.errors[0];
  return e instanceof Error ? e.message : String(e);
}

/** Answers worth retrying: throttling and an API server (or a new CRD's storage) still starting. */
export function isTransient(err: unknown): boolean {
  return (
    (err instanceof ApiError && [429, 503, 504].includes(err.status)) || err instanceof RequestTimeoutError
  );
}

/** Runs `fn`, retrying transient API errors (see isTransient) for up to `timeoutMs`. */
export async function retryTransient<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || Date.now() + delay > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Fails with an actionable message when the cluster is unreachable or Roster's CRDs are missing. */
export async function checkCluster(kc: KubeConfig, timeoutMs = 10_000): Promise<void> {
  await checkReachable(kc, timeoutMs);
  await checkCrds(kc);
}

/** Fails with an actionable message when the cluster does not answer or refuses the credentials. */
export async function checkReachable(kc: KubeConfig, timeoutMs = 10_000): Promise<void> {
  const client = kubeClient(kc);
  const server = kc.getCurrentCluster()?.server;
  const context = kc.getCurrentContext();
  try {
    await retryTransient(
      () => client.request({ method: "GET", path: "/version", signal: AbortSignal.timeout(timeoutMs) }),
      timeoutMs,
    );
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      throw new CliError(
        `cluster ${server} (context ${context}) refused the kubeconfig's credentials: ${err.message}`,
      );
    }
    throw new CliError(
      `cluster ${server} (context ${context}) is unreachable: ${rootMessage(err)}. ` +
        "Is it running, and is KUBECONFIG (or --kubeconfig) pointing at the right cluster?",
    );
  }
}

/** Fails with the command that fixes it when Roster's CRDs are not served. */
export async function checkCrds(kc: KubeConfig): Promise<void> {
  const client = kubeClient(kc);
  const server = kc.getCurrentCluster()?.server;
  const fix = `run \`roster crds | kubectl apply --server-side -f -\` (or install the Helm chart)`;
  let served: { resources?: { name: string }[] };
  try {
    served = await retryTransient(() =>
      client.request<{ resources?: { name: string }[] }>({
        method: "GET",
        path: "/apis/roster.dev/v1alpha1",
      }),
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      throw new CliError(`Roster's CRDs are not installed in ${server}: ${fix}`);
    }
    throw new CliError(`cannot read the roster.dev API of ${server}: ${rootMessage(err)}`);
  }
  const missing = ["serviceinstances", "discoverypolicies"].filter(
    (r) => !served.resources?.some((x) => x.name === r),
  );
  if (missing.length) {
    throw new CliError(`Roster's CRDs are incomplete in ${server} (${missing.join(", ")} missing): ${fix}`);
  }
}
