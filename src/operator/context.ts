/**
 * What the operator's reconcilers share: the client and writers, the caches
 * (informers), the probe engine with its verdicts, and the live settings.
 * Reconcilers read the caches and the verdicts only; they never branch on
 * which event woke them (level-triggered).
 */

import type { V1ConfigMap, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import {
  type DiscoveryPolicy,
  DiscoveryPolicyResource,
  type ServiceInstance,
  ServiceInstanceResource,
} from "../api/index.ts";
import type { ProbeEngine, Resolver } from "../health/index.ts";
import type { Applier, EventRecorder, Informer, KubeClient, KubeObject, Logger } from "../kube/index.ts";
import type { Clock } from "../util/clock.ts";
import type { DefaultPolicy } from "./effective.ts";
import type { PublicationConfig, PublicationPolicy } from "./publication.ts";
import type { Shards } from "./shards.ts";
import type { UnmanagedServices } from "./unmanaged.ts";
import type { VerdictSource } from "./verdicts.ts";

/** The API's resource descriptors (src/api), under the names the operator uses. */
export const rosterResources = {
  serviceInstances: ServiceInstanceResource,
  discoveryPolicies: DiscoveryPolicyResource,
} as const;

/** Informer index of instances, policies and published objects by `namespace/service`. */
export const byService = "service";

/** client-node's models with the runtime's required metadata (raw JSON objects). */
export type ServiceObject = V1Service & KubeObject;
export type SliceObject = V1EndpointSlice & KubeObject;
export type ConfigMapObject = V1ConfigMap & KubeObject;
export type InstanceObject = ServiceInstance & KubeObject;
export type PolicyObject = DiscoveryPolicy & KubeObject;

/** Settings that may change at run time (config hot reload). */
export interface OperatorSettings {
  defaults: DefaultPolicy;
  /** Verdict changes within this window become one write per published object. */
  batchWindowMs: number;
  /** After start, a service is published once all its instances were probed, or after this long. */
  startupHoldMs: number;
  /** Read probe header values from Secrets (in the instance's namespace). */
  probeSecrets: boolean;
  /** A policy status that changed only in counts and messages is written at most this often. */
  policyStatusIntervalMs: number;
  /** Which addresses may be published (cluster networks, per-namespace exceptions). */
  publication?: PublicationConfig;
  /**
   * The largest ConfigMap document, in bytes; default PUBLISHED_MAX_BYTES.
   * Not in the config file: tests lower it so that a few instances exceed it
   * (hundreds of near-1 MB writes would make the test slow and load-bound).
   */
  configMapBudgetBytes?: number;
  /**
   * The most ConfigMaps one service's document is split into (format 2);
   * default PUBLISHED_MAX_PARTS. 1 keeps format 1 only (over budget: stale).
   */
  configMapMaxParts?: number;
}

export interface OperatorContext {
  client: KubeClient;
  applier: Applier;
  events: EventRecorder;
  clock: Clock;
  logger: Logger;
  engine: ProbeEngine;
  verdicts: VerdictSource;
  /** Which instances this replica probes and writes the status of (all, unless sharding is on). */
  shards: Shards;
  instances: Informer<InstanceObject>;
  policies: Informer<PolicyObject>;
  /** Roster's own Services only (label selector): others are not cached. */
  services: Informer<ServiceObject>;
  /** Whether a service's name is taken by a Service Roster does not manage (cache, else a memoised GET). */
  unmanaged: UnmanagedServices;
  slices: Informer<SliceObject>;
  configMaps: Informer<ConfigMapObject>;
  settings(): OperatorSettings;
  /** The publication policy in force (destination policy + settings.publication). */
  publication(): PublicationPolicy;
  /** Resolves instance names for host-override probes (default: the system resolver). */
  resolver?: Resolver;
}
