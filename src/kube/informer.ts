/**
 * The informer: a list+watch cache of one resource type (optionally one
 * namespace and label/field selectors), with event handlers. client-go's
 * reflector + shared informer, in one small module.
 *
 * How it runs: list (paginated, a consistent read), then watch from the
 * list's resourceVersion with `allowWatchBookmarks` and a randomized server
 * timeout (5-10 min, like client-go), then keep watching from the last
 * resourceVersion seen (events and bookmarks). On any error it reconnects
 * with jittered exponential backoff (800 ms doubling to 30 s by default). On
 * `410 Gone` / `Expired` (an HTTP status or an ERROR event in the stream) it
 * relists and emits the difference between the cache and the fresh list.
 * A watch that delivers nothing (not even a bookmark) for
 * `inactivityTimeoutMs` is torn down and re-established from the last
 * resourceVersion, which catches half-open connections; before re-watching
 * it asks the client to check the (shared, HTTP/2) connection and redial it
 * if it is dead. A watch that expires again right after a relist (within
 * 1 s, nothing received) waits for the backoff before the next relist, so a
 * server that keeps answering 410 cannot make it spin.
 *
 * Guarantees:
 * - Convergence: after any sequence of disconnects, expiries and silent
 *   watches, once a watch is healthy again the cache equals the server's
 *   state, and every difference was delivered to handlers as add, update or
 *   delete (deletes missed while disconnected arrive with
 *   `finalStateUnknown = true` and the last known object).
 * - resourceVersions are opaque: compared for equality only, never ordered.
 * - Handlers see old and new objects; `onUpdate(o, o)` with the same object
 *   twice is a periodic resync (only if `resyncPeriodMs` is set). An update
 *   whose resourceVersion did not change is not delivered (except resync).
 * - `hasSynced()` turns true once the first list is in the cache and every
 *   handler has seen it (so a queue fed by the handlers holds every key), and
 *   stays true across relists.
 * - A handler added after start is first given every cached object as an add,
 *   so late handlers do not miss objects.
 * - A throwing handler is logged and does not affect other handlers or the
 *   cache.
 * - Stored objects carry `apiVersion` and `kind` (list items from the API
 *   server do not) and, by default, no `metadata.managedFields` and no
 *   `kubectl.kubernetes.io/last-applied-configuration` annotation (nothing
 *   reads them; together they are often most of an object's size).
 * - A list is transformed page by page as it arrives, so the raw objects of
 *   a large list (with their managedFields) are not all alive at once.
 */
import type { Clock, Timer } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import { type Backoff, type BackoffOptions, backoff, sleep } from "./backoff.ts";
import { ApiError, isGone, type KubeClient, type StatusBody } from "./client.ts";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import type { RuntimeMetrics, WatchRestartReason } from "./metrics.ts";
import {
  apiVersionOf,
  type KubeList,
  type KubeObject,
  objectKey,
  type ResourceType,
  resourceName,
  resourcePath,
  splitKey,
} from "./object.ts";
import { createStore, type IndexFunc, type Reader, type Store } from "./store.ts";
import { defaultTransform } from "./transform.ts";

export interface EventHandler<T extends KubeObject> {
  /** `inInitialList`: the object came with the first list (or replay to a late handler). */
  onAdd?(obj: T, inInitialList: boolean): void;
  /** `oldObj === newObj` means a periodic resync. */
  onUpdate?(oldObj: T, newObj: T): void;
  /** `finalStateUnknown`: the delete was inferred from a relist; `obj` is the last known state. */
  onDelete?(obj: T, finalStateUnknown: boolean): void;
}

export interface InformerStats {
  resource: string;
  namespace: string | undefined;
  synced: boolean;
  objects: number;
  lastResourceVersion: string;
  relists: number;
  watchRestarts: Record<WatchRestartReason, number>;
  /** Events (including bookmarks) received over all watches. */
  events: number;
}

