/**
 * The EndpointSlice planner: a pure function from the desired endpoints (per
 * address family) and the existing slices to a plan of creates, updates and
 * deletes. It follows the upstream EndpointSlice reconciler
 * (kubernetes/pkg/controller/endpointslice, reconcileByAddressType and
 * reconcileByPortMapping) so that churn stays low:
 *
 * 1. Slices are grouped by address family, then by port list: a slice holds
 *    endpoints of one family with identical ports.
 * 2. Each existing slice keeps the endpoints that are still desired, where
 *    they are; stale endpoints are removed from it. A slice whose endpoints
 *    and labels did not change is left alone (never rewritten). A slice left
 *    empty is deleted.
 * 3. New endpoints first fill the slices that are being updated anyway,
 *    fullest first (a write that happens anyway absorbs them for free).
 * 4. What is left goes into the unchanged slice that ends closest to full, if
 *    all of it fits in one, else into new slices filled up to the maximum.
 * 5. A create paired with a delete of the same family becomes an update of
 *    the slice that would have been deleted (one write instead of two, and no
 *    moment where the endpoints are missing).
 *
 * Differences from upstream, on purpose:
 * - No placeholder slice for a service with no endpoints: a selector-less
 *   Service without slices has no endpoints, the same as with an empty slice.
 * - Slices over the maximum (after the maximum was lowered) give back their
 *   extra endpoints, so no slice ever exceeds it.
 * - Deterministic order everywhere (slices by name, endpoints by key) instead
 *   of map order, so equal inputs give equal plans.
 * - Deterministic names instead of generateName: `<service>-<family>-<n>` with
 *   the lowest free n. A name known before the write makes a create
 *   idempotent (a retry after a lost response gets AlreadyExists instead of
 *   making a duplicate slice with the same endpoints) and lets the writer use
 *   server-side apply, which needs a name. When a create fails with
 *   AlreadyExists the writer (src/kube/executor.ts) reads the object:
 *   Roster's → its cache is behind, the service is reconciled again once the
 *   watch shows it; not Roster's → never taken over: a Conflict on the
 *   policy (UnmanagedObject) until the name is free, as for a Service or a
 *   ConfigMap in the way: reported, not worked around (`takenNames` stays
 *   for planners that must route around names).
 *
 * Apply order for the writer: creates, then updates, then deletes (endpoints
 * are added before they are removed elsewhere).
 */
import type {
  DiscoveryV1EndpointPort,
  V1Endpoint,
  V1EndpointSlice,
  V1OwnerReference,
} from "@kubernetes/client-node";
import { ADDRESS_FAMILIES, type AddressFamily, compareStrings } from "../api/published.ts";
import type { DesiredSliceEndpoints, SliceEndpoint } from "./desired.ts";
import { hasLabels, isOwnedBy, sliceLabels } from "./labels.ts";

export const DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100;
/** The API server's limit on endpoints per slice. */
export const MAX_ENDPOINTS_PER_SLICE_LIMIT = 1000;

export interface SlicePlanOptions {
  namespace: string;
  /** The Roster service (and managed Service) name. */
  service: string;
  /** Owner reference to the managed Service; set on every slice written. */
  owner: V1OwnerReference;
  /** 1..1000, default 100. */
  maxEndpointsPerSlice?: number;
  /** Names that new slices must not take (slices Roster does not manage). */
  takenNames?: Iterable<string>;
}

export interface SlicePlanStats {
  /** Desired endpoints that were in no existing slice. */
  endpointsAdded: number;
  /** Existing endpoints no longer desired (duplicates included). */
  endpointsRemoved: number;
  /** Endpoints kept in place with changed content (conditions, zone, hints). */
  endpointsChanged: number;
  slicesUnchanged: number;
}

export interface SlicePlan {
  /** New slices, complete objects with their names. */
  create: V1EndpointSlice[];
  /**
   * Full desired state of existing slices, carrying the existing
   * metadata.resourceVersion (optimistic concurrency: a write based on a stale
   * cache fails with a conflict instead of losing someone's change).
   */
  update: V1EndpointSlice[];
  /** Existing slices to delete, as given. */
  delete: V1EndpointSlice[];
  stats: SlicePlanStats;
}

/** A desired endpoint during one plan. Identity: (addresses, targetRef namespace, targetRef name). */
interface Desired {
  /** The address, or the sorted addresses joined: input strings, no concatenation on the hot path. */
  addr: string;
  ns: string;
  name: string;
  endpoint: V1Endpoint;
  /** Placed in a slice during this plan. */
  placed: boolean;
}

