/**
 * Endpoints as the client hands them out: the published endpoint (address,
 * ports, weight, zone, tags, metadata, state) plus its identity and service.
 * Objects are frozen and shared: a consumer can keep one, compare it by `id`
 * across revisions, and never sees it change under its feet.
 */
import {
  canonicalJson,
  type PublishedEndpoint,
  type PublishedEndpoints,
  type PublishedPort,
} from "../api/published.ts";
import type { BalanceEndpoint } from "../balance/types.ts";

export interface RosterEndpoint extends PublishedEndpoint {
  /** `instance/address`: stable across revisions; what consistent hashing hashes. */
  readonly id: string;
  readonly namespace: string;
  readonly service: string;
  /** state is Draining: no new traffic. */
  readonly draining: boolean;
}

/**
 * How the balancer sees a published endpoint. "Healthy" for balancing means
 * the published state is Ready (the operator's verdict after thresholds and
 * damping), not the raw `healthy` flag; with the document's panic flag this
 * makes exactly the `ready` endpoints eligible.
 */
export function balanceView(e: RosterEndpoint): BalanceEndpoint {
  return { id: e.id, weight: e.weight, zone: e.zone, healthy: e.state === "Ready", draining: e.draining };
}

export function endpointId(ep: Pick<PublishedEndpoint, "instance" | "address">): string {
  return `${ep.instance}/${ep.address}`;
}

export function toRosterEndpoints(doc: PublishedEndpoints): RosterEndpoint[] {
  const out = doc.endpoints.map((ep) =>
    Object.freeze({
      ...ep,
      ports: Object.freeze(ep.ports.map((p) => Object.freeze({ ...p }))) as PublishedPort[],
      tags: Object.freeze([...ep.tags]) as string[],
      metadata: Object.freeze({ ...ep.metadata }),
      id: endpointId(ep),
      namespace: doc.namespace,
      service: doc.service,
      draining: ep.state === "Draining",
    }),
  );
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** `host:port` for a port name (the first port when omitted); IPv6 addresses in brackets. */
export function hostPort(endpoint: RosterEndpoint, portName?: string): string {
  const port = portName === undefined ? endpoint.ports[0] : endpoint.ports.find((p) => p.name === portName);
  if (!port) throw new RangeError(`endpoint ${endpoint.id} has no port named ${portName}`);
  const host = endpoint.family === "IPv6" ? `[${endpoint.address}]` : endpoint.address;
  return `${host}:${port.port}`;
}

export interface EndpointDiff {
  added: RosterEndpoint[];
  removed: RosterEndpoint[];
  /** Every endpoint whose published content changed: [before, after]. */
  changed: [RosterEndpoint, RosterEndpoint][];
  /** The subset of `changed` whose state, readiness, health verdict or degradation changed. */
  healthChanged: [RosterEndpoint, RosterEndpoint][];
}

const contentOf = ({ id: _id, namespace: _ns, service: _svc, draining: _d, ...published }: RosterEndpoint) =>
  canonicalJson(published);

export function diffEndpoints(
  before: readonly RosterEndpoint[],
  after: readonly RosterEndpoint[],
): EndpointDiff {
  const old = new Map(before.map((e) => [e.id, e]));
  const diff: EndpointDiff = { added: [], removed: [], changed: [], healthChanged: [] };
  for (const e of after) {
    const prev = old.get(e.id);
    if (!prev) {
      diff.added.push(e);
      continue;
    }
    old.delete(e.id);
    if (contentOf(prev) === contentOf(e)) continue;
    diff.changed.push([prev, e]);
    if (
      prev.state !== e.state ||
      prev.ready !== e.ready ||
      prev.healthy !== e.healthy ||
      prev.degraded !== e.degraded
    )
      diff.healthChanged.push([prev, e]);
  }
  diff.removed = [...old.values()];
  return diff;
}
