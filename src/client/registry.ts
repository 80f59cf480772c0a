/**
 * The client's view of published services, fed by ConfigMap add/update/delete
 * events and producing change events. No I/O: the client wires it to a
 * source, tests drive it directly.
 *
 * Rules:
 * - A ConfigMap counts when its `endpoints.json` parses (a supported format
 *   version, valid) and names its own namespace. One without that key is not
 *   a published document and is ignored.
 * - An unreadable update keeps the last good document of that ConfigMap (the
 *   consumer keeps routing on the last known set) and reports `invalid`.
 * - A stale document (`stale` set: the operator could not publish the current
 *   set, e.g. over the size budget) makes the service stale: reads refuse it
 *   (the client throws StalePublicationError, which carries the last good
 *   snapshot for callers that choose to use it) and `stale` is reported. The
 *   last good document is kept, never served as current.
 * - Two ConfigMaps publishing the same service: the one whose name sorts
 *   first wins, deterministically.
 * - Format 2 (split, src/api/published-parts.ts): parts are held as they
 *   arrive; a head counts once every part it lists is held with its
 *   revision and hash. Until then (a torn read: the watch showed the head
 *   before a part, or a part already rewritten for the next revision) the
 *   head is pending and the last good document stays served; a part's
 *   arrival retries its pending head. Parts never count on their own.
 * - A document with the revision already applied changes nothing (resyncs,
 *   label edits); anything else is diffed against the current set and
 *   reported as deregistered, registered, healthChanged, then updated.
 */
import {
  type LoadBalancing,
  type PublishedEndpoints,
  PublishedFormatError,
  type PublishedStale,
} from "../api/published.ts";
import {
  assemblePublished,
  type HeldPart,
  type PublishedHead,
  safeParsePublishedData,
} from "../api/published-parts.ts";
import { objectKey } from "../kube/object.ts";
import { diffEndpoints, type RosterEndpoint, toRosterEndpoints } from "./endpoint.ts";
import type { ConfigMapObject } from "./source.ts";

export interface ServiceRef {
  namespace: string;
  service: string;
}

export interface ServiceSnapshot extends ServiceRef {
  /** The ConfigMap the document came from. */
  configMap: string;
  revision: number;
  panic: boolean;
  loadBalancing: LoadBalancing;
  /** Every published endpoint, in every state, sorted by id. */
  endpoints: readonly RosterEndpoint[];
}

export interface EndpointEvent extends ServiceRef {
  revision: number;
  endpoint: RosterEndpoint;
}

export interface HealthChangedEvent extends EndpointEvent {
  /** The endpoint as it was in the previous revision. */
  previous: RosterEndpoint;
}

export interface UpdatedEvent extends ServiceRef {
  /** The new revision; on `deleted`, the last one seen. */
  revision: number;
  /** Undefined for the first document seen of this service. */
  previousRevision: number | undefined;
  /** The ConfigMap is gone: the service is no longer published. */
  deleted: boolean;
  panic: boolean;
  /** Every published endpoint now (empty when deleted). */
  endpoints: readonly RosterEndpoint[];
  added: readonly RosterEndpoint[];
  removed: readonly RosterEndpoint[];
  /** Endpoints whose published content changed (state, weight, zone, ports, ...), as they are now. */
  changed: readonly RosterEndpoint[];
}

/** Why a service is stale: the stale document's marker, revision and ConfigMap. */
export interface StaleInfo extends PublishedStale {
  /** The stale document's revision. */
  revision: number;
  configMap: string;
}

export interface StaleEvent extends ServiceRef, StaleInfo {
  /** The revision of the last good document still kept (not served), if any. */
  lastGoodRevision: number | undefined;
}

export interface InvalidEvent {
  namespace: string;
  configMap: string;
  error: PublishedFormatError;
}

export interface RosterClientEvents {
  registered: EndpointEvent;
  deregistered: EndpointEvent;
  healthChanged: HealthChangedEvent;
  updated: UpdatedEvent;
  invalid: InvalidEvent;
  stale: StaleEvent;
}

export type EventName = keyof RosterClientEvents;
export type Emit = <E extends EventName>(name: E, event: RosterClientEvents[E]) => void;

