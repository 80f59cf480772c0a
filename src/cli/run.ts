/** `roster run`: the operator. */
import { getHeapStatistics } from "node:v8";
import {
  ConfigError,
  loadConfig,
  managerOptions,
  type OperatorConfig,
  parseConfig,
  watchConfig,
} from "../config/index.ts";
import { applyConfigChange } from "../config/runtime.ts";
import { LogLevel as LogLevelSchema } from "../config/schema.ts";
import { ApiError, createLogger, type LogLevel } from "../kube/index.ts";
import { createOperator } from "../operator/operator.ts";
import { operatorSettings, probingOptions, shardingOptions, xdsOptions } from "../operator/settings.ts";
import { CliError, checkCluster, flags, loadKubeConfig } from "./common.ts";

const USAGE = `Usage: roster run [flags]

Runs the operator against the cluster of the kubeconfig (or in-cluster).

Flags:
  --kubeconfig PATH      kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  --config PATH          operator config file (YAML); hot-reloaded when it changes
  -n, --namespace NS     watch only this namespace (repeatable; default: the config's, else all)
  --[no-]leader-elect    leader election (default: the config's, on)
  --metrics-port N       /metrics port (default 8080)
  --health-port N        /healthz and /readyz port (default 8081)
  --log-level LEVEL      trace|debug|info|warn|error|fatal|silent (default: the config's, info)
`;

/** How long running reconciles may take to finish after SIGTERM (the controllers' graceful stop). */
export const CONTROLLER_STOP_MS = 15_000;

/**
 * Bound on the whole shutdown after SIGTERM, whatever state the process is
 * in: longer than the controllers' graceful stop plus releasing the lease and
 * closing informers, so a normal shutdown is never cut short, and shorter
 * than the Helm chart's terminationGracePeriodSeconds (30 s), so the process
 * ends on its own, lease released, before the kubelet's SIGKILL.
 */
export const SHUTDOWN_TIMEOUT_MS = 25_000;

/**
 * Runs `stop` and resolves `"stopped"` when it finishes, `"timeout"` when it
 * takes longer than `timeoutMs`, or the value of `interrupt` (a second
 * signal) if that comes first. A failing `stop` counts as stopped: there is
 * nothing left to wait for.
 */
