/**
 * Turns the zod schemas into structural apiextensions.k8s.io/v1 CRDs.
 *
 * zod's JSON Schema output is close to what the API server wants; this module
 * makes it structural and Kubernetes-flavoured:
 * - no `$schema`, `additionalProperties: false` or `propertyNames` (the API
 *   server prunes or, with fieldValidation=Strict, rejects unknown fields);
 * - `x-kubernetes-int-or-string` fields get exactly the `anyOf: [{type:
 *   integer}, {type: string}]` the API server allows, with the branch bounds
 *   hoisted next to it (minimum applies to numbers, pattern to strings);
 * - a discriminated union of objects becomes one object with every member
 *   field optional (structural schemas cannot branch on type); the CEL rules
 *   attached to the union say which member goes with which type, and members
 *   lose their defaults so the server never adds `http: {}` to a tcp probe;
 * - safe-integer bounds that zod adds to every `z.int()` are dropped;
 * - keys are put in one fixed order so that the output is deterministic and
 *   diffs read well.
 * It fails loudly when a property has no description (`kubectl explain` must be
 * useful) or when a construct cannot be expressed structurally.
 */
import { dump } from "js-yaml";
import { z } from "zod";
import { API_VERSION, type CustomResourceType, GROUP, VERSION } from "./common.ts";
import { DiscoveryPolicyResource, DiscoveryPolicySpec, DiscoveryPolicyStatus } from "./discoverypolicy.ts";
import { ServiceInstanceResource, ServiceInstanceSpec, ServiceInstanceStatus } from "./serviceinstance.ts";

/** An OpenAPI v3 schema node as it appears in a CRD. */
export type OpenApiSchema = { [key: string]: unknown };

/** A printer column of a CRD version. */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
  format?: string;
}

/** A CustomResourceDefinition as plain data (the wire format). */
export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames: string[];
      categories: string[];
    };
    scope: "Namespaced";
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: OpenApiSchema };
    }[];
  };
}

const SAFE = Number.MAX_SAFE_INTEGER;

/** The fixed key order of schema nodes in the generated YAML. */
const KEY_ORDER = [
  "description",
  "type",
  "format",
  "enum",
  "default",
  "nullable",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "required",
  "properties",
  "additionalProperties",
  "items",
  "anyOf",
  "allOf",
  "x-kubernetes-int-or-string",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
];

/** Keys dropped from zod's output: JSON Schema bookkeeping the API server does not take. */
const DROP = new Set(["$schema", "id", "$id", "propertyNames", "title", "examples"]);

/** Bounds that may be hoisted from the branches of an int-or-string union. */
const INT_OR_STRING_BOUNDS = ["minimum", "maximum", "minLength", "maxLength", "pattern"];

function isObject(v: unknown): v is OpenApiSchema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(path: string, msg: string): never {
  throw new Error(`cannot generate a structural schema at ${path || "<root>"}: ${msg}`);
}

/** Merges the object branches of a discriminated union into one object schema. */
function mergeUnion(node: OpenApiSchema, branches: OpenApiSchema[], path: string): OpenApiSchema {
  const properties: Record<string, OpenApiSchema> = {};
  const counts = new Map<string, number>();
  let required: Set<string> | undefined;
  for (const b of branches) {
    if (b.type !== "object" || !isObject(b.properties))
      fail(path, "a union whose branches are not all objects");
    for (const [k, v] of Object.entries(b.properties as Record<string, OpenApiSchema>)) {
      counts.set(k, (counts.get(k) ?? 0) + 1);
      const prev = properties[k];
      if (!prev) {
        properties[k] = { ...v };
      } else if (Array.isArray(prev.enum) && Array.isArray(v.enum)) {
        prev.enum = [...new Set([...prev.enum, ...v.enum])];
      } else if (JSON.stringify(prev) !== JSON.stringify(v)) {
        fail(`${path}.${k}`, "union branches declare the same field differently");
      }
    }
    const req = new Set(Array.isArray(b.required) ? (b.required as string[]) : []);
    required = required ? new Set([...required].filter((k) => req.has(k))) : req;
  }
  for (const [k, n] of counts) {
    // A field only some branches have is optional and must not be defaulted.
    if (n < branches.length) delete properties[k]!.default;
  }
  const out: OpenApiSchema = { ...node, type: "object", properties };
  delete out.oneOf;
  delete out.anyOf;
  if (required?.size) out.required = [...required];
  return out;
}

