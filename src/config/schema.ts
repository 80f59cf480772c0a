/**
 * The operator's config file: what it may contain, its defaults, and which
 * settings apply live on reload.
 *
 * Every field is optional; an empty file is a valid config (all defaults).
 * Unknown fields are errors, so a typo never passes silently. Durations are
 * strings like `15s` or `1m30s`, as in the Roster API.
 *
 * Live on reload: logLevel, metrics/health ports and bind address,
 * concurrency, defaultPolicy (read by reconcilers at each use).
 * On restart only: leaderElection, namespaces, watch, and within probing the
 * engine's limits, DNS servers and DNS refresh (a change is logged as such,
 * naming the field; informers, the lease and the engine are never torn down
 * by a reload).
 */
import { z } from "zod";
import { durationBetween, tryParseDuration } from "../api/common.ts";
import { DiscoveryPolicySpec, LoadBalancing, Publish } from "../api/discoverypolicy.ts";
import { HealthCheck } from "../api/health.ts";
import { dnsServerProblem, MAX_DNS_SERVERS } from "../health/dns.ts";
import { defaultDeny } from "../health/policy.ts";

const Port = z.int().min(1).max(65535);

const Namespace = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name (DNS-1123 label)");

export const LogLevel = z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

export const LeaderElectionConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe("Run controllers only on the replica holding the Lease."),
    namespace: Namespace.default("roster-system").describe(
      "Namespace of the Lease (usually the operator's own).",
    ),
    leaseName: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a DNS-1123 subdomain")
      .default("roster-leader"),
    leaseDuration: durationBetween("1s", "10m").default("15s"),
    renewDeadline: durationBetween("500ms", "10m").default("10s"),
    retryPeriod: durationBetween("100ms", "1m").default("2s"),
  })
  .superRefine((le, ctx) => {
    const [lease, renew, retry] = [le.leaseDuration, le.renewDeadline, le.retryPeriod].map(tryParseDuration);
    // Invalid durations are reported by their own field checks.
    if (lease === undefined || renew === undefined || retry === undefined) return;
    if (!(lease > renew)) {
      ctx.addIssue({ code: "custom", path: ["renewDeadline"], message: "must be less than leaseDuration" });
    }
    if (!(renew > retry * 1.2)) {
      ctx.addIssue({
        code: "custom",
        path: ["retryPeriod"],
        message: "must be less than renewDeadline / 1.2",
      });
    }
  });

export const ConcurrencyConfig = z.strictObject({
  default: z.int().min(1).max(1024).default(4).describe("Concurrent reconciles per controller."),
  perController: z
    .record(z.string().min(1), z.int().min(1).max(1024))
    .default({})
    .describe("Overrides by controller name."),
});

export const WatchConfig = z.strictObject({
  inactivityTimeout: durationBetween("1s", "1h")
    .default("3m")
    .describe("Restart a watch that received nothing (not even a bookmark) for this long."),
  resyncPeriod: z
    .union([z.literal("0s"), durationBetween("10s", "24h")])
    .default("0s")
    .describe("Re-reconcile every cached object this often; 0s disables."),
});

/**
 * The policy applied to instances whose service has no DiscoveryPolicy: a
 * DiscoveryPolicy spec without `service`, every section defaulted.
 */
export const DefaultPolicy = DiscoveryPolicySpec.omit({ service: true }).extend({
  healthCheck: HealthCheck.prefault({}),
  loadBalancing: LoadBalancing.prefault({}),
  publish: Publish.prefault({}),
});
export type DefaultPolicy = z.output<typeof DefaultPolicy>;

const Cidr = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[0-9a-fA-F:.]+(\/[0-9]{1,3})?$/, "must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8");

/** The probe engine: load limits and the destination policy (SSRF guard). */
export const ProbingConfig = z.strictObject({
  maxConcurrent: z
    .int()
    .min(1)
    .max(100_000)
    .default(512)
    .describe("Probes in flight at once (applies on restart)."),
  maxPerHost: z
    .int()
    .min(1)
    .max(10_000)
    .default(16)
    .describe("Probes in flight to one IP (applies on restart)."),
  maxAddressesPerName: z
    .int()
    .min(1)
    .max(1024)
    .default(16)
    .describe(
      "Addresses probed (and published) per DNS name: a name resolving to more uses its first ones in sorted order (applies on restart).",
    ),
  dnsServers: z
    .array(
      z
        .string()
        .max(64)
        .superRefine((server, ctx) => {
          const problem = dnsServerProblem(server);
          if (problem) ctx.addIssue({ code: "custom", message: problem });
        }),
    )
    .max(MAX_DNS_SERVERS)
    .default([])
    .describe(
      "DNS servers (IP or IP:port) that resolve instance names, queried directly for A and AAAA records; empty: the system resolver (getaddrinfo). Applies on restart.",
    ),
  dnsRefresh: durationBetween("1s", "1h")
    .default("30s")
    .describe(
      "How long a resolved name's addresses are used before it is resolved again (applies on restart).",
    ),
  secrets: z
    .boolean()
    .default(false)
    .describe(
      "Read probe header values from Secrets in the instance's namespace (needs RBAC to get Secrets).",
    ),
  destinations: z
    .strictObject({
      allow: z.array(Cidr).max(256).default([]).describe("When not empty, only these ranges are probed."),
      deny: z
        .array(Cidr)
        .max(256)
        .default([...defaultDeny])
        .describe(
          "Ranges never probed (default: link-local, where cloud metadata endpoints live, and the AWS IPv6 and Alibaba Cloud metadata addresses).",
        ),
      allowLoopback: z
        .boolean()
        .default(false)
        .describe("Allow probing 127.0.0.0/8 and ::1 (local development)."),
    })
    .prefault({}),
});

