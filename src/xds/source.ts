/**
 * Feeds the xDS server from the operator's cache of published ConfigMaps:
 * every replica has that cache (informers run everywhere, only the leader
 * writes), so every replica serves xDS, and what it serves is exactly the
 * published document, built once from the desired model by the publisher.
 * Services whose ConfigMap is disabled (publish.configMap.enabled: false) are
 * not served over xDS either.
 */
import { safeParsePublishedEndpoints } from "../api/published.ts";
import type { Informer, KubeObject } from "../kube/index.ts";
import type { Logger } from "../kube/log.ts";
import type { Clock } from "../util/clock.ts";
import type { XdsServer } from "./server.ts";

type ConfigMapLike = KubeObject & { data?: Record<string, string> };

/** Starts feeding; returns the function that stops it. */
export function feedFromConfigMaps(
  configMaps: Informer<ConfigMapLike>,
  server: Pick<XdsServer, "update">,
  clock: Clock,
  logger: Logger,
): () => void {
  /** ConfigMap key -> the service it published (for deletes and renames). */
  const published = new Map<string, { namespace: string; service: string }>();
  const key = (cm: ConfigMapLike) => `${cm.metadata.namespace}/${cm.metadata.name}`;
  const apply = (cm: ConfigMapLike) => {
    const k = key(cm);
    const parsed = safeParsePublishedEndpoints(cm.data);
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
    published.set(k, { namespace: doc.namespace, service: doc.service });
    server.update(doc.namespace, doc.service, doc, clock.now());
  };
  return configMaps.addHandler({
    onAdd: apply,
    onUpdate: (_old, cm) => apply(cm),
    onDelete: (cm) => {
      const before = published.get(key(cm));
      if (!before) return;
      published.delete(key(cm));
      server.update(before.namespace, before.service, undefined);
    },
  });
}
