/**
 * From the config file to the controller runtime: the manager options a
 * config implies at start, and what a reload changes while running.
 *
 * Guarantees: `applyConfigChange` only touches settings that can change
 * live (log level, ports, concurrency; defaultPolicy is read at each use
 * through the watcher) and reports the changed sections, and the changed
 * fields of live sections (`restartFields`), that need a restart instead of
 * tearing anything down; a warning names each of them.
 */
import { parseDuration } from "../api/common.ts";
import type { Logger } from "../kube/log.ts";
import type { Manager, ManagerOptions, ManagerSettings } from "../kube/manager.ts";
import { type OperatorConfig, restartFields, restartKeys } from "./schema.ts";

/** Settings that `manager.reconfigure` applies live. */
export function liveSettings(config: OperatorConfig): ManagerSettings {
  return {
    logLevel: config.logLevel,
    healthPort: config.health.port,
    metricsPort: config.metrics.port,
    healthBindAddress: config.health.bindAddress,
    metricsBindAddress: config.metrics.bindAddress,
    metricsAuth: config.metrics.auth,
    metricsTls: config.metrics.tls,
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
    maxInflightWrites: config.publishing.maxInflightWrites,
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
  /** Changed sections applied live (some of their fields may be in `needsRestart`). */
  applied: string[];
  /** Changed restart-only sections and fields (`leaderElection`, `probing.maxPerHost`). */
  needsRestart: string[];
}

function valueAt(config: OperatorConfig, path: string): unknown {
  let v: unknown = config;
  for (const part of path.split(".")) v = (v as Record<string, unknown> | undefined)?.[part];
  return v;
}

/** Restart-only fields of live sections (`restartFields`) whose value differs. */
export function changedRestartFields(prev: OperatorConfig, next: OperatorConfig): string[] {
  return restartFields.filter((f) => JSON.stringify(valueAt(prev, f)) !== JSON.stringify(valueAt(next, f)));
}

/** A section without its restart-only fields. */
function livepart(config: OperatorConfig, section: string): string {
  const value = { ...(config[section as keyof OperatorConfig] as object) } as Record<string, unknown>;
  for (const f of restartFields) if (f.startsWith(`${section}.`)) delete value[f.slice(section.length + 1)];
  return JSON.stringify(value);
}

/**
 * Applies a reloaded config to a running manager. With `prev`, restart-only
 * fields inside live sections are reported too.
 */
export async function applyConfigChange(
  manager: Pick<Manager, "reconfigure">,
  next: OperatorConfig,
  changed: readonly (keyof OperatorConfig)[],
  options: { log?: Logger; prev?: OperatorConfig } = {},
): Promise<ConfigChangeOutcome> {
  const { prev } = options;
  const sections = changed.filter((k) => (restartKeys as readonly string[]).includes(k));
  const fields = prev ? changedRestartFields(prev, next) : [];
  // A live section in which only restart-only fields changed applies nothing now.
  const applied = changed.filter(
    (k) =>
      !sections.includes(k) &&
      !(prev && fields.some((f) => f.startsWith(`${k}.`)) && livepart(prev, k) === livepart(next, k)),
  );
  const needsRestart = [...sections, ...fields];
  await manager.reconfigure(liveSettings(next));
  if (needsRestart.length) {
    options.log?.warn(
      { needsRestart },
      `config changed that takes effect only on restart: ${needsRestart.join(", ")}; the running operator keeps the previous values`,
    );
  }
  return { applied, needsRestart };
}
