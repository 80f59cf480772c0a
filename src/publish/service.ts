/**
 * The selector-less Service of a Roster service. It has no selector, so the
 * upstream EndpointSlice controller leaves it alone and kube-proxy and
 * CoreDNS use the slices Roster writes.
 */
import type { V1OwnerReference, V1Service, V1ServicePort } from "@kubernetes/client-node";
import type { TrafficDistribution } from "../api/discoverypolicy.ts";
import { compareStrings, type Protocol } from "../api/published.ts";
import { type InstancePort, normalizePorts } from "./desired.ts";
import { publishedLabels } from "./labels.ts";

export interface ServicePortConflict {
  /** The port name concerned. */
  name: string;
  message: string;
}

export interface ServiceBuildInput {
  namespace: string;
  service: string;
  /** Every instance of the service, whatever its health: Service ports must not flap with health. */
  instances: readonly { name: string; ports: readonly InstancePort[] }[];
  /** spec.trafficDistribution, so kube-proxy honours the slices' zone hints; unset: none. */
  trafficDistribution?: TrafficDistribution;
  /** clusterIP: None (DNS answers with the ready endpoints' addresses). */
  headless?: boolean;
}

export interface ServiceBuild {
  /** Undefined when no instance has a port (a ClusterIP Service needs one): leave the Service as it is. */
  service: V1Service | undefined;
  /** Ports that instances disagree on; the Service uses the most common choice. */
  conflicts: ServicePortConflict[];
}

interface Choice {
  port: number;
  protocol: Protocol;
  appProtocols: Set<string | undefined>;
  count: number;
}

const PROTOCOL_ORDER: Record<Protocol, number> = { TCP: 0, UDP: 1, SCTP: 2 };

/**
 * Service ports: the union of the instances' named ports. When instances use
 * different numbers (or protocols) under one name, the most common wins (ties:
 * the lowest port) and a conflict is reported: kube-proxy still routes each
 * endpoint to its own port (slice ports are matched by name), only the
 * Service's own port number is a choice. Two names on the same port and
 * protocol cannot coexist in a Service: the first name (sorted) keeps it.
 */
export function servicePorts(instances: ServiceBuildInput["instances"]): {
  ports: V1ServicePort[];
  conflicts: ServicePortConflict[];
} {
  const byName = new Map<string, Map<string, Choice>>();
  for (const inst of instances) {
    for (const p of normalizePorts(inst.ports)) {
      const choices = byName.get(p.name) ?? new Map<string, Choice>();
      byName.set(p.name, choices);
      const key = `${p.port}/${p.protocol}`;
      const c = choices.get(key) ?? { port: p.port, protocol: p.protocol, appProtocols: new Set(), count: 0 };
      c.count++;
      c.appProtocols.add(p.appProtocol);
      choices.set(key, c);
    }
  }
  const conflicts: ServicePortConflict[] = [];
  const ports: V1ServicePort[] = [];
  const used = new Map<string, string>();
  for (const name of [...byName.keys()].sort(compareStrings)) {
    const choices = [...byName.get(name)!.values()].sort(
      (a, b) =>
        b.count - a.count || a.port - b.port || PROTOCOL_ORDER[a.protocol] - PROTOCOL_ORDER[b.protocol],
    );
    const best = choices[0]!;
    if (choices.length > 1) {
      conflicts.push({
        name,
        message: `instances use port "${name}" as ${choices.map((c) => `${c.port}/${c.protocol} (${c.count})`).join(", ")}; the Service uses ${best.port}/${best.protocol}`,
      });
    }
    const key = `${best.port}/${best.protocol}`;
    const holder = used.get(key);
    if (holder !== undefined) {
      conflicts.push({
        name,
        message: `port "${name}" is ${key} like port "${holder}"; a Service cannot list both, "${name}" is left out`,
      });
      continue;
    }
    used.set(key, name);
    const port: V1ServicePort = { name, port: best.port, protocol: best.protocol, targetPort: best.port };
    if (best.appProtocols.size === 1) {
      const app = [...best.appProtocols][0];
      if (app !== undefined) port.appProtocol = app;
    } else {
      conflicts.push({
        name,
        message: `instances disagree on the appProtocol of port "${name}"; the Service sets none`,
      });
    }
    ports.push(port);
  }
  return { ports, conflicts };
}

export function buildService(input: ServiceBuildInput): ServiceBuild {
  const { ports, conflicts } = servicePorts(input.instances);
  if (ports.length === 0) return { service: undefined, conflicts };
  return {
    service: {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: input.service, namespace: input.namespace, labels: publishedLabels(input.service) },
      spec: {
        type: "ClusterIP",
        // Endpoints of both families are published; the Service gets a
        // cluster IP of each family the cluster has, so kube-proxy uses both.
        ipFamilyPolicy: "PreferDualStack",
        ...(input.headless ? { clusterIP: "None" } : {}),
        ports,
        ...(input.trafficDistribution ? { trafficDistribution: input.trafficDistribution } : {}),
      },
    },
    conflicts,
  };
}

/**
 * Whether the live Service must be deleted and created again to become the
 * built one: spec.clusterIP is immutable, so a Service cannot turn headless
 * (clusterIP: None) or back by an update. An apply that drops clusterIP
 * even succeeds and keeps None, so the difference has to be caught here.
 */
export function serviceNeedsReplace(live: V1Service | undefined, built: V1Service): boolean {
  if (!live?.spec) return false;
  return (live.spec.clusterIP === "None") !== (built.spec?.clusterIP === "None");
}

/**
 * The owner reference that EndpointSlices and the ConfigMap carry, so the
 * garbage collector removes them with the Service (as upstream's controller
 * reference: controller and blockOwnerDeletion set).
 */
export function serviceOwnerReference(service: V1Service): V1OwnerReference {
  const name = service.metadata?.name;
  const uid = service.metadata?.uid;
  if (!name || !uid)
    throw new Error("serviceOwnerReference needs a Service read from the API server (name and uid)");
  return { apiVersion: "v1", kind: "Service", name, uid, controller: true, blockOwnerDeletion: true };
}