/** Recursively turns one zod JSON Schema node into a structural schema node. */
function structural(input: OpenApiSchema, path: string): OpenApiSchema {
  let node: OpenApiSchema = {};
  for (const [k, v] of Object.entries(input)) if (!DROP.has(k)) node[k] = v;
  if (node.additionalProperties === false) delete node.additionalProperties;

  const branches = (node.oneOf ?? node.anyOf) as OpenApiSchema[] | undefined;
  if (branches) {
    if (node["x-kubernetes-int-or-string"] === true) {
      for (const b of branches) {
        for (const k of INT_OR_STRING_BOUNDS) if (b[k] !== undefined) node[k] = b[k];
      }
      delete node.oneOf;
      node.anyOf = [{ type: "integer" }, { type: "string" }];
    } else {
      node = mergeUnion(node, branches, path);
    }
  }
  if (node.const !== undefined) {
    node.enum = [node.const];
    delete node.const;
  }
  if (node.type === "integer") {
    if (node.minimum === -SAFE) delete node.minimum;
    if (node.maximum === SAFE) delete node.maximum;
  }
  if (node.format === "date-time") delete node.pattern;

  if (isObject(node.properties)) {
    const props: Record<string, OpenApiSchema> = {};
    for (const [k, v] of Object.entries(node.properties)) {
      const child = structural(v as OpenApiSchema, `${path}.${k}`);
      if (typeof child.description !== "string" || !child.description) fail(`${path}.${k}`, "no description");
      props[k] = child;
    }
    node.properties = props;
  }
  if (isObject(node.items)) node.items = structural(node.items, `${path}[]`);
  if (isObject(node.additionalProperties)) {
    node.additionalProperties = structural(node.additionalProperties, `${path}{}`);
  }
  for (const k of Object.keys(node)) {
    if (!KEY_ORDER.includes(k)) fail(path, `unsupported key ${k}`);
  }
  return ordered(node);
}

function ordered(node: OpenApiSchema): OpenApiSchema {
  const out: OpenApiSchema = {};
  for (const k of KEY_ORDER) if (node[k] !== undefined) out[k] = node[k];
  return out;
}

/** The structural OpenAPI schema of a zod schema (as input: defaults are optional fields with `default`). */
export function toOpenApiSchema(schema: z.ZodType, path = ""): OpenApiSchema {
  const json = z.toJSONSchema(schema, { io: "input", reused: "inline", target: "openapi-3.0" });
  return structural(json as OpenApiSchema, path);
}

interface KindDefinition {
  resource: CustomResourceType;
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
}