function addressKey(ep: V1Endpoint): string {
  return ep.addresses.length === 1 ? ep.addresses[0]! : [...ep.addresses].sort(compareStrings).join(",");
}

/** Endpoint order within slices: by address, then by the object it stands for. */
function compareDesired(a: Desired, b: Desired): number {
  return compareStrings(a.addr, b.addr) || compareStrings(a.ns, b.ns) || compareStrings(a.name, b.name);
}

/**
 * Desired endpoints of one port group, indexed by address. Keys are the input
 * address strings themselves (V8 caches their hashes), not built keys.
 */
interface DesiredIndex {
  byAddr: Map<string, Desired | Desired[]>;
  all: Desired[];
}

function newIndex(): DesiredIndex {
  return { byAddr: new Map(), all: [] };
}

/** Adds an endpoint unless one with the same identity is there. */
function indexAdd(index: DesiredIndex, endpoint: V1Endpoint): void {
  const d: Desired = {
    addr: addressKey(endpoint),
    ns: endpoint.targetRef?.namespace ?? "",
    name: endpoint.targetRef?.name ?? "",
    endpoint,
    placed: false,
  };
  const found = index.byAddr.get(d.addr);
  if (found === undefined) index.byAddr.set(d.addr, d);
  else {
    const list = Array.isArray(found) ? found : [found];
    if (list.some((x) => x.ns === d.ns && x.name === d.name)) return;
    list.push(d);
    index.byAddr.set(d.addr, list);
  }
  index.all.push(d);
}

function indexFind(index: DesiredIndex, ep: V1Endpoint): Desired | undefined {
  const found = index.byAddr.get(addressKey(ep));
  if (found === undefined) return undefined;
  const ns = ep.targetRef?.namespace ?? "";
  const name = ep.targetRef?.name ?? "";
  if (!Array.isArray(found)) return found.ns === ns && found.name === name ? found : undefined;
  return found.find((x) => x.ns === ns && x.name === name);
}

interface Draft {
  /** Existing slice this draft rewrites; undefined for a new slice. */
  existing?: V1EndpointSlice;
  ports: DiscoveryV1EndpointPort[];
  endpoints: Desired[];
}

export function isEmptyPlan(plan: SlicePlan): boolean {
  return plan.create.length === 0 && plan.update.length === 0 && plan.delete.length === 0;
}

/** Ports in canonical form (sorted by name, protocol defaulted). */
export function normalizeSlicePorts(
  ports: readonly DiscoveryV1EndpointPort[] | undefined,
): DiscoveryV1EndpointPort[] {
  return (ports ?? [])
    .map((p) => {
      const out: DiscoveryV1EndpointPort = {
        name: p.name ?? "",
        port: p.port,
        protocol: p.protocol ?? "TCP",
      };
      if (p.appProtocol !== undefined) out.appProtocol = p.appProtocol;
      return out;
    })
    .sort((a, b) => compareStrings(a.name ?? "", b.name ?? ""));
}

/** Key of a port list; equal for lists equal after normalizeSlicePorts. */
function portsKey(ports: readonly DiscoveryV1EndpointPort[]): string {
  let sorted = true;
  for (let i = 1; i < ports.length; i++) {
    if (compareStrings(ports[i - 1]!.name ?? "", ports[i]!.name ?? "") > 0) sorted = false;
  }
  return (sorted ? ports : normalizeSlicePorts(ports))
    .map((p) => `${p.name ?? ""}/${p.port ?? ""}/${p.protocol ?? "TCP"}/${p.appProtocol ?? ""}`)
    .join(";");
}

function names(list: { name: string }[] | undefined): string {
  if (!list || list.length === 0) return "";
  if (list.length === 1) return list[0]!.name;
  return list
    .map((z) => z.name)
    .sort(compareStrings)
    .join(",");
}

function flag(v: boolean | undefined): string {
  return v === undefined ? "-" : v ? "1" : "0";
}

/**
 * Everything about an endpoint that the planner compares (what upstream's
 * EndpointsEqualBeyondHash compares), as one string. Absent and empty hints
 * are the same; address order does not matter. Hot path: one call per
 * endpoint, desired and existing, per plan.
 */