export interface Informer<T extends KubeObject = KubeObject> extends Reader<T> {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  /** Registers a handler; returns a function that removes it. */
  addHandler(handler: EventHandler<T>): () => void;
  addIndex(name: string, fn: IndexFunc<T>): void;
  /** Starts listing and watching; idempotent. */
  start(): void;
  /** Stops the watch and waits for the loop to end; idempotent. */
  stop(): Promise<void>;
  hasSynced(): boolean;
  /** Resolves true once synced, false if stopped or aborted first. */
  waitForSync(signal?: AbortSignal): Promise<boolean>;
  stats(): InformerStats;
}

export interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  type: ResourceType;
  /** Watch one namespace; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  /** Re-deliver every cached object as `onUpdate(o, o)` this often; 0/undefined: never. */
  resyncPeriodMs?: number;
  /** Restart a watch that received nothing for this long (default 3 min; 0 disables). */
  inactivityTimeoutMs?: number;
  /** Server-side watch timeout, uniformly drawn from this range (default 300-600 s). */
  watchTimeoutSeconds?: [number, number];
  /** List page size (default 1000: twice client-go's, fewer round trips, bounded transient memory). */
  pageSize?: number;
  /** Timeout of each list page request (default 60 s). */
  requestTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Applied to every object before it is stored (default: `defaultTransform`). */
  transform?: (obj: T) => T;
  random?: () => number;
  /** Called with every failed list (the informer retries it with backoff). */
  onListError?: (err: unknown) => void;
}

export const defaultInactivityTimeoutMs = 180_000;

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject & StatusBody;
}

type WatchOutcome = "closed" | "inactivity" | "expired" | "stopped" | "short";

