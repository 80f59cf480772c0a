/**
 * Validation entry points: parse an object with the zod schemas (applying
 * defaults, as the API server does) and report readable errors, each naming
 * the offending field the way Kubernetes does (`spec.ports[1].name`).
 */
import type { z } from "zod";
import { DiscoveryPolicy, DiscoveryPolicySpec } from "./discoverypolicy.ts";
import { HealthCheck } from "./health.ts";
import type { PathSegment } from "./rules.ts";
import { ServiceInstance, ServiceInstanceSpec } from "./serviceinstance.ts";

/** One validation error: the field path (e.g. `spec.ports[1].name`) and what is wrong. */
export interface FieldError {
  path: string;
  message: string;
}

/** The result of a validation: the parsed value with defaults applied, or the errors. */
export type Validation<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

const identifier = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** Formats a path the Kubernetes way: `spec.ports[1].name`, `spec.metadata['example.com/x']`. */
export function formatPath(path: readonly PropertyKey[], base = ""): string {
  let out = base;
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && identifier.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** Converts zod issues into field errors (one per unknown key, so each names its field). */
export function toFieldErrors(error: z.ZodError, base = ""): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    const path = issue.path as PathSegment[];
    if (issue.code === "unrecognized_keys") {
      const generic = issue.message.startsWith("Unrecognized key");
      for (const key of issue.keys) {
        out.push({
          path: formatPath([...path, key], base),
          message: generic ? "unknown field" : issue.message,
        });
      }
      continue;
    }
    if (issue.code === "invalid_type" && issue.message.endsWith("received undefined")) {
      out.push({ path: formatPath(path, base), message: "required field is missing" });
      continue;
    }
    out.push({ path: formatPath(path, base), message: issue.message });
  }
  return out;
}

/** Validates `input` against any schema; `base` prefixes the reported paths (e.g. `spec`). */
export function validate<S extends z.ZodType>(schema: S, input: unknown, base = ""): Validation<z.output<S>> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, errors: toFieldErrors(r.error, base) };
}

/** Validates a whole ServiceInstance object (apiVersion, kind, metadata, spec, status). */
export function validateServiceInstance(obj: unknown): Validation<ServiceInstance> {
  return validate(ServiceInstance, obj);
}

/** Validates a whole DiscoveryPolicy object. */
export function validateDiscoveryPolicy(obj: unknown): Validation<DiscoveryPolicy> {
  return validate(DiscoveryPolicy, obj);
}

/** Validates a ServiceInstance spec alone; paths start with `spec.`. */
export function validateServiceInstanceSpec(spec: unknown): Validation<ServiceInstanceSpec> {
  return validate(ServiceInstanceSpec, spec, "spec");
}

/** Validates a DiscoveryPolicy spec alone (e.g. the operator config's default policy); paths start with `spec.`. */
export function validateDiscoveryPolicySpec(spec: unknown, base = "spec"): Validation<DiscoveryPolicySpec> {
  return validate(DiscoveryPolicySpec, spec, base);
}

/** Validates a health check alone; `base` names where it came from (e.g. `defaultPolicy.healthCheck`). */
export function validateHealthCheck(hc: unknown, base = "healthCheck"): Validation<HealthCheck> {
  return validate(HealthCheck, hc, base);
}

/** A Roster object of either kind. */
export type RosterObject = ServiceInstance | DiscoveryPolicy;

/** Validates a Roster object of either kind, chosen by its `kind`. */
export function validateRosterObject(obj: unknown): Validation<RosterObject> {
  const kind = typeof obj === "object" && obj !== null ? (obj as { kind?: unknown }).kind : undefined;
  if (kind === "ServiceInstance") return validateServiceInstance(obj);
  if (kind === "DiscoveryPolicy") return validateDiscoveryPolicy(obj);
  return { ok: false, errors: [{ path: "kind", message: "must be ServiceInstance or DiscoveryPolicy" }] };
}

/** One line per error: `spec.ports[1].name: port names must be unique`. */
export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("\n");
}
