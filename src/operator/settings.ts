/**
 * From the operator's config file to the operator's options: the default
 * policy, publication batching, the start-up hold, Secret reads and the
 * probe engine's limits, resolver and destination policy.
 */
import { parseDuration } from "../api/index.ts";
import type { OperatorConfig } from "../config/index.ts";
import { dnsServersResolver } from "../health/dns.ts";
import type { OperatorSettings } from "./context.ts";
import type { ProbingOptions, ShardingOptions, XdsOptions } from "./operator.ts";

export function operatorSettings(config: OperatorConfig): OperatorSettings {
  return {
    defaults: config.defaultPolicy,
    batchWindowMs: parseDuration(config.publishing.batchWindow),
    startupHoldMs: parseDuration(config.publishing.startupHold),
    probeSecrets: config.probing.secrets,
    policyStatusIntervalMs: parseDuration(config.publishing.policyStatusInterval),
    publication: config.publishing.addresses,
  };
}

export function probingOptions(config: OperatorConfig): ProbingOptions {
  const p = config.probing;
  return {
    maxConcurrent: p.maxConcurrent,
    maxPerHost: p.maxPerHost,
    maxAddressesPerName: p.maxAddressesPerName,
    // Empty: the engine's default, the system resolver (getaddrinfo).
    resolver: p.dnsServers.length > 0 ? dnsServersResolver(p.dnsServers) : undefined,
    dnsRefreshMs: parseDuration(p.dnsRefresh),
    destinations: {
      allow: p.destinations.allow,
      deny: p.destinations.deny,
      allowLoopback: p.destinations.allowLoopback,
    },
  };
}

export function shardingOptions(config: OperatorConfig): ShardingOptions {
  return {
    enabled: config.sharding.enabled,
    namespace: config.leaderElection.namespace,
    group: config.sharding.group,
    leaseDurationMs: parseDuration(config.sharding.leaseDuration),
  };
}

export function xdsOptions(config: OperatorConfig): XdsOptions {
  return { ...config.xds };
}
