/**
 * Roster's xDS server: Envoy v3 Aggregated Discovery Service (state of the
 * world) over gRPC, serving the resources of src/xds/resources.ts for every
 * published service. It only reads, so every replica serves.
 *
 * Protocol (per stream and type URL):
 * - A request names the resources the client wants; when the names change
 *   (or on the first request) the server answers with the current version.
 *   LDS and CDS clients may also ask for everything (no names).
 * - version_info is the snapshot version of that type; nonce counts up per
 *   stream. A request carrying the last nonce and no error_detail ACKs it; with
 *   error_detail it is a NACK: logged and counted, and the client keeps its
 *   previous config until the next change. A request with an older nonce is
 *   stale and only updates the subscription.
 * - Slow clients: nothing is queued per stream but a set of dirty type URLs
 *   and at most one response in flight. The next response is built from the
 *   latest snapshot once the previous one has been written out (grpc-js's
 *   write callback), so a slow client gets fewer, newer responses and never
 *   holds memory or blocks the others.
 * - Who may read: a client sees the namespaces the operator serves (its
 *   caches hold nothing else); with `access` rules, only the namespaces of the
 *   first rule whose nodeIdPrefix its node id starts with (none if no rule
 *   matches). An invisible resource is answered as absent.
 * - At most `maxStreams` streams; more are refused with RESOURCE_EXHAUSTED.
 */
