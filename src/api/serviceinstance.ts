/**
 * ServiceInstance: one instance of a logical service (a VM, a database, a
 * pod in another cluster: anything with an address), registered by
 * `kubectl apply` and probed by Roster.
 */
import { z } from "zod";
import {
  Address,
  API_VERSION,
  CONDITION_REASON,
  Conditions,
  type CustomResourceType,
  codePoints,
  Dns1035Label,
  duplicates,
  GROUP,
  LABEL_VALUE,
  ObjectMeta,
  PortName,
  PortNumber,
  QUALIFIED_NAME,
  Timestamp,
  VERSION,
} from "./common.ts";
import { DatabaseRole, HealthCheckOverride, isPorted, PORTED_PROBES } from "./health.ts";
import { celRegex, withRules } from "./rules.ts";

/** Kind, plural and short name of ServiceInstance. */
export const ServiceInstanceResource: CustomResourceType = {
  group: GROUP,
  version: VERSION,
  namespaced: true,
  kind: "ServiceInstance",
  plural: "serviceinstances",
  singular: "serviceinstance",
  shortNames: ["si"],
};

/** Transport protocols of a port. */
export const Protocol = z.enum(["TCP", "UDP", "SCTP"]);
export type Protocol = z.output<typeof Protocol>;

/** One port of an instance. */
export const ServicePort = z
  .strictObject({
    name: PortName.describe(
      "Port name (DNS-1035 label), unique within the instance; becomes the Service and EndpointSlice port name and can be referenced by probes.",
    ),
    port: PortNumber.describe("Port number on the instance address (1-65535)."),
    protocol: Protocol.default("TCP").describe("TCP, UDP or SCTP."),
    appProtocol: z
      .string()
      .min(1)
      .max(128)
      .regex(
        QUALIFIED_NAME,
        "must be an IANA service name or a domain-prefixed name such as kubernetes.io/h2c",
      )
      .optional()
      .describe(
        "Application protocol, e.g. http, https, grpc or kubernetes.io/h2c; copied to the EndpointSlice port.",
      ),
  })
  .describe("A port of the instance.");
export type ServicePort = z.output<typeof ServicePort>;

/** Bounds of spec.metadata (the published ConfigMap carries it for every endpoint). */
export const METADATA_LIMITS = Object.freeze({
  maxKeys: 32,
  maxKeyLength: 128,
  maxValueLength: 1024,
  maxTotal: 4096,
});

/** A metadata key: a qualified name such as `version` or `example.com/owner`. */
const METADATA_KEY = QUALIFIED_NAME;

/**
 * Control characters (U+0000 to U+001F): JSON writes each as an escape of up
 * to 6 bytes, so a value of them would cost several times its counted size
 * in the published document. Refused, so that the counted size is what is
 * written.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTER = /[\x00-\x1f]/;
/** What else JSON escapes in a string (to two bytes each). */
const JSON_ESCAPED = /["\\]/;

/**
 * The size of a metadata string as the published document writes it: UTF-8
 * bytes of its JSON form without the quotes (`"` and `\` escaped to 2 bytes).
 * Exact for every string CONTROL_CHARACTER allows.
 */
export function writtenSize(s: string): number {
  return Buffer.byteLength(JSON.stringify(s), "utf8") - 2;
}

/** Free-form string metadata, bounded in key count, key/value size and total size as written. */
export const Metadata = withRules(
  z
    .record(z.string(), z.string().max(METADATA_LIMITS.maxValueLength))
    .meta({ maxProperties: METADATA_LIMITS.maxKeys }),
  [
    {
      rule: `size(self) <= ${METADATA_LIMITS.maxKeys}`,
      message: `metadata may have at most ${METADATA_LIMITS.maxKeys} keys`,
      check: (m) => Object.keys(m).length <= METADATA_LIMITS.maxKeys,
    },
    {
      rule: `self.all(k, size(k) <= ${METADATA_LIMITS.maxKeyLength} && k.matches(${celRegex(METADATA_KEY)}))`,
      message: `metadata keys must be qualified names (letters, digits, '-', '_', '.', optional DNS prefix and '/') of at most ${METADATA_LIMITS.maxKeyLength} characters`,
      check: (m) =>
        Object.keys(m)
          .filter((k) => codePoints(k) > METADATA_LIMITS.maxKeyLength || !METADATA_KEY.test(k))
          .map((k) => [k]),
    },
    {
      rule: `self.all(k, !self[k].matches(${celRegex(CONTROL_CHARACTER)}))`,
      message: "metadata values must not contain control characters (U+0000 to U+001F, e.g. newline or tab)",
      check: (m) =>
        Object.entries(m)
          .filter(([, v]) => CONTROL_CHARACTER.test(v))
          .map(([k]) => [k]),
    },
    {
      // Keys are qualified names (ASCII, nothing to escape); in values, `"`
      // and `\` are written as two bytes.
      rule: `self.map(k, size(bytes(k)) + size(bytes(self[k])) + size(self[k].findAll(${celRegex(JSON_ESCAPED)}))).sum() <= ${METADATA_LIMITS.maxTotal}`,
      message: `metadata keys and values may total at most ${METADATA_LIMITS.maxTotal} bytes as published (UTF-8 in JSON: a non-ASCII character counts 2 to 4, '"' and '\\' count 2)`,
      check: (m) =>
        Object.entries(m).reduce((n, [k, v]) => n + writtenSize(k) + writtenSize(v), 0) <=
        METADATA_LIMITS.maxTotal,
    },
  ],
);

/** A tag. */
const Tag = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[A-Za-z0-9]([-A-Za-z0-9_.:/=]*[A-Za-z0-9])?$/,
    "must be letters, digits and '-', '_', '.', ':', '/', '='",
  );

