/**
 * From the config file to the controller runtime: the manager options a
 * config implies at start, and what a reload changes while running.
 *
 * Guarantees: `applyConfigChange` only touches settings that can change
 * live (log level, ports, concurrency; defaultPolicy is read at each use
 * through the watcher) and reports the changed sections that need a restart
 * instead of tearing anything down.
 */
import { parseDuration } from "../api/common.ts";
import type { Logger } from "../kube/log.ts";
import type { Manager, ManagerOptions, ManagerSettings } from "../kube/manager.ts";
import { type OperatorConfig, restartKeys } from "./schema.ts";

/** Settings that `manager.reconfigure` applies live. */
export function liveSettings(config: OperatorConfig): ManagerSettings {
  return {
    logLevel: config.logLevel,
    healthPort: config.health.port,
    metricsPort: config.metrics.port,
    bindAddress: config.metrics.bindAddress,
    concurrency: { default: config.concurrency.default, perController: config.concurrency.perController },
  };
}

/** Everything the config says about the manager, for `createManager`. */
export function managerOptions(config: OperatorConfig): Omit<ManagerOptions, "kubeConfig" | "client"> {
  const le = config.leaderElection;
  const resync = parseDuration(config.watch.resyncPeriod);
  return {
    ...liveSettings(config),
    namespaces: config.namespaces,
    leaderElection: {
      enabled: le.enabled,
      namespace: le.namespace,
      name: le.leaseName,
      leaseDurationMs: parseDuration(le.leaseDuration),
      renewDeadlineMs: parseDuration(le.renewDeadline),
      retryPeriodMs: parseDuration(le.retryPeriod),
    },
    informerDefaults: {
      inactivityTimeoutMs: parseDuration(config.watch.inactivityTimeout),
      resyncPeriodMs: resync > 0 ? resync : undefined,
    },
  };
}

export interface ConfigChangeOutcome {
  applied: string[];
  needsRestart: string[];
}

/** Applies a reloaded config to a running manager. */
export async function applyConfigChange(
  manager: Pick<Manager, "reconfigure">,
  next: OperatorConfig,
  changed: readonly (keyof OperatorConfig)[],
  log?: Logger,
): Promise<ConfigChangeOutcome> {
  const needsRestart = changed.filter((k) => (restartKeys as readonly string[]).includes(k));
  const applied = changed.filter((k) => !needsRestart.includes(k));
  await manager.reconfigure(liveSettings(next));
  if (needsRestart.length)
    log?.warn({ sections: needsRestart }, "config sections changed that take effect on restart");
  return { applied, needsRestart };
}
