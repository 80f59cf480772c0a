/**
 * The demo's traffic panel (`roster dev` on the data plane). A consumer in
 * the node namespace opens new connections to the shop Service's ClusterIP;
 * each answer names the backend that served it (src/dev/backend.ts). This
 * module turns those answers into connections per second per backend over a
 * sliding window, works out from the EndpointSlices which backends
 * kube-proxy routes to and why not the others, and renders both side by
 * side, so the rate column can be checked against its explanation. Beside
 * it, when the demo runs one, an xDS consumer's column: a grpc-go client
 * (bin/roster-xds-client) dialing xds:///shop.roster-demo through the
 * operator's xDS server, its RPCs per second per backend. It is no
 * kube-proxy: it follows Roster's health, drain and weights in every zone,
 * so its column is non-zero exactly for the instances published Ready.
 * Pure: every time is passed in.
 */
import type { InstanceView } from "./table.ts";

/** Key of connections that no backend served (refused, timed out, empty). */
export const FAILED = "(failed)";

/**
 * Events per second per key over the last `windowMs`. Events older than the
 * window are dropped as time goes on, so a demo that runs for hours keeps
 * only a window's worth.
 */
export class RateMeter {
  readonly windowMs: number;
  private readonly startedAt: number;
  private events: { t: number; key: string }[] = [];

  constructor(windowMs: number, startedAt: number) {
    this.windowMs = windowMs;
    this.startedAt = startedAt;
  }

  /** A whole window has passed since the start. */
  complete(now: number): boolean {
    return now - this.startedAt >= this.windowMs;
  }

  add(t: number, key: string): void {
    this.events.push({ t, key });
  }

  /**
   * Rates over (now - window, now]; before a whole window has passed since
   * the start, over the time since the start (a fresh meter does not show
   * half rates).
   */
  rates(now: number): Map<string, number> {
    const from = now - this.windowMs;
    // Lines come about in time order (a few connections run at once): drop
    // the old prefix, and count only what lies in the window.
    let drop = 0;
    while (drop < this.events.length && this.events[drop]!.t <= from) drop++;
    if (drop > 0) this.events = this.events.slice(drop);
    const seconds = Math.max(Math.min(this.windowMs, now - this.startedAt), 1) / 1000;
    const counts = new Map<string, number>();
    for (const e of this.events)
      if (e.t > from && e.t <= now) counts.set(e.key, (counts.get(e.key) ?? 0) + 1);
    return new Map([...counts].map(([k, n]) => [k, n / seconds]));
  }
}

/** The EndpointSlice endpoint fields kube-proxy decides on. */
export interface SliceEndpoint {
  addresses: string[];
  conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
  hints?: { forZones?: { name: string }[] | null } | null;
}

/**
 * Why kube-proxy on a node in `nodeZone` does not send new connections to
 * each address of a Service's endpoints (undefined: it does), as
 * kube-proxy's CategorizeEndpoints decides for a Cluster traffic policy:
 * ready endpoints only (serving-and-terminating ones only when none is
 * ready); of those only the ones hinted for the node's zone when every
 * ready endpoint has a zone hint and at least one is for this zone.
 */
export function kubeProxyRouting(
  endpoints: readonly SliceEndpoint[],
  nodeZone: string,
): Map<string, string | undefined> {
  const ready = endpoints.filter((e) => e.conditions?.ready !== false);
  const zonesOf = (e: SliceEndpoint) => (e.hints?.forZones ?? []).map((z) => z.name);
  const byZone =
    ready.length > 0 &&
    ready.every((e) => zonesOf(e).length > 0) &&
    ready.some((e) => zonesOf(e).includes(nodeZone));
  const fallback = ready.length === 0;
  const out = new Map<string, string | undefined>();
  for (const e of endpoints) {
    // As kube-proxy reads them: ready and serving default to true, terminating to false.
    const servingTerminating = e.conditions?.serving !== false && e.conditions?.terminating === true;
    let why: string | undefined;
    if (e.conditions?.ready === false) {
      if (!(fallback && servingTerminating)) {
        why = servingTerminating ? "draining (serving, terminating)" : "not ready";
      }
    } else if (byZone && !zonesOf(e).includes(nodeZone)) {
      why = `${zonesOf(e).join(",")}: the node's zone ${nodeZone} has ready endpoints`;
    }
    for (const a of e.addresses) out.set(a, why);
  }
  return out;
}

export interface TrafficRow {
  name: string;
  address: string;
  zone: string;
  /** New connections served per second over the window. */
  rate: number;
  /** kube-proxy routes new connections to it (per the slices now). */
  routed: boolean;
  /** Published Ready by Roster (what an xDS client routes to, in any zone). */
  ready: boolean;
  note: string;
  /** xDS RPCs per second it answered over the window (with an xDS consumer). */
  xds?: number;
}

/** The xDS consumer beside the DNS one. */
export interface XdsColumn {
  /** What it dials: `xds:///<svc>.<ns>`. */
  target: string;
  /** RPCs per second that failed. */
  failed: number;
  complete: boolean;
}