export function endpointFingerprint(ep: V1Endpoint): string {
  const c = ep.conditions;
  const ref = ep.targetRef;
  const h = ep.hints;
  const addresses =
    ep.addresses.length === 1 ? ep.addresses[0]! : [...ep.addresses].sort(compareStrings).join(",");
  return (
    `${addresses}\u0000${flag(c?.ready)}${flag(c?.serving)}${flag(c?.terminating)}\u0000${ep.zone ?? ""}` +
    `\u0000${h ? names(h.forZones) : ""}\u0000${h ? names(h.forNodes) : ""}\u0000${ep.nodeName ?? ""}` +
    `\u0000${ep.hostname ?? ""}\u0000` +
    (ref
      ? `${ref.apiVersion ?? ""}|${ref.kind ?? ""}|${ref.namespace ?? ""}|${ref.name ?? ""}|${ref.uid ?? ""}`
      : "")
  );
}

function sameNames(a: { name: string }[] | undefined, b: { name: string }[] | undefined): boolean {
  const la = a?.length ?? 0;
  const lb = b?.length ?? 0;
  if (la !== lb) return false;
  if (la === 0) return true;
  if (la === 1) return a![0]!.name === b![0]!.name;
  return names(a) === names(b);
}

/**
 * Whether two endpoints are equal for the planner: the same comparison as
 * endpointFingerprint(a) === endpointFingerprint(b), without building strings
 * (this runs once per existing endpoint per plan).
 */
export function sameEndpoint(a: V1Endpoint, b: V1Endpoint): boolean {
  if (a.addresses.length !== b.addresses.length) return false;
  if (a.addresses.length === 1) {
    if (a.addresses[0] !== b.addresses[0]) return false;
  } else if (
    [...a.addresses].sort(compareStrings).join(",") !== [...b.addresses].sort(compareStrings).join(",")
  ) {
    return false;
  }
  const ca = a.conditions;
  const cb = b.conditions;
  if (ca?.ready !== cb?.ready || ca?.serving !== cb?.serving || ca?.terminating !== cb?.terminating)
    return false;
  if (a.zone !== b.zone || a.nodeName !== b.nodeName || a.hostname !== b.hostname) return false;
  if (!sameNames(a.hints?.forZones, b.hints?.forZones) || !sameNames(a.hints?.forNodes, b.hints?.forNodes)) {
    return false;
  }
  const ra = a.targetRef;
  const rb = b.targetRef;
  if (ra === undefined || rb === undefined) return ra === rb;
  return (
    ra.apiVersion === rb.apiVersion &&
    ra.kind === rb.kind &&
    ra.namespace === rb.namespace &&
    ra.name === rb.name &&
    ra.uid === rb.uid
  );
}

function sliceName(service: string, family: AddressFamily, n: number): string {
  return `${service}-${family.toLowerCase()}-${n}`;
}

function validateMax(max: number): number {
  if (!Number.isInteger(max) || max < 1 || max > MAX_ENDPOINTS_PER_SLICE_LIMIT) {
    throw new RangeError(
      `maxEndpointsPerSlice must be an integer in 1..${MAX_ENDPOINTS_PER_SLICE_LIMIT}, got ${max}`,
    );
  }
  return max;
}

/** The unchanged slice that ends closest to full when `count` endpoints are added (upstream getSliceToFill). */
function sliceToFill(candidates: readonly Draft[], count: number, max: number): Draft | undefined {
  let best: Draft | undefined;
  let bestGap = max;
  for (const d of candidates) {
    const gap = max - (count + d.endpoints.length);
    if (gap >= 0 && gap < bestGap) {
      best = d;
      bestGap = gap;
      if (gap === 0) break;
    }
  }
  return best;
}

interface GroupResult {
  create: Draft[];
  update: Draft[];
  delete: V1EndpointSlice[];
  unchanged: number;
}