function crd(def: KindDefinition): CustomResourceDefinition {
  const { resource: r } = def;
  const root: OpenApiSchema = ordered({
    description: def.description,
    type: "object",
    required: ["spec"],
    properties: {
      apiVersion: {
        description: `APIVersion of this object: ${API_VERSION}.`,
        type: "string",
      },
      kind: { description: `Kind of this object: ${r.kind}.`, type: "string" },
      metadata: { type: "object" },
      spec: toOpenApiSchema(def.spec, "spec"),
      status: toOpenApiSchema(def.status, "status"),
    },
  });
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${r.plural}.${GROUP}`, labels: { "app.kubernetes.io/part-of": "roster" } },
    spec: {
      group: GROUP,
      names: {
        kind: r.kind,
        listKind: `${r.kind}List`,
        plural: r.plural,
        singular: r.singular,
        shortNames: r.shortNames,
        categories: ["roster"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: { openAPIV3Schema: root },
        },
      ],
    },
  };
}

const ageColumn: PrinterColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since the object was created.",
};

/** The ServiceInstance CRD. */
export function serviceInstanceCrd(): CustomResourceDefinition {
  return crd({
    resource: ServiceInstanceResource,
    description:
      "ServiceInstance registers one instance of a logical service (a VM, a database, anything with an address). Roster probes it and publishes it in the service's EndpointSlices and ConfigMap while it is healthy.",
    spec: ServiceInstanceSpec,
    status: ServiceInstanceStatus,
    printerColumns: [
      { name: "Service", type: "string", jsonPath: ".spec.service", description: "Logical service." },
      { name: "Address", type: "string", jsonPath: ".spec.address", description: "IP address or DNS name." },
      {
        name: "Ports",
        type: "string",
        jsonPath: ".status.portSummary",
        description:
          "Ports, e.g. 8080/TCP,9091/TCP (a printer column shows only the first item of a list, so Roster writes this summary).",
      },
      {
        name: "Healthy",
        type: "boolean",
        jsonPath: ".status.healthy",
        description: "Passes its health check.",
      },
      {
        name: "Ready",
        type: "string",
        jsonPath: '.status.conditions[?(@.type=="Ready")].status',
        description: "Published as ready (the Ready condition).",
      },
      {
        name: "Reason",
        type: "string",
        jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
        description:
          "Why it is or is not published as ready (the Ready condition's reason): Healthy, Unhealthy, Draining, NotInEndpointSlices, ConfigMapStale, ...",
      },
      {
        name: "Probe",
        type: "string",
        jsonPath: '.status.conditions[?(@.type=="Healthy")].reason',
        description:
          "The health check's reason (the Healthy condition's): ProbeSucceeded, HTTPStatus, Timeout, ...",
      },
      { name: "Zone", type: "string", jsonPath: ".spec.zone", description: "Topology zone.", priority: 1 },
      {
        name: "Weight",
        type: "integer",
        jsonPath: ".spec.weight",
        description: "Traffic weight.",
        priority: 1,
      },
      {
        name: "Drain",
        type: "boolean",
        jsonPath: ".spec.drain",
        description: "In maintenance mode.",
        priority: 1,
      },
      ageColumn,
    ],
  });
}

/** The DiscoveryPolicy CRD. */
export function discoveryPolicyCrd(): CustomResourceDefinition {
  return crd({
    resource: DiscoveryPolicyResource,
    description:
      "DiscoveryPolicy sets how the instances of one logical service are probed, load-balanced and published. Without one, the operator's default policy applies.",
    spec: DiscoveryPolicySpec,
    status: DiscoveryPolicyStatus,
    printerColumns: [
      {
        name: "Service",
        type: "string",
        jsonPath: ".spec.service",
        description: "Logical service governed.",
      },
      {
        name: "Strategy",
        type: "string",
        jsonPath: ".spec.loadBalancing.strategy",
        description: "Load-balancing strategy (empty: operator default).",
      },
      {
        name: "Healthy",
        type: "integer",
        jsonPath: ".status.healthyInstances",
        description: "Healthy instances.",
      },
      { name: "Total", type: "integer", jsonPath: ".status.totalInstances", description: "All instances." },
      {
        name: "Panic",
        type: "boolean",
        jsonPath: ".status.panic",
        description: "Failing open (panic threshold).",
      },
      {
        name: "Draining",
        type: "integer",
        jsonPath: ".status.drainingInstances",
        description: "Draining instances.",
        priority: 1,
      },
      {
        name: "Revision",
        type: "integer",
        jsonPath: ".status.publishedRevision",
        description: "Published revision.",
        priority: 1,
      },
      ageColumn,
    ],
  });
}

/** Both CRDs, in file-name order. */
export function buildCrds(): CustomResourceDefinition[] {
  return [discoveryPolicyCrd(), serviceInstanceCrd()];
}

/** The file name of a CRD under crds/, e.g. `roster.dev_serviceinstances.yaml`. */
export function crdFileName(c: CustomResourceDefinition): string {
  return `${c.spec.group}_${c.spec.names.plural}.yaml`;
}

/** The YAML of a CRD file: a header saying where it comes from, then the CRD. Deterministic. */
export function renderCrd(c: CustomResourceDefinition): string {
  const header =
    "# Generated from the zod schemas in src/api by scripts/gen-crds.ts (`make crds`). Do not edit.\n";
  return header + dump(c, { lineWidth: -1, noRefs: true, quoteStyle: "double" });
}