export interface TrafficPanel {
  /** What the consumer connects to: `<svc>.<ns>.svc.cluster.local:<port>`. */
  target: string;
  clusterIP?: string;
  node: string;
  nodeZone: string;
  windowMs: number;
  rows: TrafficRow[];
  /** Connections per second that no backend served. */
  failed: number;
  /** The rates cover a whole window (the consumer ran at least that long). */
  complete: boolean;
  xds?: XdsColumn;
}

/**
 * The panel agrees with the slices: over a whole window, every instance
 * kube-proxy routes to served connections, no other one did, and none
 * failed. (`roster dev --once` waits for this on the data plane.)
 */
export function trafficSettled(panel: TrafficPanel | undefined): boolean {
  return (
    panel?.complete === true &&
    panel.failed === 0 &&
    panel.rows.length > 0 &&
    panel.rows.every((r) => r.routed === r.rate > 0) &&
    (panel.xds === undefined || xdsSettled(panel))
  );
}

/**
 * The xDS column agrees with Roster: over a whole window, exactly the
 * instances published Ready answered RPCs, and none failed.
 */
export function xdsSettled(panel: TrafficPanel): boolean {
  return (
    panel.xds?.complete === true &&
    panel.xds.failed === 0 &&
    panel.rows.every((r) => r.ready === (r.xds ?? 0) > 0)
  );
}

/**
 * Rows of the panel: one per instance of the service, with its rate and a
 * note that says why it gets no traffic, or that kube-proxy's rules have not
 * caught up yet (its rules follow the slices within about a second, so a
 * flapping instance shows both for a moment).
 */
export function trafficRows(
  instances: readonly InstanceView[],
  routing: ReadonlyMap<string, string | undefined>,
  rates: ReadonlyMap<string, number>,
  xdsRates?: ReadonlyMap<string, number>,
): TrafficRow[] {
  return instances.map((i) => {
    const rate = rates.get(i.name) ?? 0;
    const listed = routing.has(i.address);
    // Roster leaves unhealthy instances out of the slices: say why, in the view's words.
    const why = listed ? routing.get(i.address) : `not published (${i.reason})`;
    const routed = why === undefined;
    let note: string;
    if (routed) note = rate > 0 ? "" : "ready: waiting for kube-proxy's rules";
    else note = rate > 0 ? `${why}: kube-proxy's rules still route it` : `no traffic: ${why}`;
    const ready = i.ready === "True";
    return {
      name: i.name,
      address: i.address,
      zone: i.zone,
      rate,
      routed,
      ready,
      note,
      ...(xdsRates ? { xds: xdsRates.get(i.name) ?? 0 } : {}),
    };
  });
}

const BAR_WIDTH = 30;
const color = (on: boolean, code: number, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function renderTraffic(panel: TrafficPanel, options: { color?: boolean } = {}): string {
  const c = options.color ?? false;
  const lines = [
    color(
      c,
      1,
      `traffic to ${panel.target}${panel.clusterIP ? ` (ClusterIP ${panel.clusterIP})` : ""}  from ${panel.node} (${panel.nodeZone})  new connections/s over ${panel.windowMs / 1000} s`,
    ),
  ];
  const max = Math.max(1, ...panel.rows.map((r) => r.rate));
  const xds = panel.xds !== undefined;
  const xdsMax = Math.max(1, ...panel.rows.map((r) => r.xds ?? 0));
  const XDS_BAR = 15;
  const rows = [["BACKEND", "ADDRESS", "ZONE", "CONN/S", "", ...(xds ? ["XDS RPC/S", ""] : []), "NOTE"]];
  for (const r of panel.rows) {
    const bar = "#".repeat(Math.round((r.rate / max) * BAR_WIDTH));
    const xdsCells = xds
      ? [(r.xds ?? 0).toFixed(1), "#".repeat(Math.round(((r.xds ?? 0) / xdsMax) * XDS_BAR)).padEnd(XDS_BAR)]
      : [];
    rows.push([r.name, r.address, r.zone, r.rate.toFixed(1), bar.padEnd(BAR_WIDTH), ...xdsCells, r.note]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  for (const [n, r] of rows.entries()) {
    const cells = r.map((cell, col) =>
      col === 3 || (xds && col === 5) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!),
    );
    let line = `  ${cells.join("  ")}`.trimEnd();
    if (n > 0) line = color(c, panel.rows[n - 1]!.rate > 0 ? 32 : 90, line);
    lines.push(line);
  }
  lines.push(
    `  ${"failed".padEnd(widths[0]!)}  ${panel.failed.toFixed(1)} connections/s refused or timed out`,
  );
  if (panel.xds) {
    lines.push(
      `  ${"".padEnd(widths[0]!)}  ${panel.xds.failed.toFixed(1)} xDS RPCs/s failed (grpc-go over xDS: ${panel.xds.target}, every zone, Roster's weights)`,
    );
  }
  lines.push(
    "  (kube-proxy spreads new connections evenly over the endpoints it routes to; weights are for the client library and xDS)",
  );
  return `${lines.join("\n")}\n`;
}
