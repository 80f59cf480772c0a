/**
 * The Roster operator: one manager (caches, leader election, endpoints), one
 * probe engine, and three controllers.
 *
 * - `probe-target` (key: namespace/name): the probe engine's target for each
 *   instance this replica owns; no API writes.
 * - `serviceinstance` (key: namespace/name): the status of owned instances.
 * - `service-publisher` (key: namespace/service): Service, EndpointSlices,
 *   ConfigMap and the policy's status. Its primary type is Service; instances,
 *   policies, slices and ConfigMaps map to their service's key.
 *
 * Verdict changes flow from the engine through the `VerdictSource` to the
 * status writer and the publisher; publisher keys are enqueued after
 * `batchWindowMs`, so the transitions of many instances of one service within
 * the window become one write per published object.
 *
 * One replica owns every instance. With sharding, every replica joins a
 * Lease-based group and probes (and writes the status of) its rendezvous-hash
 * share; the leader publishes, reading the others' verdicts from the statuses
 * they write. The first two controllers then run on every replica.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { ConditionTypes } from "../api/common.ts";
import {
  createProbeEngine,
  type DestinationPolicyConfig,
  destinationPolicy,
  type LeaseInfo,
  type ProbeEngine,
  type ProbeObservation,
  type Resolver,
} from "../health/index.ts";
import type { DestinationPolicy } from "../health/policy.ts";
import { findCondition } from "../kube/conditions.ts";
import {
  createManager,
  type Informer,
  type KubeObject,
  LABEL_MEMBER_OF,
  type LeaderElectionSettings,
  type Lease,
  type Logger,
  type Manager,
  type ManagerOptions,
  type Membership,
  membership,
  resources,
  secondary,
  splitKey,
} from "../kube/index.ts";
import { DEFAULT_MAX_INFLIGHT_WRITES } from "../kube/writegate.ts";
import { staleReasonOf } from "../publish/configmap.ts";
import {
  LABEL_MANAGED_BY,
  LABEL_ROSTER_SERVICE,
  LABEL_SERVICE_NAME,
  LABEL_SLICE_MANAGED_BY,
  ROSTER_MANAGER,
} from "../publish/labels.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { deepEqual } from "../util/equal.ts";
import { createXdsServer, type XdsAccessRule, type XdsServer, type XdsTlsOptions } from "../xds/server.ts";
import { feedFromConfigMaps } from "../xds/source.ts";
import { byConfigMap, configMapIndex, rivalServices } from "./claims.ts";
import {
  byService,
  type ConfigMapObject,
  type InstanceObject,
  type OperatorContext,
  type OperatorSettings,
  type PolicyObject,
  rosterResources,
  type ServiceObject,
  type SliceObject,
} from "./context.ts";
import { serviceKey } from "./effective.ts";
import { instanceView } from "./instance-view.ts";
import { instanceReconciler } from "./instances.ts";
import { operatorMetrics } from "./metrics.ts";
import { type PublicationPolicy, publicationPolicy } from "./publication.ts";
import { servicePublisher } from "./publisher.ts";
import { runtimeStore } from "./runtime.ts";
import { allShards, memberShards } from "./shards.ts";
import { probeTargets } from "./targets.ts";
import { unmanagedServices } from "./unmanaged.ts";
import { engineVerdicts } from "./verdicts.ts";

export interface ProbingOptions {
  destinations?: DestinationPolicyConfig;
  maxConcurrent?: number;
  maxPerHost?: number;
  /** Addresses probed per DNS name (default 16). */
  maxAddressesPerName?: number;
  /** Also told of every finished probe (diagnostics and tests; must not throw or block). */
  observe?: (o: ProbeObservation) => void;
  /** Resolves instance and probe host names (default: the system resolver). */
  resolver?: Resolver;
  /** How long a resolved name's addresses are used (default 30 s). */
  dnsRefreshMs?: number;
}

export interface ShardingOptions {
  enabled: boolean;
  /** Namespace of the membership Leases (the operator's own). */
  namespace: string;
  group: string;
  leaseDurationMs: number;
}