function reconcileGroup(
  existing: readonly V1EndpointSlice[],
  ports: DiscoveryV1EndpointPort[],
  desired: DesiredIndex,
  labels: Record<string, string>,
  max: number,
  stats: SlicePlanStats,
): GroupResult {
  const update: Draft[] = [];
  const unchanged: Draft[] = [];
  const del: V1EndpointSlice[] = [];
  let evicted = 0;

  // 1. Keep desired endpoints where they are; drop the rest.
  for (const slice of existing) {
    const kept: Desired[] = [];
    let changed = false;
    for (const ep of slice.endpoints ?? []) {
      const want = indexFind(desired, ep);
      if (!want || want.placed) {
        stats.endpointsRemoved++;
        changed = true;
        continue;
      }
      want.placed = true;
      kept.push(want);
      if (!sameEndpoint(ep, want.endpoint)) {
        stats.endpointsChanged++;
        changed = true;
      }
    }
    if (kept.length > max) {
      kept.sort(compareDesired);
      for (const extra of kept.splice(max)) {
        extra.placed = false;
        evicted++;
      }
      changed = true;
    }
    const draft: Draft = { existing: slice, ports, endpoints: kept };
    if (kept.length === 0) del.push(slice);
    else if (changed || !hasLabels(slice.metadata?.labels, labels)) update.push(draft);
    else unchanged.push(draft);
  }

  const rest = desired.all.filter((d) => !d.placed).sort(compareDesired);
  stats.endpointsAdded += rest.length - evicted;
  let next = 0;

  // 2. Fill the slices being written anyway, fullest first.
  if (rest.length > 0 && update.length > 0) {
    const byFullness = [...update].sort(
      (a, b) =>
        b.endpoints.length - a.endpoints.length ||
        compareStrings(a.existing?.metadata?.name ?? "", b.existing?.metadata?.name ?? ""),
    );
    for (const draft of byFullness) {
      while (next < rest.length && draft.endpoints.length < max) draft.endpoints.push(rest[next++]!);
    }
  }

  // 3. The rest: into one unchanged slice if it fits, else new slices.
  const create: Draft[] = [];
  while (next < rest.length) {
    const left = rest.length - next;
    let draft = left < max ? sliceToFill(unchanged, left, max) : undefined;
    if (draft) {
      unchanged.splice(unchanged.indexOf(draft), 1);
      update.push(draft);
    } else {
      draft = { ports, endpoints: [] };
      create.push(draft);
    }
    while (next < rest.length && draft.endpoints.length < max) draft.endpoints.push(rest[next++]!);
  }
  return { create, update, delete: del, unchanged: unchanged.length };
}

/**
 * Plans the EndpointSlices of one service. `existing` are the slices labelled
 * as Roster's for this service (selector: sliceSelector(service)); slices not
 * owned by `options.owner` (left from an earlier Service of the same name) and
 * slices of other address types are deleted, never reused.
 */