/** Publication batching and the start-up hold. */
export const PublishingConfig = z.strictObject({
  maxInflightWrites: z
    .int()
    .min(1)
    .max(100)
    .default(16)
    .describe(
      "Mutating API requests in flight at once, shared by every writer and handed out by priority: Services and EndpointSlices, then ConfigMaps, statuses, Events (applies on restart).",
    ),
  batchWindow: durationBetween("0s", "10s")
    .default("20ms")
    .describe("Verdict changes of one service within this window become one write per published object."),
  startupHold: durationBetween("0s", "10m")
    .default("30s")
    .describe("After start, publish a service once all its instances were probed, or after this long."),
  policyStatusInterval: durationBetween("0s", "1m")
    .default("5s")
    .describe(
      "A DiscoveryPolicy status that changed only in counts and messages is written at most this often (condition changes are written at once).",
    ),
  addresses: z
    .strictObject({
      clusterNetworks: z
        .array(Cidr)
        .max(64)
        .default([])
        .describe(
          "The cluster's pod and Service CIDRs: addresses inside them are not published (CVE-2021-25740), unless `allow` lists them for the namespace.",
        ),
      allow: z
        .record(Namespace, z.array(Cidr).max(64))
        .default({})
        .describe("Per namespace: CIDRs inside clusterNetworks its instances may publish anyway."),
    })
    .prefault({})
    .describe("Which addresses may be published (besides the probe destination policy, which also applies)."),
});

/**
 * Probing split across replicas (see README "Scaling"): every replica joins
 * a group through a Lease in leaderElection.namespace and probes its share
 * of the instances; the leader publishes.
 */
export const ShardingConfig = z.strictObject({
  enabled: z.boolean().default(false).describe("Split probing across all replicas (needs leader election)."),
  group: z
    .string()
    .min(1)
    .max(40)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label")
    .default("roster")
    .describe("Membership group; one per operator installation (prefix of the member Leases)."),
  leaseDuration: durationBetween("1s", "10m")
    .default("15s")
    .describe("A replica that stops renewing its membership Lease this long loses its share to the others."),
});

const XdsAccessRule = z
  .strictObject({
    nodeIdPrefix: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Clients whose xDS node id starts with this. Node ids are chosen by the client: safe only behind mTLS (together with clientCertificate) or on a trusted network.",
      ),
    clientCertificate: z
      .strictObject({
        uri: z
          .string()
          .min(1)
          .max(2048)
          .optional()
          .describe("A URI SAN the certificate must carry, exactly (e.g. a SPIFFE ID)."),
        dns: z.string().min(1).max(253).optional().describe("A DNS SAN the certificate must carry, exactly."),
      })
      .refine((c) => c.uri !== undefined || c.dns !== undefined, "needs uri or dns")
      .optional()
      .describe(
        "Clients whose verified client certificate (xds.tls.clientCaFile) carries this SAN; a node id alone never matches such a rule.",
      ),
    namespaces: z.array(Namespace).max(1000).describe("The namespaces they may read."),
  })
  .refine((r) => r.nodeIdPrefix !== undefined || r.clientCertificate !== undefined, {
    message: "needs nodeIdPrefix or clientCertificate (an empty rule would match every client)",
    path: ["nodeIdPrefix"],
  });