interface ConfigMapEntry {
  namespace: string;
  name: string;
  /** Last good document, if any. */
  doc: PublishedEndpoints | undefined;
  /** The current document when it is stale (doc then stays the last good one). */
  staleDoc: PublishedEndpoints | undefined;
  /** Last error, cleared by a good document. */
  error: PublishedFormatError | undefined;
  /** The service this ConfigMap's document (or, failing that, its label) names. */
  service: string | undefined;
  /** A format-2 head whose parts are not all held (yet): doc stays the last good one. */
  pending: PublishedHead | undefined;
}

export interface Registry {
  upsert(cm: ConfigMapObject): void;
  remove(cm: ConfigMapObject): void;
  get(namespace: string, service: string): ServiceSnapshot | undefined;
  /** The read error of a service that has a ConfigMap but no readable document. */
  errorOf(namespace: string, service: string): PublishedFormatError | undefined;
  /** Set while the service's current document is stale. */
  staleOf(namespace: string, service: string): StaleInfo | undefined;
  services(): ServiceRef[];
}

const serviceKey = (namespace: string, service: string) => `${namespace}/${service}`;

export function createRegistry(emit: Emit, serviceLabel = "roster.dev/service"): Registry {
  const configMaps = new Map<string, ConfigMapEntry>();
  const services = new Map<string, ServiceSnapshot>();
  const stales = new Map<string, StaleInfo>();
  /** Format-2 parts by ConfigMap key. */
  const parts = new Map<string, HeldPart>();
  /** The service an entry publishes now: its stale document's, else its last good one's. */
  const current = (e: ConfigMapEntry) => (e.staleDoc ?? e.doc)?.service;

  /** The ConfigMap that publishes a service: the readable one whose name sorts first. */
  function winner(namespace: string, service: string): ConfigMapEntry | undefined {
    let best: ConfigMapEntry | undefined;
    for (const e of configMaps.values()) {
      if (e.namespace !== namespace || current(e) !== service) continue;
      if (!best || e.name < best.name) best = e;
    }
    return best;
  }

  /** Recomputes one service from its ConfigMaps and reports the difference. */
  function refresh(namespace: string, service: string): void {
    const key = serviceKey(namespace, service);
    const prev = services.get(key);
    const entry = winner(namespace, service);
    const staleDoc = entry?.staleDoc;
    if (staleDoc?.stale) {
      const was = stales.get(key);
      const info: StaleInfo = { ...staleDoc.stale, revision: staleDoc.revision, configMap: entry!.name };
      stales.set(key, info);
      if (was?.revision !== info.revision || was.configMap !== info.configMap) {
        emit("stale", { namespace, service, ...info, lastGoodRevision: prev?.revision });
      }
      return;
    }
    stales.delete(key);
    if (!entry) {
      if (!prev) return;
      services.delete(key);
      for (const endpoint of prev.endpoints) {
        emit("deregistered", { namespace, service, revision: prev.revision, endpoint });
      }
      emit("updated", {
        namespace,
        service,
        revision: prev.revision,
        previousRevision: prev.revision,
        deleted: true,
        panic: false,
        endpoints: [],
        added: [],
        removed: prev.endpoints,
        changed: [],
      });
      return;
    }
    const doc = entry.doc;
    if (!doc) return;
    if (prev && prev.configMap === entry.name && prev.revision === doc.revision) return;
    const endpoints = toRosterEndpoints(doc);
    const next: ServiceSnapshot = {
      namespace,
      service,
      configMap: entry.name,
      revision: doc.revision,
      panic: doc.panic,
      loadBalancing: doc.loadBalancing,
      endpoints,
    };
    services.set(key, next);
    const diff = diffEndpoints(prev?.endpoints ?? [], endpoints);
    const revision = doc.revision;
    for (const endpoint of diff.removed) emit("deregistered", { namespace, service, revision, endpoint });
    for (const endpoint of diff.added) emit("registered", { namespace, service, revision, endpoint });
    for (const [previous, endpoint] of diff.healthChanged) {
      emit("healthChanged", { namespace, service, revision, endpoint, previous });
    }
    emit("updated", {
      namespace,
      service,
      revision,
      previousRevision: prev?.revision,
      deleted: false,
      panic: doc.panic,
      endpoints,
      added: diff.added,
      removed: diff.removed,
      changed: diff.changed.map(([, after]) => after),
    });
  }

  function remove(cm: ConfigMapObject): void {
    const key = objectKey(cm);
    // A deleted part changes nothing served: the writer deletes parts only
    // once the head no longer lists them.
    if (parts.delete(key)) return;
    const prev = configMaps.get(key);
    if (!prev) return;
    configMaps.delete(key);
    const service = current(prev);
    if (service) refresh(prev.namespace, service);
  }

  /** Assembles a format-2 head from the held parts: accepted when whole, pending when torn. */
  function settle(entry: ConfigMapEntry, head: PublishedHead, prev: ConfigMapEntry | undefined): void {
    const partOf = (name: string): HeldPart | undefined => parts.get(`${entry.namespace}/${name}`);
    const assembled = assemblePublished(head, partOf);
    if (assembled.ok) {
      accept({ ...entry, pending: undefined }, prev, assembled.document, undefined);
    } else if (assembled.torn) {
      configMaps.set(objectKey({ metadata: { namespace: entry.namespace, name: entry.name } }), {
        ...entry,
        service: head.service,
        pending: head,
      });
    } else {
      accept(entry, prev, undefined, assembled.error);
    }
  }

  /** Records a ConfigMap's document (or read error) and refreshes the services it touches. */
  function accept(
    base: ConfigMapEntry,
    prev: ConfigMapEntry | undefined,
    parsedDoc: PublishedEndpoints | undefined,
    parseError: PublishedFormatError | undefined,
  ): void {
    const { namespace, name } = base;
    let error = parseError;
    let doc = parsedDoc;
    if (doc && doc.namespace !== namespace) {
      error = new PublishedFormatError(
        "InvalidDocument",
        `document names namespace ${doc.namespace} but lives in ${namespace}`,
        doc.formatVersion,
      );
      doc = undefined;
    }
    // A stale document replaces nothing: the last good one stays (unserved).
    const staleDoc = doc?.stale ? doc : error ? prev?.staleDoc : undefined;
    const good = doc && !doc.stale ? doc : undefined;
    const entry: ConfigMapEntry = {
      namespace,
      name,
      doc: good ?? prev?.doc,
      staleDoc,
      error,
      service: doc?.service ?? base.service,
      pending: undefined,
    };
    configMaps.set(objectKey({ metadata: { namespace, name } }), entry);
    if (error) emit("invalid", { namespace, configMap: name, error });
    const before = prev && current(prev);
    const after = current(entry);
    if (before && before !== after) refresh(namespace, before);
    if (after) refresh(namespace, after);
  }

  return {
    remove,
    upsert(cm) {
      const key = objectKey(cm);
      const namespace = cm.metadata.namespace ?? "";
      const name = cm.metadata.name ?? "";
      const prev = configMaps.get(key);
      const parsed = safeParsePublishedData(cm.data);
      if (parsed.ok && parsed.kind === "part") {
        parts.set(key, { part: parsed.part, text: parsed.text });
        // The head this part belongs to may have been waiting for it.
        const head = configMaps.get(`${namespace}/${parsed.part.head}`);
        if (head?.pending) settle(head, head.pending, configMaps.get(`${namespace}/${parsed.part.head}`));
        return;
      }
      parts.delete(key);
      if (!parsed.ok && parsed.error.code === "MissingData") {
        // Not (or no longer) a published document.
        if (prev) remove(cm);
        return;
      }
      const entry: ConfigMapEntry = {
        namespace,
        name,
        doc: prev?.doc,
        staleDoc: prev?.staleDoc,
        error: undefined,
        service: prev?.service ?? cm.metadata.labels?.[serviceLabel],
        pending: undefined,
      };
      if (!parsed.ok) accept(entry, prev, undefined, parsed.error);
      else if (parsed.kind === "head") settle(entry, parsed.head, prev);
      else accept(entry, prev, parsed.document, undefined);
    },
    get: (namespace, service) => services.get(serviceKey(namespace, service)),
    errorOf(namespace, service) {
      for (const e of configMaps.values()) {
        if (e.namespace === namespace && e.service === service && e.error) return e.error;
      }
      return undefined;
    },
    staleOf: (namespace, service) => stales.get(serviceKey(namespace, service)),
    services() {
      const keys = new Set([...services.keys(), ...stales.keys()]);
      return [...keys].map((k) => {
        const slash = k.indexOf("/");
        return { namespace: k.slice(0, slash), service: k.slice(slash + 1) };
      });
    },
  };
}