export function planEndpointSlices(
  desired: DesiredSliceEndpoints,
  existing: readonly V1EndpointSlice[],
  options: SlicePlanOptions,
): SlicePlan {
  const max = validateMax(options.maxEndpointsPerSlice ?? DEFAULT_MAX_ENDPOINTS_PER_SLICE);
  const labels = sliceLabels(options.service);
  const stats: SlicePlanStats = {
    endpointsAdded: 0,
    endpointsRemoved: 0,
    endpointsChanged: 0,
    slicesUnchanged: 0,
  };
  const plan: SlicePlan = { create: [], update: [], delete: [], stats };

  const taken = new Set<string>(options.takenNames ?? []);
  const live: V1EndpointSlice[] = [];
  for (const slice of [...existing].sort((a, b) =>
    compareStrings(a.metadata?.name ?? "", b.metadata?.name ?? ""),
  )) {
    if (slice.metadata?.name) taken.add(slice.metadata.name);
    // Already being deleted: neither reuse nor delete again.
    if (slice.metadata?.deletionTimestamp) continue;
    live.push(slice);
  }

  for (const family of ADDRESS_FAMILIES) {
    const familySlices: V1EndpointSlice[] = [];
    const familyDeletes: V1EndpointSlice[] = [];
    for (const slice of live) {
      if (slice.addressType !== family) continue;
      if (isOwnedBy(slice.metadata, options.owner)) familySlices.push(slice);
      else familyDeletes.push(slice);
    }

    // Desired endpoints by port list.
    const groups = new Map<string, { ports: DiscoveryV1EndpointPort[]; endpoints: DesiredIndex }>();
    // Endpoints of one instance usually share one ports array: normalize it once.
    const seenPorts = new Map<readonly DiscoveryV1EndpointPort[], string>();
    for (const entry of desired[family] ?? []) {
      let pk = seenPorts.get(entry.ports);
      if (pk === undefined) {
        pk = portsKey(entry.ports);
        seenPorts.set(entry.ports, pk);
        if (!groups.has(pk))
          groups.set(pk, { ports: normalizeSlicePorts(entry.ports), endpoints: newIndex() });
      }
      indexAdd(groups.get(pk)!.endpoints, entry.endpoint);
    }
    // Existing slices by port list.
    const existingByPorts = new Map<string, V1EndpointSlice[]>();
    for (const slice of familySlices) {
      const pk = portsKey(slice.ports ?? []);
      const list = existingByPorts.get(pk) ?? [];
      list.push(slice);
      existingByPorts.set(pk, list);
    }

    // An endpoint can only be in one port group at a time, but it may move
    // between groups (its instance changed ports): it then counts as removed
    // from one group and added to another, as upstream counts it.
    const creates: Draft[] = [];
    const updates: Draft[] = [];
    const deletes: V1EndpointSlice[] = [...familyDeletes];
    for (const pk of [...groups.keys()].sort(compareStrings)) {
      const group = groups.get(pk)!;
      const result = reconcileGroup(
        existingByPorts.get(pk) ?? [],
        group.ports,
        group.endpoints,
        labels,
        max,
        stats,
      );
      creates.push(...result.create);
      updates.push(...result.update);
      deletes.push(...result.delete);
      stats.slicesUnchanged += result.unchanged;
    }
    for (const [pk, slices] of [...existingByPorts].sort(([a], [b]) => compareStrings(a, b))) {
      if (groups.has(pk)) continue;
      for (const slice of slices) {
        stats.endpointsRemoved += slice.endpoints?.length ?? 0;
        deletes.push(slice);
      }
    }

    // 5. Creates paired with deletes of owned slices become updates.
    deletes.sort((a, b) => compareStrings(a.metadata?.name ?? "", b.metadata?.name ?? ""));
    const keptDeletes: V1EndpointSlice[] = [];
    for (const slice of deletes) {
      const draft = isOwnedBy(slice.metadata, options.owner) ? creates.shift() : undefined;
      if (draft) {
        draft.existing = slice;
        updates.push(draft);
      } else keptDeletes.push(slice);
    }

    let n = 1;
    const nextName = (): string => {
      while (taken.has(sliceName(options.service, family, n))) n++;
      const name = sliceName(options.service, family, n);
      taken.add(name);
      return name;
    };
    for (const draft of creates)
      plan.create.push(toSlice(draft, family, nextName(), undefined, options, labels));
    for (const draft of updates.sort((a, b) =>
      compareStrings(a.existing?.metadata?.name ?? "", b.existing?.metadata?.name ?? ""),
    )) {
      const meta = draft.existing?.metadata;
      plan.update.push(
        toSlice(draft, family, meta?.name ?? nextName(), meta?.resourceVersion, options, labels),
      );
    }
    plan.delete.push(...keptDeletes);
  }
  // Roster-labelled slices of address types Roster never writes (FQDN, IP).
  for (const slice of live) {
    if (!(ADDRESS_FAMILIES as readonly string[]).includes(slice.addressType)) plan.delete.push(slice);
  }
  return plan;
}

function toSlice(
  draft: Draft,
  family: AddressFamily,
  name: string,
  resourceVersion: string | undefined,
  options: SlicePlanOptions,
  labels: Record<string, string>,
): V1EndpointSlice {
  const endpoints = [...draft.endpoints].sort(compareDesired).map((d) => d.endpoint);
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      namespace: options.namespace,
      labels: { ...labels },
      ownerReferences: [{ ...options.owner }],
      ...(resourceVersion !== undefined ? { resourceVersion } : {}),
    },
    addressType: family,
    ports: draft.ports.map((p) => ({ ...p })),
    endpoints,
  };
}

/**
 * The slices after a plan is carried out: deleted ones gone, updated ones
 * replaced, created ones added; sorted by name. Used by tests and by a writer
 * that wants to know what it expects to see next.
 */
export function applySlicePlan(existing: readonly V1EndpointSlice[], plan: SlicePlan): V1EndpointSlice[] {
  const byName = new Map<string, V1EndpointSlice>();
  for (const s of existing) byName.set(s.metadata?.name ?? "", s);
  for (const s of plan.delete) byName.delete(s.metadata?.name ?? "");
  for (const s of [...plan.update, ...plan.create]) byName.set(s.metadata?.name ?? "", s);
  return [...byName.values()].sort((a, b) => compareStrings(a.metadata?.name ?? "", b.metadata?.name ?? ""));
}

/** Every endpoint of a set of slices with its family, for checks and metrics. */
export function sliceEndpoints(slices: readonly V1EndpointSlice[]): SliceEndpoint[] {
  const out: SliceEndpoint[] = [];
  for (const s of slices)
    for (const endpoint of s.endpoints ?? []) out.push({ ports: s.ports ?? [], endpoint });
  return out;
}
