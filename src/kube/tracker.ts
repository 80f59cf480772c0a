/**
 * Read-your-writes for informer caches, after Kubernetes' EndpointSlice
 * tracker: a controller that writes an object and reconciles again before
 * the watch has shown that write would plan from the old version, and its
 * next write would fail its resourceVersion precondition (409) or undo
 * nothing useful. The tracker records each write under a group (e.g. the
 * service whose objects they are) until the cache shows it; a reconcile that
 * finds its group `behind` waits for the watch instead of planning.
 *
 * Guarantees: a write is pending until an informer event carries its
 * resourceVersion (or, for a delete, a delete event for the key); a write
 * the cache already shows (an apply that changed nothing keeps the
 * resourceVersion and causes no event) is never pending; entries
 * older than `maxAgeMs` are dropped (a relist may skip the exact version),
 * so a lost event delays a group by at most that long; a delete event for
 * the key settles any write to it (the cache shows the truth: gone). Writes
 * stay correct without the tracker (preconditions); it only saves the
 * failed ones.
 *
 * `written(key)` serves the other half of read-your-writes: the object as
 * the last write returned it, while the cache still shows exactly the
 * version that write replaced (a status writer that reconciles again
 * before the watch caught up starts from its own write, so it neither
 * writes the same status twice nor records the same Event twice). Once
 * the cache shows any other version it is the truth again (resourceVersions
 * compare for equality only: a version after a skipped one cannot be told
 * from one before). Objects are held only while pending.
 */
import type { Clock } from "../util/clock.ts";
import type { Informer } from "./informer.ts";
import { type KubeObject, objectKey } from "./object.ts";

export interface WriteTracker {
  /**
   * Records that this process wrote `obj` (as the API server returned it)
   * for `group`. `replaced`: the version the write was computed from; when
   * the cache already shows another one, the cache is the truth and nothing
   * is recorded.
   */
  wrote(group: string, obj: KubeObject, replaced?: string): void;
  /** The object as last written, while the cache does not show that write yet. */
  written<T extends KubeObject>(key: string): T | undefined;
  /** Records that this process deleted the object `key` (`namespace/name`) for `group`. */
  deleted(group: string, key: string): void;
  /** Whether a write recorded for `group` is not in the cache yet. */
  behind(group: string): boolean;
  /** Feeds an informer's events to the tracker. Returns a function that detaches it. */
  observe<T extends KubeObject>(informer: Informer<T>): () => void;
}

interface Pending {
  group: string;
  /** undefined: a delete. */
  resourceVersion: string | undefined;
  /** The object as written (undefined: a delete). */
  object?: KubeObject;
  /** The version the cache showed when it was written. */
  over?: string;
  at: number;
}

export function writeTracker(clock: Clock, maxAgeMs = 2000): WriteTracker {
  /** Per object key, its latest write (a later write replaces an earlier one). */
  const pending = new Map<string, Pending>();
  const groups = new Map<string, Set<string>>();
  const sources: { get(key: string): KubeObject | undefined }[] = [];
  let swept = clock.now();

  /** Drops expired entries; a full scan at most once per maxAgeMs, so entries never outlive 2 × maxAgeMs by much. */
  function sweep(now: number): void {
    if (now - swept < maxAgeMs) return;
    swept = now;
    for (const [key, p] of pending) if (now - p.at >= maxAgeMs) settle(key);
  }

  function record(key: string, p: Pending): void {
    const old = pending.get(key);
    if (old && old.group !== p.group) groups.get(old.group)?.delete(key);
    pending.set(key, p);
    const keys = groups.get(p.group) ?? new Set<string>();
    groups.set(p.group, keys);
    keys.add(key);
  }

  function settle(key: string): void {
    const p = pending.get(key);
    if (!p) return;
    pending.delete(key);
    const keys = groups.get(p.group);
    keys?.delete(key);
    if (keys?.size === 0) groups.delete(p.group);
  }

  function seen(obj: KubeObject, gone: boolean): void {
    const key = objectKey(obj);
    const p = pending.get(key);
    if (!p) return;
    if (gone || p.resourceVersion === obj.metadata.resourceVersion) settle(key);
  }

  return {
    wrote(group, obj, replaced) {
      const key = objectKey(obj);
      const rv = obj.metadata.resourceVersion;
      sweep(clock.now());
      const cached = sources.map((i) => i.get(key)?.metadata.resourceVersion);
      if (cached.includes(rv) || (replaced !== undefined && !cached.includes(replaced))) settle(key);
      else {
        const over = replaced ?? cached.find((v) => v !== undefined);
        record(key, { group, resourceVersion: rv, object: obj, over, at: clock.now() });
      }
    },
    written<T extends KubeObject>(key: string) {
      const p = pending.get(key);
      if (!p?.object || !sources.some((i) => i.get(key)?.metadata.resourceVersion === p.over))
        return undefined;
      return p.object as T;
    },
    deleted(group, key) {
      record(key, { group, resourceVersion: undefined, at: clock.now() });
    },
    behind(group) {
      const keys = groups.get(group);
      if (!keys) return false;
      const now = clock.now();
      for (const key of [...keys]) if (now - pending.get(key)!.at >= maxAgeMs) settle(key);
      return (groups.get(group)?.size ?? 0) > 0;
    },
    observe<T extends KubeObject>(informer: Informer<T>) {
      sources.push(informer);
      return informer.addHandler({
        onAdd: (o) => seen(o, false),
        onUpdate: (_, o) => seen(o, false),
        onDelete: (o) => seen(o, true),
      });
    },
  };
}
