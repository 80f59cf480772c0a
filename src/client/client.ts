/**
 * RosterClient: the consumer side of Roster. It watches the published
 * ConfigMaps of the namespaces it is given (through the controller runtime's
 * informer: list + watch, relist on 410, reconnect with backoff), keeps the
 * current endpoint set of every service in memory, and answers reads from
 * memory: after the first sync, `endpoints()` and `pick()` never touch the
 * network. Changes are pushed by the watch (no TTL polling) and reported as
 * events.
 *
 * Balancing follows the published hints (strategy, consistent-hash options,
 * zone awareness, panic) unless the application overrides them. A service's
 * balancer is built on its first pick after a change and kept until the next
 * change; LeastConnections in-flight counts carry over for endpoints that
 * remain. Endpoints in slow start are weighed by the client's clock at pick
 * time (slow-start.ts), without any write by the operator while they ramp.
 */
import { KubeConfig } from "@kubernetes/client-node";
import type { LoadBalancing } from "../api/published.ts";
import {
  type Balancer,
  type ConsistentHashOptions,
  type CreateBalancerOptions,
  createBalancer,
  createInFlightTracker,
  type InFlightTracker,
  isEligible,
  isPrime,
  type LeastConnectionsOptions,
  nextPrime,
  type Picked,
  type Rng,
  type StrategyName,
  type ZoneAwareOptions,
} from "../balance/index.ts";
import type { Logger } from "../kube/log.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { balanceView, type RosterEndpoint } from "./endpoint.ts";
import {
  InvalidPublicationError,
  NoHealthyEndpointsError,
  NotSyncedError,
  type RosterClientError,
  StalePublicationError,
  UnknownServiceError,
} from "./errors.ts";
import { type RequestLike, requestHashKey } from "./hash-key.ts";
import {
  createRegistry,
  type EventName,
  type Registry,
  type RosterClientEvents,
  type ServiceRef,
  type ServiceSnapshot,
} from "./registry.ts";
import { type Ramp, rampOf, sameWeights } from "./slow-start.ts";
import { type ConfigMapSource, informerSource } from "./source.ts";

/** The application's say over balancing; anything left out follows the published policy. */
export interface BalancingOverride {
  strategy?: StrategyName;
  consistentHash?: ConsistentHashOptions;
  leastConnections?: LeastConnectionsOptions;
  /** true: prefer the caller's zone (default thresholds); false: never; object: with these thresholds. */
  zoneAware?: boolean | ZoneAwareOptions;
}

export interface RosterClientOptions {
  /** The namespace of unqualified service names, and the one watched if `namespaces` is not given. Default: the kubeconfig context's namespace (in a pod: the pod's), else `default`. */
  namespace?: string;
  /** Namespaces to watch, or `all` (needs cluster-wide list/watch on ConfigMaps). Default: [namespace]. */
  namespaces?: readonly string[] | "all";
  /** The caller's zone (e.g. from the node's topology.kubernetes.io/zone label); a pick may override it. */
  zone?: string;
  /** Balancing overrides for every service, or per service. */
  balancing?:
    | BalancingOverride
    | ((service: ServiceRef, published: LoadBalancing) => BalancingOverride | undefined);
  /** Selects the published ConfigMaps; default PUBLISHED_CONFIGMAP_SELECTOR. */
  labelSelector?: string;
  /** Read ConfigMaps from here instead of the cluster (tests: `memorySource()`). */
  source?: ConfigMapSource;
  /** Randomness of Random, power-of-two-choices, start offsets; default Math.random. */
  rng?: Rng;
  /** The clock slow start ramps are measured by (tests: `fakeClock()`); default the system clock. */
  clock?: Pick<Clock, "now">;
  logger?: Logger;
  /** Called with what a listener threw (it never stops the other listeners); default: a process warning. */
  onListenerError?: (err: Error, event: EventName) => void;
}

export interface ClientPickOptions {
  /** Consistent-hash key (a user id, a session id). */
  key?: string;
  /** The caller's zone for this pick; default the client's `zone`. */
  zone?: string;
  /** For ConsistentHash: derive the key from this request as the policy says (header, cookie, query, source IP). */
  request?: RequestLike;
}