/** Desired state of a ServiceInstance. */
export const ServiceInstanceSpec = withRules(
  z.strictObject({
    service: Dns1035Label.describe(
      "Logical service this instance belongs to (DNS-1035 label); the published Service and EndpointSlices carry this name.",
    ),
    address: Address.describe(
      "Where the instance is reached: an IPv4 address, an IPv6 address or a DNS name (resolved and re-resolved by Roster; published endpoints are IPs).",
    ),
    ports: withRules(
      z
        .array(ServicePort)
        .min(1)
        .max(32)
        .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
      [
        {
          rule: "self.all(p, self.exists_one(q, q.name == p.name))",
          message: "port names must be unique",
          check: (ports) => duplicates(ports.map((p) => p.name)).map((i) => [i, "name"]),
        },
        {
          rule: "self.all(p, self.exists_one(q, q.port == p.port && q.protocol == p.protocol))",
          message: "each port number may appear once per protocol",
          check: (ports) => duplicates(ports.map((p) => `${p.port}/${p.protocol}`)).map((i) => [i, "port"]),
        },
      ],
    ).describe("Ports of the instance, at least one; a map keyed by name."),
    weight: z
      .int()
      .min(0)
      .max(10000)
      .default(100)
      .describe("Relative share of traffic for weighted strategies (0-10000); 0 takes no new traffic."),
    zone: z
      .string()
      .min(1)
      .max(63)
      .regex(LABEL_VALUE, "must be a label value such as eu-west-1a")
      .optional()
      .describe("Topology zone of the instance (like topology.kubernetes.io/zone); used for zone hints."),
    tags: z
      .array(Tag)
      .max(32)
      .superRefine((tags, ctx) => {
        for (const i of duplicates(tags))
          ctx.addIssue({ code: "custom", message: "tags must be unique", path: [i], input: tags });
      })
      .meta({ "x-kubernetes-list-type": "set" })
      .optional()
      .describe("Free-form tags (unique, at most 32), published for clients to filter on."),
    metadata: Metadata.optional().describe(
      `String key/value metadata published with the endpoint: at most ${METADATA_LIMITS.maxKeys} keys of up to ${METADATA_LIMITS.maxKeyLength} characters, values up to ${METADATA_LIMITS.maxValueLength} characters without control characters, ${METADATA_LIMITS.maxTotal} bytes in total as published (UTF-8 JSON).`,
    ),
    drain: z
      .boolean()
      .default(false)
      .describe(
        "Maintenance mode: the endpoint stays published as serving but not ready (terminating), so new traffic avoids it.",
      ),
    healthCheck: HealthCheckOverride.optional().describe(
      "Per-instance overrides of the DiscoveryPolicy's (or the operator default's) health check, merged field by field: set fields win, absent ones are the policy's, probes merge by type (see docs/api.md). The merged check is shown in status.effectiveHealthCheck.",
    ),
  }),
  [
    {
      rule: `!has(self.healthCheck) || !has(self.healthCheck.probes) || self.healthCheck.probes.all(p, ${PORTED_PROBES.map(
        (m) =>
          `(has(p.${m}) && has(p.${m}.port) && type(p.${m}.port) == string ? self.ports.exists(q, q.name == p.${m}.port) : true)`,
      ).join(" && ")})`,
      message: "a probe refers to a port name that is not among spec.ports[].name",
      fieldPath: ".healthCheck.probes",
      check: (spec) => {
        const names = new Set(spec.ports.map((p) => p.name));
        return (spec.healthCheck?.probes ?? []).flatMap((p, i) => {
          const ref = isPorted(p.type) ? p[p.type]?.port : undefined;
          return typeof ref === "string" && !names.has(ref)
            ? [["healthCheck", "probes", i, p.type, "port"]]
            : [];
        });
      },
    },
  ],
).describe("Desired state of the instance.");
export type ServiceInstanceSpec = z.output<typeof ServiceInstanceSpec>;
/** A spec as written by a user (defaults not yet applied). */
export type ServiceInstanceSpecInput = z.input<typeof ServiceInstanceSpec>;

