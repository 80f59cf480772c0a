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
 * so a lost event delays a group by at most that long. Writes stay correct
 * without the tracker (preconditions); it only saves the failed ones.
 */
import type { Clock } from "../util/clock.ts";
import type { Informer } from "./informer.ts";
import { type KubeObject, objectKey } from "./object.ts";

export interface WriteTracker {
  /** Records that this process wrote `obj` (as the API server returned it) for `group`. */
  wrote(group: string, obj: KubeObject): void;
  /** Records that this process deleted the object `key` (`namespace/name`) for `group`. */
  deleted(group: string, key: string): void;
  /** Whether a write recorded for `group` is not in the cache yet. */
  behind(group: string): boolean;
  /** Feeds an informer's events to the tracker. Returns a function that detaches it. */
  observe(informer: Informer<KubeObject>): () => void;
}

interface Pending {
  group: string;
  /** undefined: a delete. */
  resourceVersion: string | undefined;
  at: number;
}

export function writeTracker(clock: Clock, maxAgeMs = 2000): WriteTracker {
  /** Per object key, its latest write (a later write replaces an earlier one). */
  const pending = new Map<string, Pending>();
  const groups = new Map<string, Set<string>>();
  const sources: Informer<KubeObject>[] = [];

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
    if (gone ? p.resourceVersion === undefined : p.resourceVersion === obj.metadata.resourceVersion)
      settle(key);
  }

  return {
    wrote(group, obj) {
      const key = objectKey(obj);
      const rv = obj.metadata.resourceVersion;
      if (sources.some((i) => i.get(key)?.metadata.resourceVersion === rv)) settle(key);
      else record(key, { group, resourceVersion: rv, at: clock.now() });
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
    observe(informer) {
      sources.push(informer);
      return informer.addHandler({
        onAdd: (o) => seen(o, false),
        onUpdate: (_, o) => seen(o, false),
        onDelete: (o) => seen(o, true),
      });
    },
  };
}
