/**
 * Unit-test fakes: an in-memory Informer (for controller tests) and a
 * scripted KubeClient (for informer and events tests). Integration tests
 * never use these; they run against the sandbox.
 */
import type { KubeClient, KubeRequest, KubeStream } from "../../../src/kube/client.ts";
import type { EventHandler, Informer } from "../../../src/kube/informer.ts";
import { type KubeObject, objectKey, resources } from "../../../src/kube/object.ts";
import { createStore } from "../../../src/kube/store.ts";

export interface FakeInformer<T extends KubeObject> extends Informer<T> {
  upsert(obj: T): void;
  remove(key: string): void;
  markSynced(): void;
}

export function fakeInformer<T extends KubeObject>(type = resources.configMaps): FakeInformer<T> {
  const store = createStore<T>();
  const handlers = new Set<EventHandler<T>>();
  let synced = false;
  const waiters: ((ok: boolean) => void)[] = [];
  return {
    type,
    namespace: undefined,
    get: (k) => store.get(k),
    list: (ns) => store.list(ns),
    keys: () => store.keys(),
    byIndex: (i, v) => store.byIndex(i, v),
    get size() {
      return store.size;
    },
    addIndex: (n, f) => store.addIndex(n, f),
    addHandler(h) {
      handlers.add(h);
      for (const [, o] of store.entries()) h.onAdd?.(o, true);
      return () => void handlers.delete(h);
    },
    start() {},
    async stop() {},
    hasSynced: () => synced,
    waitForSync: () => (synced ? Promise.resolve(true) : new Promise((r) => waiters.push(r))),
    stats: () => ({
      resource: type.plural,
      namespace: undefined,
      synced,
      objects: store.size,
      lastResourceVersion: "",
      relists: 0,
      watchRestarts: { closed: 0, error: 0, inactivity: 0, expired: 0 },
      events: 0,
    }),
    upsert(obj) {
      const old = store.set(obj);
      for (const h of handlers) {
        if (old) h.onUpdate?.(old, obj);
        else h.onAdd?.(obj, false);
      }
    },
    remove(key) {
      const old = store.delete(key);
      if (old) for (const h of handlers) h.onDelete?.(old, false);
    },
    markSynced() {
      synced = true;
      for (const w of waiters.splice(0)) w(true);
    },
  };
}

export function configMap(
  name: string,
  namespace = "ns",
  rv = "1",
  data: Record<string, string> = {},
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace, resourceVersion: rv },
    data,
  } as KubeObject;
}

export const keyOf = objectKey;

/** A watch stream the test pushes lines into. */
export interface ScriptedStream extends KubeStream {
  push(event: unknown): void;
  end(): void;
  readonly closed: boolean;
}

export function scriptedStream(signal?: AbortSignal): ScriptedStream {
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let closed = false;
  const stop = () => {
    closed = true;
    wake?.();
  };
  if (signal?.aborted) closed = true;
  signal?.addEventListener("abort", stop, { once: true });
  async function* lines(): AsyncIterable<string> {
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (ended || closed) return;
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
  }
  return {
    lines: lines(),
    close: stop,
    push(event) {
      queue.push(JSON.stringify(event));
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    get closed() {
      return closed;
    },
  };
}

/** A KubeClient whose answers the test scripts: `onRequest` for plain calls, `onStream` for watches. */
export function scriptedClient(handlers: {
  onRequest?: (req: KubeRequest) => unknown | Promise<unknown>;
  onStream?: (req: KubeRequest) => KubeStream | Promise<KubeStream>;
}): KubeClient & { requests: KubeRequest[] } {
  const requests: KubeRequest[] = [];
  return {
    requests,
    async request<T>(req: KubeRequest): Promise<T> {
      requests.push(req);
      if (!handlers.onRequest) throw new Error(`unexpected request ${req.method} ${req.path}`);
      return (await handlers.onRequest(req)) as T;
    },
    async stream(req) {
      requests.push(req);
      if (!handlers.onStream) throw new Error(`unexpected watch ${req.path}`);
      return handlers.onStream(req);
    },
  };
}
