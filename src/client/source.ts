/**
 * Where the client's ConfigMaps come from. In a cluster: the controller
 * runtime's informer (list + watch, relist on 410, reconnect with backoff),
 * one per watched namespace, selecting Roster's published ConfigMaps by
 * label. In tests: an in-memory source driven by hand.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { LABEL_MANAGED_BY, LABEL_ROSTER_SERVICE, ROSTER_MANAGER } from "../api/published.ts";
import { kubeClient } from "../kube/client.ts";
import { combineInformers, createInformer, type EventHandler, type Informer } from "../kube/informer.ts";
import type { Logger } from "../kube/log.ts";
import { type KubeObject, objectKey, resources } from "../kube/object.ts";

export interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

/** The part of an informer the client uses; `Informer<ConfigMapObject>` is one. */
export interface ConfigMapSource {
  addHandler(handler: EventHandler<ConfigMapObject>): () => void;
  start(): void;
  stop(): Promise<void>;
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<boolean>;
}

/** Roster's published ConfigMaps: managed by Roster and labelled with their service. */
export const PUBLISHED_CONFIGMAP_SELECTOR = `${LABEL_MANAGED_BY}=${ROSTER_MANAGER},${LABEL_ROSTER_SERVICE}`;

export interface InformerSourceOptions {
  /** Namespaces to watch; undefined watches all namespaces (needs cluster-wide list/watch on ConfigMaps). */
  namespaces: readonly string[] | undefined;
  labelSelector?: string;
  logger?: Logger;
}

export function informerSource(kc: KubeConfig, options: InformerSourceOptions): Informer<ConfigMapObject> {
  const client = kubeClient(kc);
  const make = (namespace: string | undefined) =>
    createInformer<ConfigMapObject>({
      client,
      type: resources.configMaps,
      namespace,
      labelSelector: options.labelSelector ?? PUBLISHED_CONFIGMAP_SELECTOR,
      logger: options.logger,
    });
  if (options.namespaces === undefined) return make(undefined);
  return combineInformers([...new Set(options.namespaces)].map(make));
}

export interface MemorySource extends ConfigMapSource {
  /** Adds or replaces a ConfigMap (by namespace/name) and tells the handlers. */
  apply(cm: ConfigMapObject): void;
  /** Deletes a ConfigMap by object or `namespace/name` key. */
  remove(cm: ConfigMapObject | string): void;
  /** Marks the initial list as delivered (hasSynced() becomes true). */
  markSynced(): void;
}

/**
 * A ConfigMap source held in memory, for tests of code that uses the client.
 * Behaves like an informer: late handlers get the current objects as adds,
 * updates carry the previous object.
 */
export function memorySource(initial: readonly ConfigMapObject[] = [], { synced = true } = {}): MemorySource {
  const objects = new Map<string, ConfigMapObject>();
  for (const cm of initial) objects.set(objectKey(cm), cm);
  const handlers = new Set<EventHandler<ConfigMapObject>>();
  const waiters = new Set<(ok: boolean) => void>();
  let isSynced = synced;
  let started = false;
  let rv = 0;
  const stamp = (cm: ConfigMapObject): ConfigMapObject => ({
    ...cm,
    metadata: { ...cm.metadata, resourceVersion: String(++rv) },
  });
  return {
    addHandler(h) {
      handlers.add(h);
      if (started) for (const cm of objects.values()) h.onAdd?.(cm, true);
      return () => void handlers.delete(h);
    },
    start() {
      if (started) return;
      started = true;
      for (const cm of objects.values()) for (const h of handlers) h.onAdd?.(cm, true);
      if (isSynced) {
        for (const w of waiters) w(true);
        waiters.clear();
      }
    },
    async stop() {
      for (const w of waiters) w(false);
      waiters.clear();
    },
    hasSynced: () => isSynced && started,
    waitForSync(signal) {
      if (isSynced && started) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (ok: boolean) => {
          waiters.delete(done);
          resolve(ok);
        };
        waiters.add(done);
        signal?.addEventListener("abort", () => done(false), { once: true });
      });
    },
    apply(cm) {
      const next = stamp(cm);
      const key = objectKey(next);
      const prev = objects.get(key);
      objects.set(key, next);
      if (!started) return;
      for (const h of handlers) {
        if (prev) h.onUpdate?.(prev, next);
        else h.onAdd?.(next, false);
      }
    },
    remove(cm) {
      const key = typeof cm === "string" ? cm : objectKey(cm);
      const prev = objects.get(key);
      if (!prev) return;
      objects.delete(key);
      if (started) for (const h of handlers) h.onDelete?.(prev, false);
    },
    markSynced() {
      isSynced = true;
      if (!started) return;
      for (const w of waiters) w(true);
      waiters.clear();
    },
  };
}