export const XdsConfig = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe("Serve the published services over xDS (Envoy v3 ADS, gRPC)."),
    port: Port.default(18000),
    bindAddress: z.string().min(1).default("0.0.0.0"),
    maxStreams: z
      .int()
      .min(1)
      .max(100_000)
      .default(10_000)
      .describe("Open ADS streams at most; more are refused."),
    tls: z
      .strictObject({
        certFile: z.string().min(1).describe("PEM certificate (chain) file of the server."),
        keyFile: z.string().min(1).describe("PEM private key file of the server."),
        clientCaFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            "PEM CA bundle: when set, every client must present a certificate signed by it (mTLS); without one the handshake fails.",
          ),
      })
      .optional()
      .describe(
        "Serve xDS over TLS. The files are polled every 10 s: a renewed set is served to new handshakes without a restart. Absent: plaintext gRPC.",
      ),
    access: z
      .array(XdsAccessRule)
      .max(1000)
      .default([])
      .describe(
        "Who may read what. Empty: every client reads every namespace the operator serves. " +
          "Otherwise a client reads only the namespaces of the first rule it matches, nothing without one.",
      ),
  })
  .superRefine((x, ctx) => {
    x.access.forEach((rule, i) => {
      if (rule.clientCertificate && !x.tls?.clientCaFile) {
        ctx.addIssue({
          code: "custom",
          path: ["access", i, "clientCertificate"],
          message: "needs xds.tls.clientCaFile (client certificates are verified only under mTLS)",
        });
      }
    });
  });

/** `/metrics`: where it listens and who may read it (README "Security model"). */
export const MetricsConfig = z.strictObject({
  port: Port.default(8080),
  bindAddress: z
    .string()
    .min(1)
    .default("0.0.0.0")
    .describe("Address of the /metrics listener; 127.0.0.1 keeps it inside the pod."),
  auth: z
    .enum(["none", "kubernetes"])
    .default("none")
    .describe(
      "kubernetes: each scrape must carry a bearer token the API server authenticates (TokenReview) and authorizes for get on the non-resource URL /metrics (SubjectAccessReview); needs RBAC to create both reviews.",
    ),
  tls: z
    .strictObject({
      certFile: z.string().min(1).describe("PEM certificate (chain) file."),
      keyFile: z.string().min(1).describe("PEM private key file."),
    })
    .optional()
    .describe(
      "Serve /metrics over HTTPS, so scrape tokens never cross the network in clear text. The files are polled every 10 s: renewals are served without a restart.",
    ),
});

/** `/healthz` and `/readyz`: never authenticated (the kubelet probes them without credentials). */
export const HealthEndpointConfig = z.strictObject({
  port: Port.default(8081),
  bindAddress: z
    .string()
    .min(1)
    .default("0.0.0.0")
    .describe("Address of the /healthz and /readyz listener; the kubelet must reach it."),
});

export const OperatorConfig = z
  .strictObject({
    logLevel: LogLevel.default("info"),
    metrics: MetricsConfig.prefault({}),
    health: HealthEndpointConfig.prefault({}),
    leaderElection: LeaderElectionConfig.prefault({}),
    concurrency: ConcurrencyConfig.prefault({}),
    namespaces: z
      .array(Namespace)
      .max(1000)
      .default([])
      .describe("Namespaces to watch; empty means all namespaces."),
    watch: WatchConfig.prefault({}),
    defaultPolicy: DefaultPolicy.prefault({}),
    probing: ProbingConfig.prefault({}),
    publishing: PublishingConfig.prefault({}),
    sharding: ShardingConfig.prefault({}),
    xds: XdsConfig.prefault({}),
  })
  .superRefine((c, ctx) => {
    // One port means one listener: it cannot bind two addresses, and health probes speak plain HTTP.
    if (c.metrics.port !== c.health.port) return;
    if (c.metrics.bindAddress !== c.health.bindAddress) {
      ctx.addIssue({
        code: "custom",
        path: ["metrics", "bindAddress"],
        message: "must equal health.bindAddress when metrics.port equals health.port (one listener)",
      });
    }
    if (c.metrics.tls) {
      ctx.addIssue({
        code: "custom",
        path: ["metrics", "tls"],
        message: "needs a metrics.port other than health.port (the kubelet probes health over plain HTTP)",
      });
    }
  });
export type OperatorConfig = z.output<typeof OperatorConfig>;
export type OperatorConfigInput = z.input<typeof OperatorConfig>;

/** Top-level sections applied without a restart. */
export const liveKeys = [
  "logLevel",
  "metrics",
  "health",
  "concurrency",
  "defaultPolicy",
  "probing",
  "publishing",
] as const;
/** Top-level sections that need a restart to take effect. */
export const restartKeys = ["leaderElection", "namespaces", "watch", "sharding", "xds"] as const;
/**
 * Fields of live sections that still apply on restart only: the probe
 * engine's limits, resolver and DNS refresh are fixed when it is created.
 */
export const restartFields = [
  "probing.maxConcurrent",
  "probing.maxPerHost",
  "probing.maxAddressesPerName",
  "probing.dnsServers",
  "probing.dnsRefresh",
  "publishing.maxInflightWrites",
] as const;
