/**
 * Is a service's name taken by a Service Roster does not manage?
 *
 * The Services informer caches only Roster's own Services (label selector
 * `app.kubernetes.io/managed-by=roster.dev`), so a tenant's unrelated
 * Services cost the operator no memory. A name missing from that cache is
 * checked with one GET of that name, remembered for `ttlMs` (so status
 * writes of many instances of one service share it, and the publisher's
 * retry of a conflicted service sees the Service's removal within about
 * `ttlMs`). The memo holds at most `maxEntries` names (oldest evicted), and
 * concurrent checks of one name share one GET. When a name's answer changes,
 * `onChange` tells the caller (the instances of that service show or clear
 * their Conflict condition).
 */
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { isNotFound, type KubeClient } from "../kube/client.ts";
import type { Informer } from "../kube/informer.ts";
import { type KubeObject, resourcePath, resources, splitKey } from "../kube/object.ts";
import { isManagedByRoster } from "../publish/index.ts";
import type { Clock } from "../util/clock.ts";

export interface UnmanagedServices {
  /** True when `namespace/name` is a Service Roster does not manage (and so must not touch). */
  isUnmanaged(key: string, signal?: AbortSignal): Promise<boolean>;
}

export interface UnmanagedServicesOptions {
  client: KubeClient;
  /** The cache of Roster's own Services. */
  managed: Informer<KubeObject>;
  clock: Clock;
  ttlMs?: number;
  maxEntries?: number;
  onChange?: (key: string) => void;
}

/** How long a GET's answer is trusted: the conflict test's margin allows ~1 s for a removal to be seen. */
export const UNMANAGED_RECHECK_MS = 1000;

export function unmanagedServices(o: UnmanagedServicesOptions): UnmanagedServices {
  const ttl = o.ttlMs ?? UNMANAGED_RECHECK_MS;
  const max = o.maxEntries ?? 10_000;
  const memo = new Map<string, { at: number; unmanaged: boolean }>();
  const inflight = new Map<string, Promise<boolean>>();

  async function lookup(key: string, signal?: AbortSignal): Promise<boolean> {
    const { namespace, name } = splitKey(key);
    try {
      const live = await o.client.request<KubeObject>({
        method: "GET",
        path: resourcePath(resources.services, { namespace, name }),
        signal,
      });
      return !isManagedByRoster(live.metadata as V1ObjectMeta);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  return {
    async isUnmanaged(key, signal) {
      const cached = o.managed.get(key);
      if (cached) return !isManagedByRoster(cached.metadata as V1ObjectMeta);
      const hit = memo.get(key);
      if (hit && o.clock.now() - hit.at < ttl) return hit.unmanaged;
      let pending = inflight.get(key);
      if (!pending) {
        pending = lookup(key, signal)
          .then((unmanaged) => {
            const before = memo.get(key)?.unmanaged ?? false;
            memo.delete(key); // re-insert: Map order is age order
            memo.set(key, { at: o.clock.now(), unmanaged });
            while (memo.size > max) memo.delete(memo.keys().next().value!);
            if (before !== unmanaged) o.onChange?.(key);
            return unmanaged;
          })
          .finally(() => inflight.delete(key));
        inflight.set(key, pending);
      }
      return pending;
    },
  };
}
