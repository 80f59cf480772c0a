/**
 * The informer's in-memory store: objects by key, with secondary indexes
 * (client-go's Indexer), read by reconcilers through the `Reader` interface.
 *
 * Guarantees:
 * - Objects are stored and returned by reference and must be treated as
 *   immutable: callers that want to change one copy it first
 *   (`structuredClone`). Sharing is what keeps the cache small.
 * - Indexes are always consistent with the objects: an index added late is
 *   built from the current content; `set`/`delete` keep every index in step.
 * - `list(namespace)` and `byIndex` cost O(result), not O(store).
 */
import { type KubeObject, objectKey } from "./object.ts";

export type IndexFunc<T> = (obj: T) => readonly string[];

/** Read-only view of a cache, what reconcilers get. */
export interface Reader<T extends KubeObject> {
  get(key: string): T | undefined;
  /** All objects, or those of one namespace. */
  list(namespace?: string): T[];
  keys(): string[];
  byIndex(index: string, value: string): T[];
  readonly size: number;
}

export interface Store<T extends KubeObject> extends Reader<T> {
  /** Stores the object under its key; returns the previous one. */
  set(obj: T): T | undefined;
  delete(key: string): T | undefined;
  addIndex(name: string, fn: IndexFunc<T>): void;
  entries(): IterableIterator<[string, T]>;
}

export const namespaceIndex = "namespace";

function addTo(values: Map<string, Set<string>>, value: string, key: string): void {
  const set = values.get(value);
  if (set) set.add(key);
  else values.set(value, new Set([key]));
}

export function createStore<T extends KubeObject>(): Store<T> {
  const items = new Map<string, T>();
  const indexes = new Map<string, { fn: IndexFunc<T>; values: Map<string, Set<string>> }>();

  function indexAdd(key: string, obj: T): void {
    for (const { fn, values } of indexes.values()) {
      for (const v of fn(obj)) {
        addTo(values, v, key);
      }
    }
  }

  function indexRemove(key: string, obj: T): void {
    for (const { fn, values } of indexes.values()) {
      for (const v of fn(obj)) {
        const set = values.get(v);
        if (!set) continue;
        set.delete(key);
        if (set.size === 0) values.delete(v);
      }
    }
  }

  const store: Store<T> = {
    get: (key) => items.get(key),
    list(namespace) {
      if (namespace === undefined) return [...items.values()];
      return store.byIndex(namespaceIndex, namespace);
    },
    keys: () => [...items.keys()],
    byIndex(index, value) {
      const idx = indexes.get(index);
      if (!idx) throw new Error(`no index named ${index}`);
      const keys = idx.values.get(value);
      if (!keys) return [];
      const out: T[] = [];
      for (const k of keys) out.push(items.get(k)!);
      return out;
    },
    get size() {
      return items.size;
    },
    set(obj) {
      const key = objectKey(obj);
      const old = items.get(key);
      if (old) indexRemove(key, old);
      items.set(key, obj);
      indexAdd(key, obj);
      return old;
    },
    delete(key) {
      const old = items.get(key);
      if (!old) return undefined;
      items.delete(key);
      indexRemove(key, old);
      return old;
    },
    addIndex(name, fn) {
      if (indexes.has(name)) throw new Error(`index ${name} already exists`);
      indexes.set(name, { fn, values: new Map() });
      const values = indexes.get(name)!.values;
      for (const [key, obj] of items) {
        for (const v of fn(obj)) {
          addTo(values, v, key);
        }
      }
    },
    entries: () => items.entries(),
  };
  store.addIndex(namespaceIndex, (obj) => [obj.metadata.namespace ?? ""]);
  return store;
}
