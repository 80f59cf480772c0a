/**
 * The roster view shared by `roster status` and the `roster dev` demo: one
 * block per service (policy summary line, then its instances), computed from
 * ServiceInstance and DiscoveryPolicy objects as the API server returns them,
 * and from the published ConfigMaps when they can be read: they are what
 * consumers see (revision, panic, strategy), also for services without a
 * DiscoveryPolicy.
 */
import type { DiscoveryPolicy, ServiceInstance } from "../api/index.ts";

export interface ServiceView {
  namespace: string;
  service: string;
  policy?: string;
  strategy: string;
  healthy: number;
  total: number;
  revision?: number;
  panic: boolean;
  instances: InstanceView[];
}

export interface InstanceView {
  name: string;
  address: string;
  healthy: boolean | undefined;
  /** The Ready condition: published as ready? */
  ready: string;
  /** The Ready condition's reason (why it is or is not published ready), as kubectl's REASON column. */
  reason: string;
  /** The Healthy condition's reason: the probe's word (ProbeSucceeded, HTTPStatus, ...), as kubectl's PROBE column. */
  probe: string;
  weight: number;
  zone: string;
}

/** What a service's published ConfigMap says, as far as the view shows it. */
export interface PublishedSummary {
  namespace: string;
  service: string;
  revision: number;
  panic: boolean;
  strategy: string;
}

export function rosterView(
  instances: readonly ServiceInstance[],
  policies: readonly DiscoveryPolicy[],
  published: readonly PublishedSummary[] = [],
): ServiceView[] {
  const services = new Map<string, ServiceView>();
  const viewOf = (namespace: string, service: string) => {
    const key = `${namespace}/${service}`;
    let v = services.get(key);
    if (!v) {
      v = { namespace, service, strategy: "RoundRobin", healthy: 0, total: 0, panic: false, instances: [] };
      services.set(key, v);
    }
    return v;
  };
  for (const p of policies) {
    const v = viewOf(p.metadata.namespace ?? "", p.spec.service);
    if (v.policy) continue; // the first one governs; others show up as Conflict on their own status
    v.policy = p.metadata.name;
    v.strategy = p.spec.loadBalancing?.strategy ?? "RoundRobin";
    v.revision = p.status?.publishedRevision;
    v.panic = p.status?.panic ?? false;
  }
  for (const si of instances) {
    const v = viewOf(si.metadata.namespace ?? "", si.spec.service);
    const ready = si.status?.conditions?.find((c) => c.type === "Ready");
    const health = si.status?.conditions?.find((c) => c.type === "Healthy");
    v.total++;
    if (si.status?.healthy) v.healthy++;
    v.instances.push({
      name: si.metadata.name ?? "",
      address: si.spec.address,
      healthy: si.status?.healthy,
      ready: ready?.status ?? "Unknown",
      // The same words as `kubectl get si` (the CRD's printer columns), each with one meaning.
      reason: ready?.reason ?? "AwaitingProbe",
      probe: health?.reason ?? "AwaitingProbe",
      weight: si.spec.weight ?? 100,
      zone: si.spec.zone ?? "",
    });
  }
  // Only for services that exist: a ConfigMap outliving its service (until
  // garbage collection) does not make the service reappear.
  for (const p of published) {
    const v = services.get(`${p.namespace}/${p.service}`);
    if (!v) continue;
    v.revision = p.revision;
    v.panic = p.panic;
    v.strategy = p.strategy;
  }
  return [...services.values()]
    .map((v) => ({ ...v, instances: v.instances.sort((a, b) => a.name.localeCompare(b.name)) }))
    .sort((a, b) => `${a.namespace}/${a.service}`.localeCompare(`${b.namespace}/${b.service}`));
}

const color = (on: boolean, code: number, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function renderView(views: readonly ServiceView[], options: { color?: boolean } = {}): string {
  const c = options.color ?? false;
  const lines: string[] = [];
  for (const v of views) {
    const head = [
      `${v.namespace}/${v.service}`,
      `policy=${v.policy ?? "(default)"}`,
      `strategy=${v.strategy}`,
      `healthy=${v.healthy}/${v.total}`,
      `revision=${v.revision ?? "-"}`,
      v.panic ? color(c, 31, "PANIC") : "",
    ].filter(Boolean);
    lines.push(color(c, 1, head.join("  ")));
    const rows = [["INSTANCE", "ADDRESS", "HEALTHY", "READY", "REASON", "PROBE", "WEIGHT", "ZONE"]];
    for (const i of v.instances) {
      rows.push([
        i.name,
        i.address,
        i.healthy === undefined ? "?" : String(i.healthy),
        i.ready,
        i.reason,
        i.probe,
        String(i.weight),
        i.zone,
      ]);
    }
    const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
    for (const [n, r] of rows.entries()) {
      let line = `  ${r.map((cell, col) => cell.padEnd(widths[col]!)).join("  ")}`.trimEnd();
      if (n > 0) line = color(c, r[2] === "true" ? 32 : r[2] === "false" ? 31 : 33, line);
      lines.push(line);
    }
    lines.push("");
  }
  return lines.length ? lines.join("\n") : "No ServiceInstances or DiscoveryPolicies found.\n";
}
