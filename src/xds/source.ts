/**
 * Feeds the xDS server from the operator's cache of published ConfigMaps:
 * every replica has that cache (informers run everywhere, only the leader
 * writes), so every replica serves xDS, and what it serves is exactly the
 * published document, built once from the desired model by the publisher.
 * Services whose ConfigMap is disabled (publish.configMap.enabled: false) are
 * not served over xDS either. A split document (format 2) is served once
 * its head and every part it lists are in the cache, the parts at the head's
 * revision (the client library's rule: a torn set is never served).
 *
 * Push latency is measured from the verdict: when a document arrives in which
 * endpoints' `healthy` (the probe verdict) flipped, the change began at the
 * latest of those endpoints' verdict times (`verdictSince`: the time the
 * probe result that changed the verdict was judged). Changes that flip no
 * verdict (drain, weights, new instances) are pushed but not timed.
 */

import type { PublishedEndpoints } from "../api/published.ts";
import { assemblePublished, type HeldPart, safeParsePublishedData } from "../api/published-parts.ts";
import type { Informer, KubeObject } from "../kube/index.ts";
import type { Logger } from "../kube/log.ts";
import type { Clock } from "../util/clock.ts";
import type { XdsServer } from "./server.ts";

type ConfigMapLike = KubeObject & { data?: Record<string, string> };

/** When the verdict of instance `name` in `namespace` last changed (ms), if known. */
export type VerdictSince = (namespace: string, instance: string) => number | undefined;

/**
 * When the change from `before` to `after` began: the latest verdict time of
 * the endpoints whose verdict flipped (undefined when none did, or no time is
 * known, or a known time lies in the future of `now`).
 */
export function verdictChangeTime(
  before: PublishedEndpoints | undefined,
  after: PublishedEndpoints,
  since: VerdictSince,
  now: number,
): number | undefined {
  if (!before) return undefined;
  const was = new Map(before.endpoints.map((e) => [`${e.instance}/${e.address}`, e.healthy]));
  let latest: number | undefined;
  for (const e of after.endpoints) {
    const prev = was.get(`${e.instance}/${e.address}`);
    if (prev === undefined || prev === e.healthy) continue;
    const t = since(after.namespace, e.instance);
    if (t !== undefined && t <= now && (latest === undefined || t > latest)) latest = t;
  }
  return latest;
}

/** Starts feeding; returns the function that stops it. */
export function feedFromConfigMaps(
  configMaps: Informer<ConfigMapLike>,
  server: Pick<XdsServer, "update">,
  clock: Clock,
  logger: Logger,
  verdictSince: VerdictSince = () => undefined,
): () => void {
  /** ConfigMap key -> the service it published (for deletes and renames). */
  const published = new Map<string, { namespace: string; service: string; doc: PublishedEndpoints }>();
  const key = (cm: ConfigMapLike) => `${cm.metadata.namespace}/${cm.metadata.name}`;
  /** Format-2 parts by key, and heads waiting for theirs. */
  const parts = new Map<string, HeldPart>();
  const pending = new Map<string, ConfigMapLike>();
  const apply = (cm: ConfigMapLike) => {
    const k = key(cm);
    const data = safeParsePublishedData(cm.data);
    if (data.ok && data.kind === "part") {
      parts.set(k, { part: data.part, text: data.text });
      const head = pending.get(`${cm.metadata.namespace}/${data.part.head}`);
      if (head) apply(head);
      return;
    }
    parts.delete(k);
    pending.delete(k);
    let parsed: { ok: true; document: PublishedEndpoints } | { ok: false; error: Error };
    if (!data.ok) {
      parsed = data;
    } else if (data.kind === "head") {
      const assembled = assemblePublished(data.head, (n) => parts.get(`${cm.metadata.namespace}/${n}`));
      if (!assembled.ok && assembled.torn) {
        pending.set(k, cm); // keep serving what was served until the set is whole
        return;
      }
      parsed = assembled.ok ? assembled : { ok: false, error: assembled.error };
    } else {
      parsed = data;
    }
    const before = published.get(k);
    if (!parsed.ok) {
      logger.warn(
        { configMap: k, err: parsed.error.message },
        "published ConfigMap unreadable: not served over xDS",
      );
      if (before) server.update(before.namespace, before.service, undefined);
      published.delete(k);
      return;
    }
    const doc = parsed.document;
    if (before && (before.namespace !== doc.namespace || before.service !== doc.service)) {
      server.update(before.namespace, before.service, undefined);
    }
    const same = before && before.namespace === doc.namespace && before.service === doc.service;
    const now = clock.now();
    published.set(k, { namespace: doc.namespace, service: doc.service, doc });
    server.update(
      doc.namespace,
      doc.service,
      doc,
      verdictChangeTime(same ? before.doc : undefined, doc, verdictSince, now),
    );
  };
  return configMaps.addHandler({
    onAdd: apply,
    onUpdate: (_old, cm) => apply(cm),
    onDelete: (cm) => {
      if (parts.delete(key(cm))) return;
      pending.delete(key(cm));
      const before = published.get(key(cm));
      if (!before) return;
      published.delete(key(cm));
      server.update(before.namespace, before.service, undefined);
    },
  });
}
