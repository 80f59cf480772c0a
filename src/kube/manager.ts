/**
 * The manager: owns what one operator process shares (the client, informers,
 * controllers, leader election, the health/metrics endpoints, events) and
 * runs it with controller-runtime's lifecycle.
 *
 * Lifecycle:
 * - `start()`: serve /healthz, /readyz, /metrics on every replica; start all
 *   informers on every replica (hot standby: a new leader has a warm cache);
 *   campaign for the lease; start the controllers only while leading (or at
 *   once when leader election is off).
 * - Lost leadership (renew deadline passed): stop the controllers at once,
 *   then stop everything and resolve `done` with `"lost"`; the process
 *   should exit and be restarted, as controller-runtime's do.
 * - `stop()` (SIGTERM): stop the controllers (running reconciles finish,
 *   bounded by `gracefulShutdownTimeoutMs`), then release the lease so
 *   another replica takes over within one retry period, then flush events,
 *   stop informers and close the servers. `done` resolves `"stopped"`.
 *
 * Guarantees: controllers never run on a replica that is not the leader (they
 * are stopped before the lease is released or given up), except those
 * created with `needLeaderElection: false`, which run on every replica; `reconfigure`
 * applies log level, ports and concurrency live, without dropping caches or
 * queues; informers are shared per (type, namespaces, selectors).
 */

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Clock } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import { type Applier, applier } from "./apply.ts";
import { ApiError, type KubeClient, kubeClient } from "./client.ts";
import { type Controller, type ControllerOptions, createController } from "./controller.ts";
import { type EventRecorder, eventRecorder } from "./events.ts";
import { combineInformers, createInformer, type Informer, type InformerOptions } from "./informer.ts";
import {
  type ElectionOutcome,
  type LeaderElectionTimings,
  type LeaderElector,
  leaderElector,
} from "./leader.ts";
import { type Logger, type LogLevel, setLogLevel, silentLogger } from "./log.ts";
import { type RuntimeMetrics, runtimeMetrics } from "./metrics.ts";
import { kubernetesMetricsAuthorizer, type MetricsAuthMode } from "./metrics-auth.ts";
import { type KubeObject, type ResourceType, resourceName } from "./object.ts";
import { type Check, type Checks, type EndpointServer, serveEndpoints } from "./server.ts";
import { gatedClient, type WriteGate, writeGate } from "./writegate.ts";

export interface LeaderElectionSettings extends Partial<LeaderElectionTimings> {
  enabled: boolean;
  namespace: string;
  /** Lease name. */
  name: string;
  /** Default: `<hostname>_<uuid>`. */
  identity?: string;
}

/** What can change while running (`reconfigure`). */
export interface ManagerSettings {
  logLevel?: LogLevel;
  /** /healthz and /readyz; undefined: not served. */
  healthPort?: number;
  /** /metrics; may equal healthPort (one listener, unless both are 0); undefined: not served. */
  metricsPort?: number;
  /** Address both listeners bind to unless overridden below (default 0.0.0.0). */
  bindAddress?: string;
  /** Address of the /healthz and /readyz listener (the kubelet must reach it). */
  healthBindAddress?: string;
  /** Address of the /metrics listener (127.0.0.1: scrapes from inside the pod only). */
  metricsBindAddress?: string;
  /** `kubernetes`: each scrape's bearer token is checked with a TokenReview and a SubjectAccessReview. */
  metricsAuth?: MetricsAuthMode;
  /** Serve /metrics over HTTPS with these PEM files (not allowed when it shares the health port). */
  metricsTls?: { certFile: string; keyFile: string };
  concurrency?: { default: number; perController?: Record<string, number> };
}

export interface ManagerOptions extends ManagerSettings {
  kubeConfig?: KubeConfig;
  /** Instead of kubeConfig (one of them is required). */
  client?: KubeClient;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  clock?: Clock;
  /** Namespaces informers watch by default; empty or undefined: all namespaces. */
  namespaces?: string[];
  leaderElection?: LeaderElectionSettings;
  /** Defaults for every informer the manager creates. */
  informerDefaults?: Pick<
    InformerOptions<KubeObject>,
    "inactivityTimeoutMs" | "resyncPeriodMs" | "backoff" | "pageSize" | "watchTimeoutSeconds"
  >;
  gracefulShutdownTimeoutMs?: number;
  /** Mutating requests in flight at once, shared by every writer (default DEFAULT_MAX_INFLIGHT_WRITES). */
  maxInflightWrites?: number;
  /** Field manager for server-side apply (default `roster`). */
  fieldManager?: string;
  /** events.k8s.io reportingController (default `roster.dev/operator`). */
  reportingController?: string;
  /** Called when this replica becomes the leader (after its controllers were started). */
  onStartedLeading?: () => void;
  /** Called when this replica stops leading (lost or released). */
  onStoppedLeading?: () => void;
}

