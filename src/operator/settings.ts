/**
 * From the operator's config file to the operator's options: the default
 * policy, publication batching, the start-up hold, Secret reads and the
 * probe engine's limits and destination policy.
 */
import { parseDuration } from "../api/index.ts";
import type { OperatorConfig } from "../config/index.ts";
import type { OperatorSettings } from "./context.ts";
import type { ProbingOptions } from "./operator.ts";

export function operatorSettings(config: OperatorConfig): OperatorSettings {
  return {
    defaults: config.defaultPolicy,
    batchWindowMs: parseDuration(config.publishing.batchWindow),
    startupHoldMs: parseDuration(config.publishing.startupHold),
    probeSecrets: config.probing.secrets,
  };
}

export function probingOptions(config: OperatorConfig): ProbingOptions {
  const p = config.probing;
  return {
    maxConcurrent: p.maxConcurrent,
    maxPerHost: p.maxPerHost,
    destinations: {
      allow: p.destinations.allow,
      deny: p.destinations.deny,
      allowLoopback: p.destinations.allowLoopback,
    },
  };
}