export interface ReadyOptions {
  signal?: AbortSignal;
  /** Reject with NotSyncedError after this long. */
  timeoutMs?: number;
}

type Listener<E extends EventName> = (event: RosterClientEvents[E]) => void;

interface BalancerState {
  snapshot: ServiceSnapshot;
  balancer: Balancer<RosterEndpoint>;
  /** The slow-start weights the balancer was built with; undefined: the published ones. */
  ramp: Ramp | undefined;
  /** When the ramp was last weighed (ms). */
  weighedAt: number;
}

/**
 * How often, at most, a ramping set is weighed again (its balancer rebuilt
 * only when a weight moved): the ramp follows the clock to a quarter second
 * at O(1) per pick in between.
 */
export const RAMP_REFRESH_MS = 250;

function contextNamespace(kc: KubeConfig | undefined): string | undefined {
  if (!kc) return undefined;
  return kc.getContextObject(kc.getCurrentContext())?.namespace || undefined;
}

export class RosterClient {
  /** Namespace of unqualified service names. */
  readonly namespace: string;
  /** Watched namespaces, or "all". */
  readonly namespaces: readonly string[] | "all";
  readonly zone: string | undefined;

  readonly #source: ConfigMapSource;
  readonly #registry: Registry;
  readonly #options: RosterClientOptions;
  readonly #rng: Rng;
  readonly #clock: Pick<Clock, "now">;
  readonly #balancers = new Map<string, BalancerState>();
  readonly #trackers = new Map<string, InFlightTracker>();
  readonly #listeners = new Map<EventName, Set<(event: never) => void>>();
  #started = false;
  #closed = false;