export interface InformerRequest {
  labelSelector?: string;
  fieldSelector?: string;
  /** Override the manager's namespaces; `[]` means all. */
  namespaces?: string[];
  /** Replaces the default transform (a named function: the name tells shared informers apart). */
  transform?: (obj: KubeObject) => KubeObject;
}

export interface Manager {
  readonly client: KubeClient;
  readonly applier: Applier;
  readonly logger: Logger;
  readonly metrics: RuntimeMetrics;
  readonly clock: Clock;
  readonly identity: string;
  readonly events: EventRecorder;
  /** The write gate every mutating request of `client` passes through (its stats; tests hold a slot to stage a storm). */
  readonly writes: WriteGate;
  /** A shared informer (created on first request, started with the manager). */
  informer<T extends KubeObject>(type: ResourceType, request?: InformerRequest): Informer<T>;
  /**
   * Creates a controller with the manager's clock, logger, metrics and
   * concurrency settings. It runs only on the leader unless
   * `needLeaderElection` is false (controller-runtime's
   * `NeedLeaderElection()`): then it runs on every replica from start.
   */
  controller<T extends KubeObject>(
    options: Omit<ControllerOptions<T>, "clock" | "logger" | "metrics"> & {
      needLeaderElection?: boolean;
      /** Workers unless `concurrency.perController` names this controller: at least this many (I/O-bound controllers). */
      minConcurrency?: number;
    },
  ): Controller;
  addHealthCheck(name: string, check: Check): void;
  addReadyCheck(name: string, check: Check): void;
  isLeader(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Resolves true once every informer has listed, false if the manager stops
   * first; rejects as soon as the API server refuses a list (401/403), which
   * retrying cannot fix: a start-up error, not a state to wait in.
   */
  waitForCacheSync(signal?: AbortSignal): Promise<boolean>;
  /** Resolves when the manager stopped: `"stopped"` (stop()) or `"lost"` (leadership lost). */
  readonly done: Promise<ElectionOutcome>;
  reconfigure(settings: ManagerSettings): Promise<void>;
  /** Bound ports (after start). */
  ports(): { health?: number; metrics?: number };
}

export function createManager(options: ManagerOptions): Manager {
  const metrics = options.metrics ?? runtimeMetrics();
  if (!options.client && !options.kubeConfig) throw new Error("createManager needs kubeConfig or client");
  // Every writer shares one budget of in-flight writes, handed out by priority (writegate.ts).
  const gate = writeGate({ limit: options.maxInflightWrites, metrics: metrics.writeGate });
  const theClient: KubeClient = gatedClient(
    options.client ??
      kubeClient(options.kubeConfig!, {
        onRequest: (r) => metrics.restRequests.inc({ code: String(r.status), method: r.method }),
      }),
    gate,
  );
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const log = logger.child({ component: "manager" });
  const identity = options.leaderElection?.identity ?? `${hostname()}_${randomUUID()}`;
  let settings: ManagerSettings = {
    logLevel: options.logLevel,
    healthPort: options.healthPort,
    metricsPort: options.metricsPort,
    bindAddress: options.bindAddress,
    healthBindAddress: options.healthBindAddress,
    metricsBindAddress: options.metricsBindAddress,
    metricsAuth: options.metricsAuth,
    metricsTls: options.metricsTls,
    concurrency: options.concurrency ?? { default: 1 },
  };
  /** One for the manager's life, so its cache of reviewed tokens survives a reload. */
  const metricsAuthorizer = kubernetesMetricsAuthorizer({ client: theClient, clock });

  const informers = new Map<string, Informer<KubeObject>>();
  /** Controllers that run only while leading, and those that run on every replica. */
  const controllers: Controller[] = [];
  const everywhere: Controller[] = [];
  const checks: Checks = { healthz: new Map(), readyz: new Map() };
  const apply = applier(theClient, options.fieldManager);
  const events = eventRecorder({
    client: theClient,
    reportingController: options.reportingController ?? "roster.dev/operator",
    reportingInstance: identity,
    clock,
    logger,
    metrics,
  });

  let started = false;
  let stopping: Promise<void> | undefined;
  let servers: { health?: EndpointServer; metrics?: EndpointServer } = {};
  let elector: LeaderElector | undefined;
  let election: Promise<ElectionOutcome> | undefined;
  const electionAbort = new AbortController();
  let resolveDone!: (o: ElectionOutcome) => void;
  const done = new Promise<ElectionOutcome>((r) => {
    resolveDone = r;
  });

  /** The first list the API server refused (401/403), and who waits to hear of it. */
  let refusedList: Error | undefined;
  const refusalWaiters = new Set<(err: Error) => void>();
  const onListError = (err: unknown) => {
    if (refusedList || !(err instanceof ApiError) || (err.status !== 401 && err.status !== 403)) return;
    refusedList = err;
    for (const w of refusalWaiters) w(err);
  };

  checks.healthz.set("ping", () => undefined);
  checks.healthz.set("leader-election", () => elector?.check());
  checks.readyz.set("informers", () => {
    const waiting = [...informers.values()].filter((i) => !i.hasSynced()).map((i) => resourceName(i.type));
    return waiting.length ? `not synced: ${waiting.join(", ")}` : undefined;
  });

  /** Per controller: the least number of workers it asked for (`minConcurrency`). */
  const floors = new Map<string, number>();
  function concurrencyFor(name: string): number {
    const c = settings.concurrency ?? { default: 1 };
    return c.perController?.[name] ?? Math.max(c.default, floors.get(name) ?? 0);
  }

  async function startServers(): Promise<void> {
    try {
      await listen();
    } catch (err) {
      await closeServers();
      throw err;
    }
    log.info({ health: servers.health?.port, metrics: servers.metrics?.port }, "serving endpoints");
  }

  async function listen(): Promise<void> {
    const healthHost = settings.healthBindAddress ?? settings.bindAddress;
    const metricsHost = settings.metricsBindAddress ?? settings.bindAddress;
    const hp = settings.healthPort;
    const mp = settings.metricsPort;
    const authorize = settings.metricsAuth === "kubernetes" ? metricsAuthorizer : undefined;
    const tls = settings.metricsTls;
    if (hp !== undefined && hp !== 0 && hp === mp) {
      // One listener: the config schema requires one bind address and no TLS for it.
      // (Port 0 twice means two free ports.)
      const s = await serveEndpoints({
        port: hp,
        host: metricsHost,
        checks,
        registry: metrics.registry,
        authorize,
      });
      servers = { health: s, metrics: s };
    } else {
      if (hp !== undefined) servers.health = await serveEndpoints({ port: hp, host: healthHost, checks });
      if (mp !== undefined)
        servers.metrics = await serveEndpoints({
          port: mp,
          host: metricsHost,
          registry: metrics.registry,
          authorize,
          tls,
          clock,
          logger,
        });
    }
  }

  async function closeServers(): Promise<void> {
    const all = new Set([servers.health, servers.metrics].filter((s) => s !== undefined));
    servers = {};
    await Promise.all([...all].map((s) => s.close()));
  }

  async function stopControllers(): Promise<void> {
    await Promise.all(
      [...controllers, ...everywhere].map((c) =>
        c.stop({ timeoutMs: options.gracefulShutdownTimeoutMs ?? 30_000 }),
      ),
    );
  }

  function startControllers(which: readonly Controller[]): void {
    for (const c of which) {
      c.start(electionAbort.signal).catch((err: unknown) =>
        log.error({ err, controller: c.name }, "controller failed"),
      );
    }
  }

  async function shutdown(outcome: ElectionOutcome): Promise<void> {
    log.info({ outcome }, "stopping");
    await stopControllers();
    electionAbort.abort();
    await election?.catch(() => undefined);
    await events.close().catch(() => undefined);
    await Promise.all([...informers.values()].map((i) => i.stop()));
    await closeServers();
    log.info("stopped");
    resolveDone(outcome);
  }

  const manager: Manager = {
    client: theClient,
    writes: gate,
    applier: apply,
    logger,
    metrics,
    clock,
    identity,
    events,
    done,

    informer<T extends KubeObject>(type: ResourceType, request: InformerRequest = {}): Informer<T> {
      const namespaces = type.namespaced ? (request.namespaces ?? options.namespaces ?? []) : [];
      const key = JSON.stringify([
        resourceName(type),
        [...namespaces].sort(),
        request.labelSelector,
        request.fieldSelector,
        request.transform?.name,
      ]);
      let inf = informers.get(key);
      if (!inf) {
        const make = (namespace?: string) =>
          createInformer<KubeObject>({
            ...options.informerDefaults,
            client: theClient,
            type,
            namespace,
            labelSelector: request.labelSelector,
            fieldSelector: request.fieldSelector,
            transform: request.transform,
            clock,
            logger,
            metrics,
            onListError,
          });
        inf = namespaces.length === 0 ? make() : combineInformers(namespaces.map((ns) => make(ns)));
        informers.set(key, inf);
        if (started) inf.start();
      }
      return inf as unknown as Informer<T>;
    },

    controller({ needLeaderElection = true, minConcurrency, ...opts }) {
      if (minConcurrency !== undefined) floors.set(opts.name, minConcurrency);
      const c = createController({
        ...opts,
        concurrency: opts.concurrency ?? concurrencyFor(opts.name),
        clock,
        logger,
        metrics,
      });
      (needLeaderElection ? controllers : everywhere).push(c);
      if (started && !stopping && (!needLeaderElection || !elector || elector.isLeader()))
        startControllers([c]);
      return c;
    },

    addHealthCheck: (name, check) => void checks.healthz.set(name, check),
    addReadyCheck: (name, check) => void checks.readyz.set(name, check),
    isLeader: () => (elector ? elector.isLeader() : started && !stopping),

    waitForCacheSync(signal) {
      return new Promise<boolean>((resolve, reject) => {
        if (refusedList) return reject(refusedList);
        const refused = (err: Error) => {
          refusalWaiters.delete(refused);
          reject(err);
        };
        refusalWaiters.add(refused);
        void Promise.all([...informers.values()].map((i) => i.waitForSync(signal))).then((oks) => {
          refusalWaiters.delete(refused);
          resolve(oks.every(Boolean));
        });
      });
    },

    async start() {
      if (started) return;
      started = true;
      if (settings.logLevel) setLogLevel(logger, settings.logLevel);
      await startServers();
      for (const inf of informers.values()) inf.start();
      startControllers(everywhere);
      const le = options.leaderElection;
      if (le?.enabled) {
        const el = leaderElector({
          ...le,
          client: theClient,
          identity,
          clock,
          logger,
          metrics,
          onStartedLeading: () => {
            startControllers(controllers);
            options.onStartedLeading?.();
          },
          onStoppedLeading: () => options.onStoppedLeading?.(),
        });
        elector = el;
        election = el.run(electionAbort.signal);
        void election.then((outcome) => {
          if (outcome === "lost" && !stopping) {
            stopping = shutdown("lost");
          }
        });
      } else {
        startControllers(controllers);
      }
    },

    stop() {
      stopping ??= shutdown("stopped");
      return stopping;
    },

    async reconfigure(next) {
      const prev = settings;
      settings = { ...prev, ...next };
      if (next.logLevel && next.logLevel !== prev.logLevel) {
        setLogLevel(logger, next.logLevel);
        log.info({ level: next.logLevel }, "log level changed");
      }
      if (next.concurrency) {
        for (const c of [...controllers, ...everywhere]) c.setConcurrency(concurrencyFor(c.name));
      }
      const portsChanged =
        ("healthPort" in next && next.healthPort !== prev.healthPort) ||
        ("metricsPort" in next && next.metricsPort !== prev.metricsPort) ||
        (
          ["bindAddress", "healthBindAddress", "metricsBindAddress", "metricsAuth", "metricsTls"] as const
        ).some((k) => k in next && JSON.stringify(next[k]) !== JSON.stringify(prev[k]));
      if (started && !stopping && portsChanged) {
        await closeServers();
        await startServers();
      }
    },

    ports: () => ({ health: servers.health?.port, metrics: servers.metrics?.port }),
  };
  return manager;
}