/** The outcome of the most recent probe run that changed something. */
export const LastProbe = z
  .strictObject({
    time: Timestamp.describe("When the probe run finished."),
    result: z.enum(["Success", "Failure"]).describe("Success or Failure of the combined probes."),
    reason: z
      .string()
      .max(128)
      .regex(CONDITION_REASON, "must be CamelCase")
      .optional()
      .describe("CamelCase reason, e.g. HttpStatus, ConnectionRefused, Timeout."),
    message: z
      .string()
      .max(1024)
      .optional()
      .describe("Short human-readable detail (at most 1024 characters)."),
  })
  .describe("The last probe outcome Roster recorded (status is written on transitions, not on every probe).");
export type LastProbe = z.output<typeof LastProbe>;

/**
 * The ports as one string, the way `kubectl get service` shows them
 * (`8080/TCP,9091/TCP`). Roster writes it to status.portSummary because a
 * printer column cannot join a list (it shows only the first match).
 */
export function portSummary(ports: readonly Pick<ServicePort, "port" | "protocol">[]): string {
  return ports.map((p) => `${p.port}/${p.protocol}`).join(",");
}

/** Where an instance's health check came from. */
export const HealthCheckSource = z.enum([
  "Instance",
  "InstanceOverPolicy",
  "InstanceOverDefault",
  "Policy",
  "Default",
]);
export type HealthCheckSource = z.output<typeof HealthCheckSource>;

/** The health check an instance is probed with, after merging its override: bounded, one line per probe. */
export const EffectiveHealthCheck = z
  .strictObject({
    source: HealthCheckSource.describe(
      "Policy or Default: the policy's (or the operator default's) check; InstanceOverPolicy or InstanceOverDefault: spec.healthCheck merged over it; Instance: spec.healthCheck as a whole (it sets every field).",
    ),
    policy: z.string().max(253).optional().describe("The DiscoveryPolicy the check comes from, if any."),
    probes: z
      .array(z.string().max(256))
      .max(8)
      .describe("One line per probe, e.g. `http GET http://10.0.0.5:http/healthz (200-399)`."),
    combine: z.string().max(8).describe("all or any."),
    interval: z.string().max(32).describe("Time between probe runs."),
    timeout: z.string().max(32).describe("Time a probe run may take."),
    initialDelay: z.string().max(32).describe("Delay before the first probe."),
    failureThreshold: z.int().min(0).max(1000).describe("Consecutive failures before unhealthy."),
    successThreshold: z.int().min(0).max(1000).describe("Consecutive successes before healthy."),
    jitter: z.int().min(0).max(100).describe("Percent of interval."),
    flapDamping: z
      .strictObject({
        maxTransitions: z.int().min(0).max(1000).describe("Verdict changes allowed within window."),
        window: z.string().max(32).describe("Window over which changes are counted."),
      })
      .optional()
      .describe("Absent: off."),
  })
  .describe(
    "The health check the instance is probed with, after merging spec.healthCheck over the policy's.",
  );
export type EffectiveHealthCheck = z.output<typeof EffectiveHealthCheck>;

/** Observed state of a ServiceInstance, written by Roster. */
export const ServiceInstanceStatus = z
  .strictObject({
    healthy: z.boolean().optional().describe("Whether the instance currently passes its health check."),
    conditions: Conditions.optional().describe(
      "Conditions: Ready, Healthy, Resolved, ... (a map keyed by type).",
    ),
    observedGeneration: z
      .int()
      .min(0)
      .meta({ format: "int64" })
      .optional()
      .describe("metadata.generation that this status describes."),
    portSummary: z
      .string()
      .max(512)
      .optional()
      .describe(
        "The ports as kubectl shows Service ports (8080/TCP,9091/TCP), for the PORTS column; see portSummary() in src/api.",
      ),
    addresses: z
      .array(z.string().max(45))
      .max(16)
      .optional()
      .describe("IP addresses the instance address resolved to (the address itself when it is an IP)."),
    role: DatabaseRole.optional().describe(
      "The role the instance's database server reported to its last postgres or redis probe (primary or replica); absent when unknown (no database probe, not probed yet, the last probe failed).",
    ),
    lastProbe: LastProbe.optional().describe("The last recorded probe outcome."),
    effectiveHealthCheck: EffectiveHealthCheck.optional().describe(
      "The health check the instance is probed with: spec.healthCheck merged over the policy's (or the operator default's).",
    ),
    lastTransitionTime: Timestamp.optional().describe("When healthy last changed."),
  })
  .describe("Observed state of the instance, written by Roster.");
export type ServiceInstanceStatus = z.output<typeof ServiceInstanceStatus>;

/** A whole ServiceInstance object. */
export const ServiceInstance = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(ServiceInstanceResource.kind),
  metadata: ObjectMeta,
  spec: ServiceInstanceSpec,
  status: ServiceInstanceStatus.optional(),
});
export type ServiceInstance = z.output<typeof ServiceInstance>;
/** A ServiceInstance as written by a user (defaults not yet applied). */
export type ServiceInstanceInput = z.input<typeof ServiceInstance>;