export interface XdsOptions {
  enabled: boolean;
  /** 0: any free port (tests). */
  port: number;
  bindAddress: string;
  maxStreams?: number;
  access?: readonly XdsAccessRule[];
  tls?: XdsTlsOptions;
}

export interface OperatorOptions extends Omit<ManagerOptions, "client" | "clock" | "logger"> {
  kubeConfig: KubeConfig;
  settings: OperatorSettings;
  probing?: ProbingOptions;
  sharding?: ShardingOptions;
  leaderElection?: LeaderElectionSettings;
  xds?: XdsOptions;
  clock?: Clock;
  logger?: Logger;
}

export interface Operator {
  readonly manager: Manager;
  readonly engine: ProbeEngine;
  /** The xDS server when enabled; its port once started. */
  readonly xds: (Pick<XdsServer, "stats"> & { port(): number | undefined }) | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Applies new settings (default policy, batching...) and re-reconciles everything. */
  updateSettings(settings: OperatorSettings): void;
  setDestinationPolicy(policy: DestinationPolicyConfig): void;
}

export function createOperator(options: OperatorOptions): Operator {
  const clock = options.clock ?? systemClock;
  const manager = createManager({
    ...options,
    clock,
    // A registry must converge soon after an API server outage: cap the
    // watch reconnect backoff at 5 s (client-go's 30 s with full jitter can
    // leave statuses stale for up to a minute). A few informers reconnecting
    // every 5 s cost the API server nothing.
    informerDefaults: { backoff: { maxMs: 5000, jitter: 0.2 }, ...options.informerDefaults },
  });
  const log = manager.logger.child({ component: "operator" });
  let settings = options.settings;

  const instances = manager.informer<InstanceObject>(rosterResources.serviceInstances);
  const policies = manager.informer<PolicyObject>(rosterResources.discoveryPolicies);
  // Only what Roster manages: unmanaged Services, slices and ConfigMaps are
  // never written, so they are not cached either (a tenant's Services cost
  // nothing); a name taken by an unmanaged Service is found by `unmanaged`
  // (one GET of that name), and a create that collides with an unmanaged
  // object reports a conflict.
  const services = manager.informer<ServiceObject>(resources.services, {
    labelSelector: `${LABEL_MANAGED_BY}=${ROSTER_MANAGER}`,
  });
  const slices = manager.informer<SliceObject>(resources.endpointSlices, {
    labelSelector: `${LABEL_SLICE_MANAGED_BY}=${ROSTER_MANAGER}`,
  });
  const configMaps = manager.informer<ConfigMapObject>(resources.configMaps, {
    labelSelector: `${LABEL_MANAGED_BY}=${ROSTER_MANAGER}`,
  });
  // Heartbeat probes name any Lease of an instance's namespace, so this
  // cache cannot be filtered by label; it keeps only what leaseInfo reads.
  const leases = manager.informer<KubeObject & { spec?: LeaseSpec }>(resources.leases, {
    transform: heartbeatLeaseView,
  });
  const sharding = options.sharding?.enabled ? options.sharding : undefined;
  if (sharding && !options.leaderElection?.enabled) {
    throw new Error("sharding needs leader election: the leader publishes what the group probes");
  }
  let members: Membership | undefined;
  if (sharding) {
    members = membership({
      client: manager.client,
      leases: manager.informer<Lease>(resources.leases, {
        namespaces: [sharding.namespace],
        labelSelector: `${LABEL_MEMBER_OF}=${sharding.group}`,
      }),
      namespace: sharding.namespace,
      group: sharding.group,
      identity: manager.identity,
      fieldManager: manager.applier.fieldManager,
      leaseDurationMs: sharding.leaseDurationMs,
      clock,
      logger: manager.logger,
      // Every instance may have changed hands: the probe-target reconciler
      // takes up what this replica gained and drops what it lost.
      onChange: () => {
        for (const key of instances.keys()) targetController.enqueue(key);
      },
    });
    const group = members;
    manager.addReadyCheck("membership", () => (group.members().length ? undefined : "not joined yet"));
  }

  const ns = (o: KubeObject) => o.metadata.namespace ?? "";
  instances.addIndex(byService, (o) => (o.spec?.service ? [serviceKey(ns(o), o.spec.service)] : []));
  policies.addIndex(byService, (o) => (o.spec?.service ? [serviceKey(ns(o), o.spec.service)] : []));
  policies.addIndex(byConfigMap, configMapIndex);
  slices.addIndex(byService, (o) => labelIndex(o, LABEL_SERVICE_NAME));
  configMaps.addIndex(byService, (o) => labelIndex(o, LABEL_ROSTER_SERVICE));

  const metrics = operatorMetrics(manager.metrics.registry, {
    targets: () => engine.stats().targets,
    members: () => (members ? members.members().length : 1),
  });

  let destinations = destinationPolicy(options.probing?.destinations);
  let publication:
    | { settings: OperatorSettings; destinations: DestinationPolicy; policy: PublicationPolicy }
    | undefined;
  const verdicts = engineVerdicts();
  const engine = createProbeEngine({
    clock,
    policy: options.probing?.destinations,
    maxConcurrent: options.probing?.maxConcurrent,
    maxPerHost: options.probing?.maxPerHost,
    maxAddressesPerName: options.probing?.maxAddressesPerName,
    resolver: options.probing?.resolver,
    dnsRefreshMs: options.probing?.dnsRefreshMs,
    leaseReader: (namespace, name) => leaseInfo(leases.get(`${namespace}/${name}`)?.spec),
    onTransition: (t) => {
      metrics.transition(t);
      verdicts.onTransition(t);
    },
    onProbe: (o) => {
      options.probing?.observe?.(o);
      metrics.probe(o);
      // No result: says nothing about the target, so it is no first verdict either.
      if (o.voided) return;
      verdicts.onProbe(o);
    },
    onRole: (id) => verdicts.onRole(id),
    onError: (err) => log.error({ err }, "probe engine callback failed"),
  });
  verdicts.attach(engine);

  const ctx: OperatorContext = {
    client: manager.client,
    applier: manager.applier,
    events: manager.events,
    clock,
    logger: log,
    engine,
    verdicts,
    shards: members ? memberShards(manager.identity, members.members) : allShards,
    instances,
    policies,
    services,
    unmanaged: unmanagedServices({
      client: manager.client,
      managed: services as unknown as Informer<KubeObject>,
      clock,
      // The instances of a service whose name was taken or freed show or clear Conflict.
      onChange: (key) => {
        const { namespace = "", name } = splitKey(key);
        for (const i of instancesOf(namespace, name)) statusController.enqueue(i);
      },
    }),
    slices,
    configMaps,
    resolver: options.probing?.resolver,
    settings: () => settings,
    publication: () => {
      if (publication?.settings !== settings || publication.destinations !== destinations) {
        const config = settings.publication ?? { clusterNetworks: [], allow: {} };
        publication = { settings, destinations, policy: publicationPolicy(destinations, config) };
      }
      return publication.policy;
    },
  };
  // The probe-target controller writes each instance's runtime; a change
  // wakes the status writer and the publisher, which read it through the view.
  const runtimes = runtimeStore();
  runtimes.subscribe((key) => {
    statusController.enqueue(key);
    enqueuePublisher(key);
  });
  const targets = probeTargets(ctx, runtimes);
  const view = instanceView(ctx, runtimes);
  const statusWriter = instanceReconciler(ctx, view);
  const publisher = servicePublisher(ctx, view);

  const instancesOf = (namespace: string, service: string) =>
    instances.byIndex(byService, serviceKey(namespace, service)).map((i) => `${ns(i)}/${i.metadata.name}`);
  // Instances depend on a policy's spec (health check, deregisterAfter), not
  // on its status, which the publisher rewrites on most verdict transitions:
  // re-reconciling every instance of the service each time floods the
  // instance queue and delays the status of the instance that changed.
  const policySpecs = new Map<string, string>();
  const policySpecChanged = (p: PolicyObject) => {
    const key = `${ns(p)}/${p.metadata.name}`;
    if (!policies.get(key)) {
      policySpecs.delete(key);
      return true;
    }
    const seen = `${p.metadata.uid}/${p.metadata.generation}`;
    if (policySpecs.get(key) === seen) return false;
    policySpecs.set(key, seen);
    return true;
  };
  // Instance conditions name a stale ConfigMap (over budget): wake the
  // service's instances when a ConfigMap becomes stale or current again,
  // not on its every revision.
  const configMapStales = new Map<string, string>();
  const staleChanged = (cm: ConfigMapObject) => {
    const key = `${ns(cm)}/${cm.metadata.name}`;
    const before = configMapStales.get(key) ?? "";
    const now = configMaps.get(key) ? (staleReasonOf(cm) ?? "") : "";
    if (now) configMapStales.set(key, now);
    else configMapStales.delete(key);
    return before !== now;
  };
  // With sharding, every replica probes its share and writes those statuses.
  const needLeaderElection = !sharding;
  const targetController = manager.controller<InstanceObject>({
    name: "probe-target",
    primary: instances,
    secondaries: [
      secondary(policies, (p) =>
        p.spec?.service && policySpecChanged(p) ? instancesOf(ns(p), p.spec.service) : [],
      ),
    ],
    reconcile: targets.reconcile,
    // Targets follow the spec; the status writes that follow every
    // transition must not re-run them.
    updateFilter: (o, n) => o.metadata.generation !== n.metadata.generation,
    needLeaderElection,
  });
  const statusController = manager.controller<InstanceObject>({
    name: "serviceinstance",
    primary: instances,
    secondaries: [
      secondary(services, (s) => instancesOf(ns(s), s.metadata.name ?? "")),
      secondary(configMaps, (cm) =>
        staleChanged(cm) ? instancesOf(ns(cm), cm.metadata.labels?.[LABEL_ROSTER_SERVICE] ?? "") : [],
      ),
      // A ConfigMap claim won or lost shows as Conflict on the instances.
      secondary(policies, (p) =>
        rivalServices(policies, p).flatMap((k) => instancesOf(splitKey(k).namespace ?? "", splitKey(k).name)),
      ),
    ],
    reconcile: statusWriter.reconcile,
    // Status writes are independent, small and I/O-bound: at start-up and in
    // mass transitions their number is what decides how soon every status
    // is current.
    minConcurrency: 16,
    needLeaderElection,
  });
  const toService = (o: KubeObject & { spec?: { service?: string } }) =>
    o.spec?.service ? [serviceKey(ns(o), o.spec.service)] : [];
  // An instance's status echo (every status write comes back through the
  // watch) changes nothing the publisher reads unless it changes the
  // instance as published: re-planning the service on every echo is a
  // start-up's 10,000 plans (of a 10,000-endpoint document, each ~0.1 s)
  // competing with publication on the event loop.
  const publishedChanged = (o: InstanceObject, n: InstanceObject) =>
    o.metadata.generation !== n.metadata.generation ||
    o.metadata.uid !== n.metadata.uid ||
    o.spec?.service !== n.spec?.service ||
    !deepEqual(view.published(o), view.published(n));
  const publisherController = manager.controller<ServiceObject>({
    name: "service-publisher",
    primary: services,
    secondaries: [
      secondary(instances, toService, publishedChanged),
      secondary(policies, (p) => [...toService(p), ...rivalServices(policies, p)]),
      secondary(slices, (o) => labelIndex(o, LABEL_SERVICE_NAME)),
      secondary(configMaps, (o) => labelIndex(o, LABEL_ROSTER_SERVICE)),
    ],
    reconcile: publisher.reconcile,
    // As many workers as the write gate has slots: a reconcile writes its
    // slices and its ConfigMap one after the other, so with fewer workers
    // than slots the status writer's 16 would fill the rest and, under a
    // storm, statuses would be written as fast as slices (issue 18; the
    // gate's priorities only order the writes that wait at it).
    minConcurrency: Math.max(16, options.maxInflightWrites ?? DEFAULT_MAX_INFLIGHT_WRITES),
  });

  function enqueuePublisher(instanceKey: string): void {
    const si = instances.get(instanceKey);
    if (si?.spec?.service) {
      publisherController.enqueueAfter(serviceKey(ns(si), si.spec.service), settings.batchWindowMs);
    }
  }
  verdicts.subscribe((key) => {
    statusController.enqueue(key);
    enqueuePublisher(key);
  });

  // Every replica serves xDS from its ConfigMap cache (it only reads).
  const xdsServer = options.xds?.enabled
    ? createXdsServer({
        port: options.xds.port,
        bindAddress: options.xds.bindAddress,
        maxStreams: options.xds.maxStreams,
        access: options.xds.access,
        tls: options.xds.tls,
        clock,
        logger: manager.logger,
        registry: manager.metrics.registry,
      })
    : undefined;
  // Push latency starts at the verdict: this replica's engine knows it to
  // the millisecond; for instances another replica probes, the Healthy
  // condition's transition time (to the second) is what there is.
  const verdictSince = (namespace: string, instance: string): number | undefined => {
    const key = `${namespace}/${instance}`;
    const fresh = verdicts.get(key)?.since;
    if (fresh !== undefined) return fresh;
    const t = findCondition(
      instances.get(key)?.status?.conditions,
      ConditionTypes.Healthy,
    )?.lastTransitionTime;
    const ms = t ? Date.parse(t) : Number.NaN;
    return Number.isNaN(ms) ? undefined : ms;
  };
  if (xdsServer) feedFromConfigMaps(configMaps, xdsServer, clock, log, verdictSince);
  let xdsPort: number | undefined;

  const leaving = new AbortController();
  let membershipRun: Promise<void> | undefined;
  return {
    manager,
    engine,
    xds: xdsServer && { stats: () => xdsServer.stats(), port: () => xdsPort },
    async start() {
      if (xdsServer) xdsPort = await xdsServer.start();
      await manager.start();
      membershipRun = members?.run(leaving.signal);
    },
    async stop() {
      // Leaving deletes the membership Lease, so the others take this
      // replica's share at once instead of after a lease duration.
      leaving.abort();
      await Promise.all([manager.stop(), membershipRun, xdsServer?.stop()]);
      targets.reset();
      engine.close();
    },
    updateSettings(next) {
      settings = next;
      for (const key of instances.keys()) targetController.enqueue(key);
      for (const key of instances.keys()) statusController.enqueue(key);
      for (const key of services.keys()) publisherController.enqueue(key);
      for (const si of instances.list()) {
        if (si.spec?.service) publisherController.enqueue(serviceKey(ns(si), si.spec.service));
      }
    },
    setDestinationPolicy(policy) {
      engine.setPolicy(policy);
      destinations = destinationPolicy(policy);
      // Published addresses are judged by it too.
      for (const key of instances.keys()) targetController.enqueue(key);
    },
  };
}

