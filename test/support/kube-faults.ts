/**
 * Helpers for the runtime's integration tests: a TCP fault proxy between the
 * informer and the real API server (cut, freeze, refuse connections: network
 * faults, not a fake API), a ConfigMap churn generator, and a convergence
 * check that compares a cache with a fresh list from the server.
 */
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import type { KubeClient } from "../../src/kube/client.ts";
import type { EventHandler, Informer } from "../../src/kube/informer.ts";
import { type KubeList, type KubeObject, objectKey, resourcePath, resources } from "../../src/kube/object.ts";
import { eventually } from "./cluster.ts";

export interface FaultProxy {
  readonly port: number;
  /** Destroys every open connection (both sides see a reset). */
  cutAll(): number;
  /** Stops moving bytes on every open connection without closing it: a silent, half-dead watch. */
  freezeAll(): number;
  /** Refuses new connections while true. */
  refuse(on: boolean): void;
  open(): number;
  close(): Promise<void>;
}

export async function faultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const frozen: [Socket, Socket][] = [];
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cutAll() {
      const n = pairs.size;
      for (const [a, b] of pairs) {
        a.resetAndDestroy();
        b.destroy();
      }
      pairs.clear();
      return n;
    },
    freezeAll() {
      const n = pairs.size;
      for (const pair of pairs) {
        const [a, b] = pair;
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
        a.removeAllListeners("close");
        b.removeAllListeners("close");
        frozen.push(pair);
      }
      pairs.clear();
      return n;
    },
    refuse(on) {
      refusing = on;
    },
    open: () => pairs.size,
    async close() {
      for (const [a, b] of [...pairs, ...frozen]) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The same kubeconfig, pointed at the proxy. */
export function viaProxy(kc: KubeConfig, proxy: FaultProxy): KubeConfig {
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${proxy.port}` })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return out;
}

export function serverAddress(kc: KubeConfig): { host: string; port: number } {
  const u = new URL(kc.getCurrentCluster()!.server);
  return { host: u.hostname, port: Number(u.port) };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T>(
  items: T[],
  limit: number,
  fn: (item: T, i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Retries transient failures (the API server restarting, a cut connection). */
export async function retrying<T>(fn: () => Promise<T>, attempts = 600): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404 || status === 409 || i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface ChurnOptions {
  prefix: string;
  /** Names `<prefix>-0` up to `<prefix>-<existing - 1>` exist already (default 0). */
  existing?: number;
  creates: number;
  updates: number;
  deletes: number;
  concurrency?: number;
  /** Called between phases. */
  between?: () => Promise<void> | void;
}

/**
 * Creates `<prefix>-0..creates-1`, then updates the first `updates` names, then deletes the
 * last `deletes` names, as fast as `concurrency` allows.
 */
export async function churn(client: KubeClient, namespace: string, o: ChurnOptions): Promise<void> {
  const path = resourcePath(resources.configMaps, { namespace });
  const c = o.concurrency ?? 32;
  const n = Math.max(o.creates, o.existing ?? 0);
  const names = Array.from({ length: n }, (_, i) => `${o.prefix}-${i}`);
  await pool(names.slice(0, o.creates), c, (name) =>
    retrying(() =>
      client.request({ method: "POST", path, body: { metadata: { name }, data: { v: "0" } } }),
    ).catch((err: unknown) => {
      if ((err as { status?: number }).status !== 409) throw err;
    }),
  );
  await o.between?.();
  await pool(names.slice(0, o.updates), c, (name) =>
    retrying(() =>
      client.request({
        method: "PATCH",
        path: `${path}/${name}`,
        contentType: "application/merge-patch+json",
        body: { data: { v: "1" } },
      }),
    ),
  );
  await o.between?.();
  await pool(names.slice(names.length - o.deletes), c, (name) =>
    retrying(() => client.request({ method: "DELETE", path: `${path}/${name}` })).catch((err: unknown) => {
      if ((err as { status?: number }).status !== 404) throw err;
    }),
  );
}

/** What the handlers told us, replayed into a map key → resourceVersion. */
export function handlerMirror(informer: Informer<KubeObject>): Map<string, string | undefined> {
  const mirror = new Map<string, string | undefined>();
  const h: EventHandler<KubeObject> = {
    onAdd: (o) => void mirror.set(objectKey(o), o.metadata.resourceVersion),
    onUpdate: (_old, o) => void mirror.set(objectKey(o), o.metadata.resourceVersion),
    onDelete: (o) => void mirror.delete(objectKey(o)),
  };
  informer.addHandler(h);
  return mirror;
}

async function listRvs(client: KubeClient, namespace: string): Promise<Map<string, string | undefined>> {
  const list = await client.request<KubeList>({
    method: "GET",
    path: resourcePath(resources.configMaps, { namespace }),
  });
  return new Map(list.items.map((o) => [`${namespace}/${o.metadata.name}`, o.metadata.resourceVersion]));
}

function diff(
  want: Map<string, string | undefined>,
  got: Map<string, string | undefined>,
): string | undefined {
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !want.has(k));
  const stale = [...want].filter(([k, rv]) => got.has(k) && got.get(k) !== rv).map(([k]) => k);
  if (!missing.length && !extra.length && !stale.length) return undefined;
  return `missing ${missing.length} (${missing.slice(0, 3)}), extra ${extra.length} (${extra.slice(0, 3)}), stale ${stale.length} (${stale.slice(0, 3)})`;
}

/** Waits until the cache and the handler mirror both equal a fresh list from the server. */
export async function expectConverged(
  informer: Informer<KubeObject>,
  mirror: Map<string, string | undefined>,
  client: KubeClient,
  namespace: string,
  timeoutMs = 60_000,
): Promise<number> {
  let last = "";
  try {
    return await eventually(
      async () => {
        const want = await listRvs(client, namespace);
        const cache = new Map(
          informer.list(namespace).map((o) => [objectKey(o), o.metadata.resourceVersion]),
        );
        const d1 = diff(want, cache);
        const d2 = diff(want, mirror);
        last = `cache: ${d1 ?? "ok"}; handlers: ${d2 ?? "ok"}`;
        return d1 || d2 ? undefined : want.size;
      },
      { timeoutMs, intervalMs: 250, what: "the cache to converge" },
    );
  } catch (err) {
    assert.fail(`${(err as Error).message}; last difference: ${last}`);
  }
}
