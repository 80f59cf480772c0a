/**
 * What an independent watcher sees published, per source and address:
 * "slices" (ready endpoints of Roster's EndpointSlices) and "configmap"
 * (endpoints with `ready: true` in Roster's ConfigMaps). Built on the
 * bench's list+watch (bench/lib.ts `watch`: resumes, relists on expiry);
 * here every object's ready set is kept so that an address is ready while
 * any object of its source lists it as ready (an endpoint can sit in two
 * slices for a moment while it moves).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type Watcher, watch } from "../../bench/lib.ts";

export const SOURCES = ["slices", "configmap"] as const;
export type Source = (typeof SOURCES)[number];

export interface Published {
  /** Ready addresses of a source now. */
  ready(source: Source): Set<string>;
  /** Watch events delivered, by resource. */
  events(): Record<string, number>;
  stop(): void;
}

interface Obj {
  metadata?: { name?: string };
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean } }[];
  data?: Record<string, string>;
}

function readyOf(resource: string, obj: Obj): string[] {
  if (resource === "endpointslices")
    return (obj.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses ?? []);
  try {
    const doc = JSON.parse(obj.data?.["endpoints.json"] ?? "{}") as {
      endpoints?: { address: string; ready: boolean }[];
    };
    return (doc.endpoints ?? []).filter((e) => e.ready).map((e) => e.address);
  } catch {
    return [];
  }
}

export async function watchPublished(
  kc: KubeConfig,
  namespace: string,
  onChange: (source: Source, address: string, ready: boolean, at: number) => void,
): Promise<Published> {
  const perObject = new Map<string, Set<string>>();
  const counts: Record<Source, Map<string, number>> = { slices: new Map(), configmap: new Map() };
  const onEvent = (resource: string, type: string, raw: unknown) => {
    const source: Source | undefined =
      resource === "endpointslices" ? "slices" : resource === "configmaps" ? "configmap" : undefined;
    if (!source) return;
    const obj = raw as Obj;
    const key = `${source}/${obj.metadata?.name}`;
    const before = perObject.get(key) ?? new Set<string>();
    const after = new Set(type === "DELETED" ? [] : readyOf(resource, obj));
    if (after.size > 0) perObject.set(key, after);
    else perObject.delete(key);
    const now = Date.now();
    const c = counts[source];
    for (const a of after) {
      if (before.has(a)) continue;
      const n = (c.get(a) ?? 0) + 1;
      c.set(a, n);
      if (n === 1) onChange(source, a, true, now);
    }
    for (const a of before) {
      if (after.has(a)) continue;
      const n = (c.get(a) ?? 1) - 1;
      if (n > 0) c.set(a, n);
      else {
        c.delete(a);
        onChange(source, a, false, now);
      }
    }
  };
  const w: Watcher = await watch(kc, namespace, {
    sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
    configMaps: true,
    onEvent,
  });
  return {
    ready: (source) => new Set(counts[source].keys()),
    events: () => ({ ...w.events }),
    stop: () => w.stop(),
  };
}