export function createInformer<T extends KubeObject>(options: InformerOptions<T>): Informer<T> {
  const { client, type } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const resource = resourceName(type);
  const log = (options.logger ?? silentLogger()).child({ resource, namespace: options.namespace ?? "*" });
  const metrics = options.metrics;
  const inactivityMs = options.inactivityTimeoutMs ?? defaultInactivityTimeoutMs;
  const [minTimeout, maxTimeout] = options.watchTimeoutSeconds ?? [300, 600];
  const pageSize = options.pageSize ?? 1000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const transform = options.transform ?? defaultTransform;
  const apiVersion = apiVersionOf(type);
  const collection = resourcePath(type, { namespace: options.namespace });
  const selectors = { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector };

  const store: Store<T> = createStore<T>();
  const handlers = new Set<EventHandler<T>>();
  const retry: Backoff = backoff({ ...options.backoff, clock, random });
  const syncWaiters = new Set<(ok: boolean) => void>();

  let started = false;
  let stopped = false;
  let synced = false;
  let rv = "";
  let relists = 0;
  let events = 0;
  const restarts: Record<WatchRestartReason, number> = { closed: 0, error: 0, inactivity: 0, expired: 0 };
  let loop: Promise<void> | undefined;
  let justRelisted = false;
  let lastRelistAt = 0;
  let resyncTimer: Timer | undefined;
  const stopSignal = new AbortController();
  let current: AbortController | undefined;

  function prepare(raw: KubeObject): T {
    // List items lack apiVersion and kind: a new object with them (rather
    // than two properties added to the parsed one) stays compact in V8.
    const obj =
      raw.apiVersion === undefined || raw.kind === undefined ? { apiVersion, kind: type.kind, ...raw } : raw;
    return transform(obj as T);
  }

  function each(fn: (h: EventHandler<T>) => void): void {
    for (const h of handlers) {
      try {
        fn(h);
      } catch (err) {
        log.error({ err }, "informer event handler threw");
      }
    }
  }

  function countRestart(reason: WatchRestartReason): void {
    restarts[reason]++;
    metrics?.watchRestarts.inc({ resource, reason });
  }

  function setObjectsGauge(): void {
    metrics?.informerObjects.set({ resource }, store.size);
  }

  /**
   * Paginated consistent list, transformed page by page (a page's raw
   * objects can be collected before the next one arrives); falls back to
   * one unpaginated list if a continue token expires.
   */
  async function listAll(): Promise<{ items: T[]; resourceVersion: string }> {
    let limit: number | undefined = pageSize;
    for (;;) {
      const items: T[] = [];
      let cont: string | undefined;
      let listRv = "";
      try {
        do {
          const page: KubeList = await withTimeout((signal) =>
            client.request<KubeList>({
              method: "GET",
              path: collection,
              query: { ...selectors, limit, continue: cont },
              signal,
            }),
          );
          for (const it of page.items ?? []) items.push(prepare(it));
          cont = page.metadata?.continue || undefined;
          listRv = page.metadata?.resourceVersion ?? "";
        } while (cont);
        return { items, resourceVersion: listRv };
      } catch (err) {
        if (cont !== undefined && limit !== undefined && isGone(err)) {
          log.info("list continue token expired; listing without pagination");
          limit = undefined;
          continue;
        }
        throw err;
      }
    }
  }

  async function withTimeout<R>(fn: (signal: AbortSignal) => Promise<R>): Promise<R> {
    const ac = new AbortController();
    current = ac;
    const timer = clock.setTimer(
      () => ac.abort(new Error(`request timed out after ${requestTimeoutMs} ms`)),
      requestTimeoutMs,
    );
    try {
      return await fn(ac.signal);
    } finally {
      timer.cancel();
      if (current === ac) current = undefined;
    }
  }

  /** Lists and replaces the cache, delivering the differences. */
  async function relist(reason: "initial" | "expired"): Promise<void> {
    const { items, resourceVersion } = await listAll();
    if (stopped) return;
    relists++;
    metrics?.relists.inc({ resource, reason });
    const first = !synced;
    const seen = new Set<string>();
    let adds = 0;
    let updates = 0;
    let deletes = 0;
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = store.get(key);
      if (!old) {
        store.set(obj);
        adds++;
        each((h) => h.onAdd?.(obj, first));
      } else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) {
        store.set(obj);
        updates++;
        each((h) => h.onUpdate?.(old, obj));
      }
    }
    if (!first) {
      for (const key of store.keys()) {
        if (seen.has(key)) continue;
        const old = store.delete(key)!;
        deletes++;
        each((h) => h.onDelete?.(old, true));
      }
    }
    rv = resourceVersion;
    setObjectsGauge();
    log.info({ reason, objects: store.size, adds, updates, deletes, resourceVersion: rv }, "listed");
    if (first) {
      synced = true;
      metrics?.informerSynced.set({ resource }, 1);
      for (const w of syncWaiters) w(true);
      syncWaiters.clear();
    }
  }

  function apply(ev: WatchEvent): void {
    const obj = prepare(ev.object);
    const key = objectKey(obj);
    if (ev.type === "DELETED") {
      const old = store.delete(key);
      if (old) each((h) => h.onDelete?.(obj, false));
    } else {
      const old = store.get(key);
      if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
      store.set(obj);
      if (old) each((h) => h.onUpdate?.(old, obj));
      else each((h) => h.onAdd?.(obj, false));
    }
    setObjectsGauge();
  }

  async function watchOnce(): Promise<WatchOutcome> {
    if (stopped) return "stopped";
    const attempt = new AbortController();
    current = attempt;
    let inactive = false;
    let timer: Timer | undefined;
    const arm = () => {
      timer?.cancel();
      if (inactivityMs > 0) {
        timer = clock.setTimer(() => {
          inactive = true;
          attempt.abort();
        }, inactivityMs);
      }
    };
    const timeoutSeconds = Math.floor(minTimeout + random() * (maxTimeout - minTimeout));
    const startedAt = clock.now();
    let received = 0;
    arm(); // also bounds the time to get response headers
    try {
      const stream = await client.stream({
        method: "GET",
        path: collection,
        query: { ...selectors, watch: true, resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds },
        signal: attempt.signal,
      });
      try {
        for await (const line of stream.lines) {
          arm();
          received++;
          events++;
          let ev: WatchEvent;
          try {
            ev = JSON.parse(line) as WatchEvent;
          } catch {
            log.warn({ line: line.slice(0, 200) }, "unparseable watch line");
            continue;
          }
          if (ev.type === "ERROR") {
            const status = ev.object;
            if (status.code === 410 || status.reason === "Expired" || status.reason === "Gone")
              return "expired";
            throw new ApiError(status.code ?? 500, status, `watch ${collection}`);
          }
          if (received === 1) healthy();
          if (ev.type !== "BOOKMARK") apply(ev);
          const next = ev.object?.metadata?.resourceVersion;
          if (next) rv = next;
        }
      } finally {
        stream.close();
      }
    } catch (err) {
      if (stopped) return "stopped";
      if (inactive) return "inactivity";
      throw err;
    } finally {
      timer?.cancel();
      if (current === attempt) current = undefined;
    }
    if (stopped) return "stopped";
    if (inactive) return "inactivity";
    // A watch the server ends at once with nothing in it is as good as an error (client-go does the same).
    if (received === 0 && clock.now() - startedAt < 1000) return "short";
    return "closed";
  }

  /** A watch delivered something: the connection works, forget past failures. */
  function healthy(): void {
    retry.reset();
    justRelisted = false;
  }

  async function run(): Promise<void> {
    let needList: "initial" | "expired" | undefined = "initial";
    while (!stopped) {
      if (needList) {
        try {
          await relist(needList);
          needList = undefined;
          justRelisted = true;
          lastRelistAt = clock.now();
        } catch (err) {
          if (stopped) break;
          options.onListError?.(err);
          const delay = retry.next();
          log.warn({ err: String(err), retryInMs: Math.round(delay) }, "list failed");
          await sleep(clock, delay, stopSignal.signal);
          continue;
        }
      }
      let outcome: WatchOutcome;
      try {
        outcome = await watchOnce();
      } catch (err) {
        if (stopped) break;
        if (isGone(err)) {
          outcome = "expired";
        } else {
          countRestart("error");
          const delay = retry.next();
          log.warn({ err: String(err), retryInMs: Math.round(delay) }, "watch failed");
          await sleep(clock, delay, stopSignal.signal);
          continue;
        }
      }
      switch (outcome) {
        case "stopped":
          break;
        case "expired":
          countRestart("expired");
          needList = "expired";
          if (justRelisted && clock.now() - lastRelistAt < 1000) {
            // Expired again before anything arrived since the last relist: do not spin.
            const delay = retry.next();
            log.warn(
              { resourceVersion: rv, retryInMs: Math.round(delay) },
              "resourceVersion expired again; relisting after backoff",
            );
            await sleep(clock, delay, stopSignal.signal);
          } else {
            log.info({ resourceVersion: rv }, "resourceVersion expired; relisting");
          }
          break;
        case "inactivity": {
          countRestart("inactivity");
          // Silence can mean a dead connection that every request shares (HTTP/2): check it, redial if dead.
          const redialled = (await client.recover?.()) ?? false;
          log.warn({ inactivityTimeoutMs: inactivityMs, redialled }, "watch silent; restarting");
          break;
        }
        case "closed":
          countRestart("closed");
          log.debug("watch closed by server; resuming");
          break;
        case "short": {
          countRestart("error");
          const delay = retry.next();
          log.warn({ retryInMs: Math.round(delay) }, "watch ended immediately; backing off");
          await sleep(clock, delay, stopSignal.signal);
          break;
        }
      }
    }
  }

  function scheduleResync(): void {
    const period = options.resyncPeriodMs ?? 0;
    if (period <= 0 || stopped) return;
    resyncTimer = clock.setTimer(() => {
      if (stopped) return;
      if (synced) {
        for (const [, obj] of store.entries()) each((h) => h.onUpdate?.(obj, obj));
      }
      scheduleResync();
    }, period);
  }

  const informer: Informer<T> = {
    type,
    namespace: options.namespace,
    get: (key) => store.get(key),
    list: (namespace) => store.list(namespace),
    keys: () => store.keys(),
    byIndex: (index, value) => store.byIndex(index, value),
    get size() {
      return store.size;
    },
    addIndex: (name, fn) => store.addIndex(name, fn),

    addHandler(handler) {
      handlers.add(handler);
      if (started) {
        for (const [, obj] of store.entries()) {
          try {
            handler.onAdd?.(obj, true);
          } catch (err) {
            log.error({ err }, "informer event handler threw");
          }
        }
      }
      return () => void handlers.delete(handler);
    },

    start() {
      if (started || stopped) return;
      started = true;
      metrics?.informerSynced.set({ resource }, 0);
      loop = run().catch((err: unknown) => log.error({ err }, "informer loop crashed"));
      scheduleResync();
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      stopSignal.abort();
      current?.abort();
      resyncTimer?.cancel();
      for (const w of syncWaiters) w(false);
      syncWaiters.clear();
      await loop;
    },

    hasSynced: () => synced,

    waitForSync(signal) {
      if (synced) return Promise.resolve(true);
      if (stopped || signal?.aborted) return Promise.resolve(false);
      return new Promise((resolve) => {
        const done = (ok: boolean) => {
          syncWaiters.delete(done);
          signal?.removeEventListener("abort", onAbort);
          resolve(ok);
        };
        const onAbort = () => done(false);
        syncWaiters.add(done);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },

    stats: () => ({
      resource,
      namespace: options.namespace,
      synced,
      objects: store.size,
      lastResourceVersion: rv,
      relists,
      watchRestarts: { ...restarts },
      events,
    }),
  };
  return informer;
}

/**
 * One Informer over several per-namespace informers of the same type (what
 * controller-runtime's multi-namespace cache does): keys route to the
 * informer of their namespace.
 */
export function combineInformers<T extends KubeObject>(parts: Informer<T>[]): Informer<T> {
  if (parts.length === 0) throw new Error("combineInformers needs at least one informer");
  if (parts.length === 1) return parts[0]!;
  const byNs = new Map(parts.map((p) => [p.namespace ?? "", p]));
  const route = (key: string) => byNs.get(splitKey(key).namespace ?? "");
  return {
    type: parts[0]!.type,
    namespace: undefined,
    get: (key) => route(key)?.get(key),
    list: (namespace) =>
      namespace === undefined ? parts.flatMap((p) => p.list()) : (byNs.get(namespace)?.list(namespace) ?? []),
    keys: () => parts.flatMap((p) => p.keys()),
    byIndex: (index, value) => parts.flatMap((p) => p.byIndex(index, value)),
    get size() {
      return parts.reduce((n, p) => n + p.size, 0);
    },
    addIndex: (name, fn) => {
      for (const p of parts) p.addIndex(name, fn);
    },
    addHandler(handler) {
      const offs = parts.map((p) => p.addHandler(handler));
      return () => {
        for (const off of offs) off();
      };
    },
    start() {
      for (const p of parts) p.start();
    },
    async stop() {
      await Promise.all(parts.map((p) => p.stop()));
    },
    hasSynced: () => parts.every((p) => p.hasSynced()),
    async waitForSync(signal) {
      const results = await Promise.all(parts.map((p) => p.waitForSync(signal)));
      return results.every(Boolean);
    },
    stats() {
      const all = parts.map((p) => p.stats());
      const restarts = { closed: 0, error: 0, inactivity: 0, expired: 0 };
      for (const s of all)
        for (const k of Object.keys(restarts) as WatchRestartReason[]) restarts[k] += s.watchRestarts[k];
      return {
        resource: all[0]!.resource,
        namespace: undefined,
        synced: all.every((s) => s.synced),
        objects: all.reduce((n, s) => n + s.objects, 0),
        lastResourceVersion: "",
        relists: all.reduce((n, s) => n + s.relists, 0),
        watchRestarts: restarts,
        events: all.reduce((n, s) => n + s.events, 0),
      };
    },
  };
}