export async function stopWithin(
  stop: () => Promise<void>,
  timeoutMs: number,
  interrupt?: Promise<string>,
): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    return await Promise.race([
      stop().then(
        () => "stopped",
        () => "stopped",
      ),
      timeout,
      ...(interrupt ? [interrupt] : []),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Bound on stopping what a failed start-up had started (servers, informers). */
const STARTUP_TEARDOWN_MS = 5000;

/** SIGTERM and SIGINT, in order: each `next()` resolves with the next signal's name. */
function signalQueue(): { next(): Promise<string>; dispose(): void } {
  const waiting: ((signal: string) => void)[] = [];
  const received: string[] = [];
  const on = (signal: NodeJS.Signals) => {
    const waiter = waiting.shift();
    if (waiter) waiter(signal);
    else received.push(signal);
  };
  process.on("SIGTERM", on);
  process.on("SIGINT", on);
  return {
    next: () =>
      new Promise<string>((resolve) => {
        const signal = received.shift();
        if (signal) resolve(signal);
        else waiting.push(resolve);
      }),
    dispose() {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
    },
  };
}

/** One line saying why the operator could not start, and what fixes it when that is known. */
export function startupMessage(err: unknown): string {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    return (
      `the API server refused the operator's requests (${err.message}); ` +
      "give its identity Roster's RBAC (the Helm chart's ClusterRole, see docs/helm.md)"
    );
  }
  return err instanceof Error ? err.message : String(err);
}

function port(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CliError(`--${name} must be a port number`, { exitCode: 2 });
  return n;
}

export async function run(args: string[]): Promise<number> {
  const { values } = flags(
    args,
    {
      kubeconfig: { type: "string" },
      config: { type: "string" },
      namespace: { type: "string", short: "n", multiple: true },
      "leader-elect": { type: "boolean" },
      "no-leader-elect": { type: "boolean" },
      "metrics-port": { type: "string" },
      "health-port": { type: "string" },
      "log-level": { type: "string" },
    },
    USAGE,
  );
  const logLevel = values["log-level"];
  if (logLevel !== undefined && !LogLevelSchema.safeParse(logLevel).success) {
    throw new CliError(`--log-level must be one of ${LogLevelSchema.options.join(", ")}`, {
      exitCode: 2,
      usage: USAGE,
    });
  }
  let config: OperatorConfig;
  try {
    config = values.config ? loadConfig(values.config) : parseConfig("");
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message);
    throw err;
  }
  const withFlags = (c: OperatorConfig): OperatorConfig => ({
    ...c,
    logLevel: (logLevel as OperatorConfig["logLevel"] | undefined) ?? c.logLevel,
    namespaces: values.namespace ?? c.namespaces,
    leaderElection: {
      ...c.leaderElection,
      enabled: values["no-leader-elect"] ? false : (values["leader-elect"] ?? c.leaderElection.enabled),
    },
    metrics: { ...c.metrics, port: port(values["metrics-port"], "metrics-port") ?? c.metrics.port },
    health: { ...c.health, port: port(values["health-port"], "health-port") ?? c.health.port },
  });
  config = withFlags(config);

  const kc = loadKubeConfig(values.kubeconfig);
  await checkCluster(kc);
  const logger = createLogger({ level: config.logLevel as LogLevel, name: "roster" });
  const options = managerOptions(config);
  const operator = createOperator({
    ...options,
    gracefulShutdownTimeoutMs: CONTROLLER_STOP_MS,
    kubeConfig: kc,
    logger,
    leaderElection: options.leaderElection && {
      ...options.leaderElection,
      identity: process.env.POD_NAME || undefined,
    },
    settings: operatorSettings(config),
    probing: probingOptions(config),
    sharding: shardingOptions(config),
    xds: xdsOptions(config),
  });

  // From here on every exit path stops what started: a failed start-up must
  // not leave servers, informers, signal handlers or a config watcher behind
  // (they kept the process alive, deaf to SIGTERM).
  const signals = signalQueue();
  const signalled = signals.next();
  const ready = (async () => {
    await operator.start();
    await operator.manager.waitForCacheSync();
    return "started";
  })();
  ready.catch(() => undefined); // lost the race to a signal: its failure no longer matters
  let first: string;
  try {
    first = await Promise.race([ready, signalled]);
  } catch (err) {
    signals.dispose();
    await stopWithin(() => operator.stop(), STARTUP_TEARDOWN_MS);
    throw new CliError(`start-up failed: ${startupMessage(err)}`);
  }
  let watcher: ReturnType<typeof watchConfig> | undefined;
  if (first === "started") {
    logger.info(
      {
        server: kc.getCurrentCluster()?.server,
        identity: operator.manager.identity,
        // What V8 runs with (derived from the memory limit unless set, src/cli/v8-limits.ts).
        heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
      },
      "roster started",
    );
    watcher = values.config
      ? watchConfig({
          path: values.config,
          logger,
          onChange: async (next, prev, changed) => {
            const effective = withFlags(next);
            await applyConfigChange(operator.manager, effective, changed, {
              log: logger,
              prev: withFlags(prev),
            });
            operator.updateSettings(operatorSettings(effective));
            operator.setDestinationPolicy(probingOptions(effective).destinations ?? {});
            logger.info({ changed }, "config reloaded");
          },
          onError: (err) =>
            logger.error({ err: err.message }, "config file rejected; keeping the previous config"),
        })
      : undefined;
  }
  const outcome = first === "started" ? await Promise.race([operator.manager.done, signalled]) : first;
  watcher?.close();
  // A second signal during shutdown means "now".
  const again = signals.next();
  const stop = () =>
    operator.stop().catch((err: unknown) => logger.error({ err }, "stopping the operator failed"));
  const stopped = await stopWithin(stop, SHUTDOWN_TIMEOUT_MS, again);
  signals.dispose();
  if (stopped !== "stopped") {
    // Something did not return (a reconcile, a request, a socket): exit anyway,
    // since an operator that never exits blocks its rollout until SIGKILL.
    logger.error(
      {
        reason: outcome,
        timeoutMs: SHUTDOWN_TIMEOUT_MS,
        interruptedBy: stopped === "timeout" ? undefined : stopped,
      },
      stopped === "timeout"
        ? `shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS / 1000} s; exiting anyway`
        : `${stopped} during shutdown; exiting at once`,
    );
    logger.flush();
    process.exit(1);
  }
  if (outcome === "lost") {
    logger.error("leadership lost; exiting so that the process restarts cleanly");
    return 1;
  }
  logger.info({ reason: outcome }, "roster stopped");
  return 0;
}