interface LeaseSpec {
  renewTime?: string;
  acquireTime?: string;
  leaseDurationSeconds?: number;
}

/** What the Lease cache keeps of a Lease: its identity and the three fields leaseInfo reads. */
export function heartbeatLeaseView(obj: KubeObject & { spec?: LeaseSpec }): KubeObject {
  const { name, namespace, uid, resourceVersion } = obj.metadata;
  const s = obj.spec;
  const spec: LeaseSpec = {};
  if (s?.renewTime !== undefined) spec.renewTime = s.renewTime;
  if (s?.acquireTime !== undefined) spec.acquireTime = s.acquireTime;
  if (s?.leaseDurationSeconds !== undefined) spec.leaseDurationSeconds = s.leaseDurationSeconds;
  return { metadata: { name, namespace, uid, resourceVersion }, spec } as KubeObject;
}

function leaseInfo(spec: LeaseSpec | undefined): LeaseInfo | undefined {
  const renewed = Date.parse(spec?.renewTime ?? spec?.acquireTime ?? "");
  if (!spec || Number.isNaN(renewed) || spec.leaseDurationSeconds === undefined) return undefined;
  return { renewTimeMs: renewed, leaseDurationMs: spec.leaseDurationSeconds * 1000 };
}

function labelIndex(o: KubeObject, label: string): string[] {
  const v = o.metadata.labels?.[label];
  return v ? [serviceKey(o.metadata.namespace ?? "", v)] : [];
}