  /**
   * @param kubeConfig Where the cluster is; default `KubeConfig.loadFromDefault()`
   *   ($KUBECONFIG, ~/.kube/config, or the pod's service account in-cluster).
   *   Not used when `options.source` is given.
   */
  constructor(kubeConfig?: KubeConfig, options: RosterClientOptions = {}) {
    let kc = kubeConfig;
    if (!options.source && !kc) {
      kc = new KubeConfig();
      kc.loadFromDefault();
    }
    this.#options = options;
    this.namespace = options.namespace ?? contextNamespace(kc) ?? "default";
    this.namespaces =
      options.namespaces === "all"
        ? "all"
        : [...new Set(options.namespaces?.length ? options.namespaces : [this.namespace])].sort();
    this.zone = options.zone;
    this.#rng = options.rng ?? Math.random;
    this.#clock = options.clock ?? systemClock;
    this.#source =
      options.source ??
      informerSource(kc!, {
        namespaces: this.namespaces === "all" ? undefined : this.namespaces,
        labelSelector: options.labelSelector,
        logger: options.logger,
      });
    this.#registry = createRegistry((name, event) => this.#emit(name, event));
    this.#source.addHandler({
      onAdd: (cm) => this.#registry.upsert(cm),
      onUpdate: (_old, cm) => this.#registry.upsert(cm),
      onDelete: (cm) => this.#registry.remove(cm),
    });
  }

  /** Starts watching (idempotent). `ready()` calls it. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#source.start();
  }

  /** Resolves once the first list of published ConfigMaps is in memory. */
  async ready(options: ReadyOptions = {}): Promise<void> {
    this.start();
    if (this.#source.hasSynced()) return;
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            ac.abort();
          }, options.timeoutMs);
    try {
      const ok = await this.#source.waitForSync(ac.signal);
      if (ok) return;
      if (options.signal?.aborted) throw options.signal.reason;
      throw new NotSyncedError(
        timedOut
          ? `Roster client did not sync within ${options.timeoutMs} ms`
          : "Roster client was closed before it synced",
      );
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Whether the first sync is done (reads work). */
  get synced(): boolean {
    return this.#started && this.#source.hasSynced();
  }

  /** Stops watching. Reads keep answering from the last state. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#source.stop();
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as (event: never) => void);
    return () => this.off(event, listener);
  }

  off<E extends EventName>(event: E, listener: Listener<E>): void {
    this.#listeners.get(event)?.delete(listener as (event: never) => void);
  }

  /** Published services in the watched namespaces. */
  services(): ServiceRef[] {
    this.#requireSynced();
    return this.#registry.services();
  }

  /** The whole published state of a service: revision, panic, hints, every endpoint in every state. */
  service(name: string): ServiceSnapshot {
    return this.#snapshot(name);
  }

  /**
   * The endpoints that can take new traffic (not draining, weight > 0,
   * healthy — or, in panic, every non-draining one), sorted by id. `all`:
   * every published endpoint, whatever its state. Empty is a valid answer.
   */
  endpoints(name: string, options: { all?: boolean } = {}): readonly RosterEndpoint[] {
    const snap = this.#snapshot(name);
    if (options.all) return snap.endpoints;
    return snap.endpoints.filter((e) => isEligible(balanceView(e), snap.panic));
  }

  /**
   * An endpoint for one request. Call `release()` when the request is done
   * (LeastConnections counts on it; harmless for the others).
   * @throws NotSyncedError, UnknownServiceError, InvalidPublicationError, StalePublicationError, NoHealthyEndpointsError
   */
  pick(name: string, options: ClientPickOptions = {}): Picked<RosterEndpoint> {
    const snap = this.#snapshot(name);
    const key = serviceKey(snap);
    let state = this.#balancers.get(key);
    if (state?.snapshot !== snap) {
      state = this.#build(key, snap, undefined);
    } else if (state.ramp) {
      // Ramping: weigh again now and then; rebuild only when a weight moved.
      const now = this.#clock.now();
      if (now >= state.ramp.end || now - state.weighedAt >= RAMP_REFRESH_MS)
        state = this.#build(key, snap, state);
    }
    let hashKey = options.key;
    if (hashKey === undefined && options.request && snap.loadBalancing.consistentHash) {
      hashKey = requestHashKey(snap.loadBalancing.consistentHash.key, options.request);
    }
    const picked = state.balancer.pick({ key: hashKey, zone: options.zone ?? this.zone });
    if (!picked) {
      const states: Record<string, number> = {};
      for (const e of snap.endpoints) states[e.state] = (states[e.state] ?? 0) + 1;
      throw new NoHealthyEndpointsError(snap.namespace, snap.service, snap.revision, states);
    }
    return picked;
  }

  /**
   * The eligible endpoints of several services at once (see `endpoints()`).
   * Throws UnknownServiceError naming every unknown service, unless
   * `ignoreUnknown`, which leaves them out of the map.
   */
  discoverMany(
    names: Iterable<string>,
    options: { ignoreUnknown?: boolean; all?: boolean } = {},
  ): Map<string, readonly RosterEndpoint[]> {
    this.#requireSynced();
    const out = new Map<string, readonly RosterEndpoint[]>();
    const unknown: string[] = [];
    let firstError: RosterClientError | undefined;
    for (const name of names) {
      try {
        out.set(name, this.endpoints(name, { all: options.all }));
      } catch (err) {
        if (!(err instanceof UnknownServiceError || err instanceof InvalidPublicationError)) throw err;
        if (options.ignoreUnknown) continue;
        unknown.push(name);
        firstError ??= err;
      }
    }
    if (firstError) {
      if (unknown.length === 1) throw firstError;
      const ns = firstError.namespace ?? this.namespace;
      throw new UnknownServiceError(ns, unknown.join(", "), `${unknown.length} services unknown`);
    }
    return out;
  }

  /** In-flight requests on an endpoint of a service (LeastConnections only; 0 otherwise). */
  inFlight(name: string, endpointId: string): number {
    const [namespace, service] = this.#resolve(name);
    return this.#balancers.get(`${namespace}/${service}`)?.balancer.inFlight(endpointId) ?? 0;
  }

  /** The service's balancer for a snapshot at the clock's time (the previous one kept when its weights still hold). */
  #build(key: string, snap: ServiceSnapshot, previous: BalancerState | undefined): BalancerState {
    let tracker = this.#trackers.get(key);
    if (!tracker) {
      tracker = createInFlightTracker();
      this.#trackers.set(key, tracker);
    }
    const now = this.#clock.now();
    const options = this.#balancerOptions(snap, tracker);
    const ramp = rampOf(snap.endpoints, snap.loadBalancing.slowStart, options.strategy, now);
    if (previous && sameWeights(previous.ramp, ramp)) {
      previous.weighedAt = now;
      return previous;
    }
    const weights = ramp?.weights;
    const state: BalancerState = {
      snapshot: snap,
      ramp,
      weighedAt: now,
      balancer: createBalancer(snap.endpoints, {
        ...options,
        strategy: ramp?.strategy ?? options.strategy,
        view: weights ? (e) => ({ ...balanceView(e), weight: weights.get(e.id) ?? e.weight }) : balanceView,
      }),
    };
    this.#balancers.set(key, state);
    return state;
  }

  #balancerOptions(snap: ServiceSnapshot, tracker: InFlightTracker): CreateBalancerOptions {
    const lb = snap.loadBalancing;
    const b = this.#options.balancing;
    const override =
      (typeof b === "function" ? b({ namespace: snap.namespace, service: snap.service }, lb) : b) ?? {};
    let consistentHash: ConsistentHashOptions = {};
    const ch = lb.consistentHash;
    if (ch?.algorithm === "Maglev") {
      consistentHash = {
        algorithm: "maglev",
        tableSize: isPrime(ch.tableSize) ? ch.tableSize : nextPrime(ch.tableSize),
      };
    } else if (ch?.algorithm === "Ring") {
      // Published Ring tableSize is a floor on the ring size (like Envoy's
      // minimum_ring_size): points are otherwise per weight, so that one
      // endpoint leaving moves only its own keys.
      consistentHash = { algorithm: "ring", minRingSize: ch.tableSize };
    }
    const zoneAware = override.zoneAware ?? lb.zoneAware;
    return {
      strategy: override.strategy ?? lb.strategy,
      consistentHash: { ...consistentHash, ...override.consistentHash },
      leastConnections: override.leastConnections,
      zoneAware: zoneAware === true ? {} : zoneAware,
      panic: snap.panic,
      rng: this.#rng,
      tracker,
    };
  }

  #emit<E extends EventName>(name: E, event: RosterClientEvents[E]): void {
    if (name === "updated") {
      const u = event as RosterClientEvents["updated"];
      if (u.deleted) {
        const key = serviceKey(u);
        this.#balancers.delete(key);
        this.#trackers.delete(key);
      }
    }
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E>)(event);
      } catch (err) {
        // A listener's bug must not stop the others or the client's own bookkeeping.
        const error = err instanceof Error ? err : new Error(String(err));
        if (this.#options.onListenerError) this.#options.onListenerError(error, name);
        else process.emitWarning(error, "RosterClientListenerError");
      }
    }
  }

  #requireSynced(): void {
    if (!this.synced) throw new NotSyncedError();
  }

  #resolve(name: string): [string, string] {
    const slash = name.indexOf("/");
    return slash < 0 ? [this.namespace, name] : [name.slice(0, slash), name.slice(slash + 1)];
  }

  #snapshot(name: string): ServiceSnapshot {
    this.#requireSynced();
    const [namespace, service] = this.#resolve(name);
    const snap = this.#registry.get(namespace, service);
    // Refused rather than served from the last good document: that set is
    // outdated (drained or failed instances may still be ready in it).
    const stale = this.#registry.staleOf(namespace, service);
    if (stale) throw new StalePublicationError(namespace, service, stale, snap);
    if (snap) return snap;
    if (this.namespaces !== "all" && !this.namespaces.includes(namespace)) {
      throw new UnknownServiceError(
        namespace,
        service,
        `namespace ${namespace} is not watched by this client`,
      );
    }
    const error = this.#registry.errorOf(namespace, service);
    if (error) throw new InvalidPublicationError(namespace, service, error);
    throw new UnknownServiceError(namespace, service);
  }
}

function serviceKey(ref: ServiceRef): string {
  return `${ref.namespace}/${ref.service}`;
}
