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
 *   first rule its identity matches (src/xds/access.ts: node id prefix and,
 *   under mTLS, the client certificate's SANs; none if no rule matches). An
 *   invisible resource is answered as absent, logged and counted.
 * - TLS: with `tls` the server speaks TLS; with `tls.clientCaFile` every
 *   client must present a certificate signed by that CA (mTLS), or the
 *   handshake fails. The files are polled (src/kube/tls-files.ts): a renewed
 *   set is used for new handshakes, open streams go on; a bad one is refused
 *   and the last good set served.
 * - At most `maxStreams` streams; more are refused with RESOURCE_EXHAUSTED.
 */

import {
  experimental,
  status as GrpcStatus,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { PublishedEndpoints } from "../api/published.ts";
import type { Logger } from "../kube/log.ts";
import { type TlsWatch, watchTlsFiles } from "../kube/tls-files.ts";
import type { Clock } from "../util/clock.ts";
import { parseSubjectAltName, readableNamespaces, type XdsAccessRule } from "./access.ts";
import { adsServiceDefinition, type EncodedAny, encodeAny, TYPE, TYPE_URLS, type TypeUrl } from "./protos.ts";
import {
  buildServiceResources,
  type ClientFamily,
  resourceName,
  type ServiceResources,
  type XdsResource,
} from "./resources.ts";

export type { XdsAccessRule } from "./access.ts";

/** PEM files, read when the server starts and polled for renewals. */
export interface XdsTlsOptions {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mTLS). */
  clientCaFile?: string;
}

export interface XdsServerOptions {
  port: number;
  bindAddress: string;
  access?: readonly XdsAccessRule[];
  tls?: XdsTlsOptions;
  /** How often the TLS files are polled for a renewal (default 10 s). */
  tlsPollMs?: number;
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
  const denied = new Counter({
    name: "roster_xds_access_denied_total",
    help: "Resources an xDS client asked for by name in a namespace its access rule does not grant (answered as absent), by type.",
    labelNames: ["type"],
    registers: reg,
  });
  void connected;

  const shortType = (t: string) => t.slice(t.lastIndexOf(".") + 1);

  /** The verified client certificate's SANs; undefined without one. */
  function peerOf(call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) {
    const cert = call.getAuthContext?.().sslPeerCertificate;
    if (!cert || Object.keys(cert).length === 0) return undefined;
    return parseSubjectAltName(cert.subjectaltname);
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
        const peer = peerOf(this.call);
        const readable = readableNamespaces(options.access, { nodeId: this.nodeId, peer });
        const granted = readable.all ? undefined : readable.namespaces;
        this.canRead = granted ? (ns) => granted.has(ns) : () => true;
        const who = { node: this.nodeId, stream: this.id, uris: peer?.uris, dns: peer?.dnsNames };
        if (readable.all) log.debug(who, "xDS client reads every served namespace");
        else if (readable.rule === undefined)
          log.warn(who, "xDS client matches no access rule: it reads nothing");
        else
          log.info(
            { ...who, rule: readable.rule, namespaces: [...readable.namespaces] },
            "xDS client identified",
          );
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
      const hidden = [...(names ?? [])].filter((n) => {
        const e = services.get(n);
        return e !== undefined && !this.canRead(e.resources.namespace);
      });
      if (hidden.length > 0) {
        denied.inc({ type: shortType(type) }, hidden.length);
        log.warn(
          { node: this.nodeId, type: shortType(type), names: hidden.slice(0, 10), count: hidden.length },
          "xDS client asked for resources its access rule does not grant: answered as absent",
        );
      }
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

  let tlsWatch: TlsWatch | undefined;
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
        let creds = ServerCredentials.createInsecure();
        if (options.tls) {
          try {
            tlsWatch = watchTlsFiles({
              files: options.tls,
              server: "xds",
              clock: options.clock,
              logger: options.logger,
              registry: options.registry,
              intervalMs: options.tlsPollMs,
            });
          } catch (err) {
            reject(new Error(`cannot serve xDS over TLS: ${(err as Error).message}`));
            return;
          }
          creds = renewingCredentials(tlsWatch, options.tls.clientCaFile !== undefined);
        }
        server.bindAsync(`${host}:${options.port}`, creds, (err, port) => {
          if (err) {
            tlsWatch?.stop();
            reject(err);
          } else {
            const tls = !options.tls ? "none" : options.tls.clientCaFile ? "mutual" : "server";
            log.info({ port, bindAddress: options.bindAddress, tls }, "xDS server listening");
            resolve(port);
          }
        });
      });
    },
    async stop() {
      // ADS streams never end on their own: cancel them (clients reconnect to another replica).
      server.forceShutdown();
      tlsWatch?.stop();
    },
    stats: () => ({ streams: streams.size, pushes: totals.pushes, nacks: totals.nacks, version }),
  };
}

/**
 * TLS credentials that follow the watched files: grpc-js's certificate
 * provider interface, fed from the last good set (grpc-js's own
 * FileWatcherCertificateProvider hands on whatever it reads, a half-written
 * or mismatched set included, and withdraws the credentials when a file is
 * missing; then the server drops every new connection). grpc-js applies each
 * update with `setSecureContext`: new handshakes only.
 */
function renewingCredentials(watch: TlsWatch, mutual: boolean): ServerCredentials {
  const identity = new Set<experimental.IdentityCertificateUpdateListener>();
  const ca = new Set<experimental.CaCertificateUpdateListener>();
  const identityOf = () => ({ certificate: watch.current().cert, privateKey: watch.current().key });
  const caOf = () => ({ caCertificate: watch.current().ca! });
  watch.onChange(() => {
    for (const l of identity) l(identityOf());
    for (const l of ca) l(caOf());
  });
  const provider: experimental.CertificateProvider = {
    // grpc-js registers its watcher right after adding these listeners: the
    // first update must come after it (on the next tick), as its own provider does.
    addIdentityCertificateListener(l) {
      identity.add(l);
      process.nextTick(() => identity.has(l) && l(identityOf()));
    },
    removeIdentityCertificateListener: (l) => identity.delete(l),
    addCaCertificateListener(l) {
      ca.add(l);
      process.nextTick(() => ca.has(l) && l(caOf()));
    },
    removeCaCertificateListener: (l) => ca.delete(l),
  };
  // The first argument is the identity provider, the second the CA one
  // (grpc-js 1.14's declaration names them the other way round).
  return experimental.createCertificateProviderServerCredentials(provider, mutual ? provider : null, mutual);
}