import {
  status as GrpcStatus,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { PublishedEndpoints } from "../api/published.ts";
import type { Logger } from "../kube/log.ts";
import type { Clock } from "../util/clock.ts";
import { adsServiceDefinition, type EncodedAny, encodeAny, TYPE, TYPE_URLS, type TypeUrl } from "./protos.ts";
import {
  buildServiceResources,
  type ClientFamily,
  resourceName,
  type ServiceResources,
  type XdsResource,
} from "./resources.ts";

export interface XdsAccessRule {
  nodeIdPrefix: string;
  namespaces: string[];
}

export interface XdsServerOptions {
  port: number;
  bindAddress: string;
  access?: readonly XdsAccessRule[];
  maxStreams?: number;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

export interface XdsServer {
  /**
   * Sets (or with `undefined` removes) one service's published document.
   * `sinceMs`: the verdict time that caused the change (push latency is
   * timed from it); absent for changes no verdict caused, which are not timed.
   */
  update(namespace: string, service: string, doc: PublishedEndpoints | undefined, sinceMs?: number): void;
  start(): Promise<number>;
  stop(): Promise<void>;
  stats(): { streams: number; pushes: number; nacks: number; version: number };
}

interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; user_agent_name?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

interface DiscoveryResponse {
  version_info: string;
  resources: EncodedAny[];
  type_url: string;
  nonce: string;
}

interface Subscription {
  /** Undefined: everything (wildcard). */
  names: Set<string> | undefined;
  nonce: string;
  /** Snapshot version last sent. */
  sent: number;
}

/** The types built per client family (Cluster: strategies; ClusterLoadAssignment: DEGRADED). */
type PerFamily = typeof TYPE.cluster | typeof TYPE.endpoints;

interface Entry {
  resources: ServiceResources;
  /** Each resource encoded once, shared by every stream. */
  encoded: Record<Exclude<TypeUrl, PerFamily>, EncodedAny> &
    Record<PerFamily, Record<ClientFamily, EncodedAny>>;
  /** The snapshot version at which each type of this service last changed. */
  changed: Record<TypeUrl, number>;
  sinceMs: number | undefined;
}

const WILDCARD_TYPES: ReadonlySet<string> = new Set([TYPE.listener, TYPE.cluster]);

export function createXdsServer(options: XdsServerOptions): XdsServer {
  const log = options.logger.child({ component: "xds" });
  const maxStreams = options.maxStreams ?? 10_000;
  const services = new Map<string, Entry>();
  const removedAt = new Map<string, number>();
  let version = 0;
  let nextStream = 0;
  const streams = new Set<Stream>();
  const totals = { pushes: 0, nacks: 0 };

  const reg = [options.registry];
  const connected = new Gauge({
    name: "roster_xds_clients",
    help: "Connected xDS streams.",
    registers: reg,
    collect() {
      this.set(streams.size);
    },
  });
  const pushes = new Counter({
    name: "roster_xds_pushes_total",
    help: "xDS responses sent, by type.",
    labelNames: ["type"],
    registers: reg,
  });
  const nacks = new Counter({
    name: "roster_xds_nacks_total",
    help: "xDS responses rejected by clients, by type.",
    labelNames: ["type"],
    registers: reg,
  });
  const latency = new Histogram({
    name: "roster_xds_push_latency_seconds",
    help: "Push latency (verdict to pushed): from the probe result that changed an endpoint's verdict to the xDS response carrying the change being written to a client.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: reg,
  });
  const refused = new Counter({
    name: "roster_xds_streams_refused_total",
    help: "xDS streams refused because maxStreams were open.",
    registers: reg,
  });
  void connected;

  const shortType = (t: string) => t.slice(t.lastIndexOf(".") + 1);

  function visible(rules: readonly XdsAccessRule[] | undefined, nodeId: string): (ns: string) => boolean {
    if (!rules?.length) return () => true;
    const rule = rules.find((r) => nodeId.startsWith(r.nodeIdPrefix));
    const allowed = new Set(rule?.namespaces ?? []);
    return (ns) => allowed.has(ns);
  }

  function pick(entry: Entry, type: TypeUrl, family: ClientFamily): EncodedAny {
    return type === TYPE.cluster || type === TYPE.endpoints
      ? entry.encoded[type][family]
      : entry.encoded[type];
  }

  class Stream {
    readonly id = ++nextStream;
    readonly call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;
    nodeId = "";
    family: ClientFamily = "grpc";
    canRead: (ns: string) => boolean = () => false;
    readonly subs = new Map<TypeUrl, Subscription>();
    readonly dirty = new Set<TypeUrl>();
    inFlight = false;
    closed = false;
    nonce = 0;

    constructor(call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) {
      this.call = call;
    }

    /** Names this stream should get for a type: requested (or all) and visible. */
    entries(sub: Subscription): Entry[] {
      const out: Entry[] = [];
      if (sub.names === undefined) {
        for (const e of services.values()) if (this.canRead(e.resources.namespace)) out.push(e);
        return out;
      }
      for (const name of sub.names) {
        const e = services.get(name);
        if (e && this.canRead(e.resources.namespace)) out.push(e);
      }
      return out;
    }

    /** Whether a change at snapshot versions after `sub.sent` concerns this subscription. */
    affected(type: TypeUrl, sub: Subscription): boolean {
      if (sub.names === undefined) {
        for (const e of services.values()) if (e.changed[type] > sub.sent) return true;
        for (const at of removedAt.values()) if (at > sub.sent) return true;
        return false;
      }
      for (const name of sub.names) {
        const e = services.get(name);
        if (e ? e.changed[type] > sub.sent : (removedAt.get(name) ?? 0) > sub.sent) return true;
      }
      return false;
    }

    flush(): void {
      while (!this.closed && !this.inFlight && this.dirty.size > 0) {
        const type = this.dirty.values().next().value as TypeUrl;
        this.dirty.delete(type);
        const sub = this.subs.get(type);
        if (!sub) continue;
        const entries = this.entries(sub);
        const nonce = String(++this.nonce);
        const before = sub.sent;
        sub.nonce = nonce;
        sub.sent = version;
        const response: DiscoveryResponse = {
          version_info: String(version),
          resources: entries.map((e) => pick(e, type, this.family)),
          type_url: type,
          nonce,
        };
        // One response in flight per stream: the next is built from the
        // snapshot of the moment this one has left.
        this.inFlight = true;
        try {
          this.call.write(response, () => {
            this.inFlight = false;
            this.flush();
          });
        } catch (err) {
          this.inFlight = false;
          log.warn({ err, node: this.nodeId }, "xDS response could not be encoded");
          continue;
        }
        totals.pushes++;
        pushes.inc({ type: shortType(type) });
        const now = options.clock.now();
        for (const e of entries) {
          // Timed only for a client that was subscribed before the change (a
          // first response carries history, not a push of that verdict).
          if (e.sinceMs !== undefined && before >= 0 && e.changed[type] > before) {
            latency.observe((now - e.sinceMs) / 1000);
          }
        }
      }
    }

    onRequest(req: DiscoveryRequest): void {
      const type = req.type_url as TypeUrl;
      if (!TYPE_URLS.includes(type)) {
        log.debug({ node: this.nodeId, type: req.type_url }, "xDS request for an unserved type ignored");
        return;
      }
      if (req.node?.id !== undefined && this.nodeId === "") {
        this.nodeId = req.node.id;
        this.family = req.node.user_agent_name === "envoy" ? "envoy" : "grpc";
        this.canRead = visible(options.access, this.nodeId);
      }
      const names = req.resource_names?.length
        ? new Set(req.resource_names)
        : WILDCARD_TYPES.has(type)
          ? undefined
          : new Set<string>();
      const sub = this.subs.get(type);
      if (sub && req.response_nonce === sub.nonce && req.error_detail) {
        totals.nacks++;
        nacks.inc({ type: shortType(type) });
        log.warn(
          { node: this.nodeId, type: shortType(type), version: sub.sent, error: req.error_detail.message },
          "xDS client rejected a response (NACK)",
        );
      }
      const sameNames =
        sub !== undefined &&
        (sub.names === undefined
          ? names === undefined
          : names !== undefined &&
            names.size === sub.names.size &&
            [...names].every((n) => sub.names!.has(n)));
      if (sub && sameNames) return; // an ACK, a NACK or a stale request: nothing new to send
      if (sub) sub.names = names;
      else this.subs.set(type, { names, nonce: "", sent: -1 });
      this.dirty.add(type);
      this.flush();
    }
  }

  function onStream(call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    if (streams.size >= maxStreams) {
      refused.inc();
      call.emit("error", {
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        details: `xDS server at its limit of ${maxStreams} streams`,
      } as Partial<ServiceError>);
      return;
    }
    const stream = new Stream(call);
    streams.add(stream);
    const close = () => {
      if (stream.closed) return;
      stream.closed = true;
      streams.delete(stream);
      log.debug({ node: stream.nodeId, stream: stream.id }, "xDS stream closed");
    };
    call.on("data", (req: DiscoveryRequest) => {
      try {
        stream.onRequest(req);
      } catch (err) {
        log.error({ err, node: stream.nodeId }, "xDS request handling failed");
      }
    });
    call.on("end", () => {
      close();
      call.end();
    });
    call.on("error", close);
    call.on("close", close);
    call.on("cancelled", close);
  }

  function notify(): void {
    for (const s of streams) {
      for (const [type, sub] of s.subs) if (s.affected(type, sub)) s.dirty.add(type);
      s.flush();
    }
  }

  const server = new Server({ "grpc.max_concurrent_streams": 100 });
  server.addService(adsServiceDefinition(), {
    StreamAggregatedResources: onStream,
    DeltaAggregatedResources: (call: ServerDuplexStream<unknown, unknown>) =>
      call.emit("error", {
        code: GrpcStatus.UNIMPLEMENTED,
        details: "Roster serves state-of-the-world ADS only",
      } as Partial<ServiceError>),
  });

  return {
    update(namespace, service, doc, sinceMs) {
      const name = resourceName(namespace, service);
      const prev = services.get(name);
      if (!doc) {
        if (!prev) return;
        services.delete(name);
        removedAt.set(name, ++version);
        notify();
        return;
      }
      const resources = buildServiceResources(doc);
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
      const types: [TypeUrl, unknown, unknown][] = [
        [TYPE.listener, prev?.resources.listener, resources.listener],
        [TYPE.route, prev?.resources.route, resources.route],
        [TYPE.cluster, prev?.resources.cluster, resources.cluster],
        [TYPE.endpoints, prev?.resources.endpoints, resources.endpoints],
      ];
      const changedTypes = types.filter(([, a, b]) => !prev || !same(a, b)).map(([t]) => t);
      if (changedTypes.length === 0) return;
      const next = ++version;
      const changed = { ...(prev?.changed ?? {}) } as Record<TypeUrl, number>;
      for (const t of TYPE_URLS) changed[t] ??= next;
      for (const t of changedTypes) changed[t] = next;
      const reuse = (t: TypeUrl) => prev !== undefined && !changedTypes.includes(t);
      const perFamily = (r: Record<ClientFamily, XdsResource>): Record<ClientFamily, EncodedAny> => {
        const grpc = encodeAny(r.grpc);
        return { grpc, envoy: r.envoy === r.grpc ? grpc : encodeAny(r.envoy) };
      };
      const encoded: Entry["encoded"] = {
        [TYPE.listener]: reuse(TYPE.listener) ? prev!.encoded[TYPE.listener] : encodeAny(resources.listener),
        [TYPE.route]: reuse(TYPE.route) ? prev!.encoded[TYPE.route] : encodeAny(resources.route),
        [TYPE.cluster]: reuse(TYPE.cluster) ? prev!.encoded[TYPE.cluster] : perFamily(resources.cluster),
        [TYPE.endpoints]: reuse(TYPE.endpoints)
          ? prev!.encoded[TYPE.endpoints]
          : perFamily(resources.endpoints),
      };
      services.set(name, { resources, encoded, changed, sinceMs });
      removedAt.delete(name);
      notify();
    },
    start() {
      return new Promise((resolve, reject) => {
        const host = options.bindAddress.includes(":") ? `[${options.bindAddress}]` : options.bindAddress;
        server.bindAsync(`${host}:${options.port}`, ServerCredentials.createInsecure(), (err, port) => {
          if (err) reject(err);
          else {
            log.info({ port, bindAddress: options.bindAddress }, "xDS server listening");
            resolve(port);
          }
        });
      });
    },
    async stop() {
      // ADS streams never end on their own: cancel them (clients reconnect to another replica).
      server.forceShutdown();
    },
    stats: () => ({ streams: streams.size, pushes: totals.pushes, nacks: totals.nacks, version }),
  };
}
