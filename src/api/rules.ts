/**
 * Cross-field validation rules that exist twice, on purpose: once as a CEL
 * `x-kubernetes-validations` entry that the API server evaluates at admission,
 * once as a zod refinement that runs wherever Roster parses an object. Keeping
 * both halves in one `ValidationRule` value is what keeps admission and
 * runtime validation in agreement; the CRD generator reads the CEL half from
 * the schema's metadata.
 */
import { z } from "zod";

/** One step of a field path: an object key or an array index. */
export type PathSegment = string | number;

/** The `reason` values the API server accepts on a CEL rule. */
export type RuleReason =
  | "FieldValueInvalid"
  | "FieldValueForbidden"
  | "FieldValueRequired"
  | "FieldValueDuplicate";

/** A CEL validation rule as it appears in a CRD (`x-kubernetes-validations[i]`). */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: RuleReason;
}

/** A rule with its CEL form and its TypeScript twin. */
export interface ValidationRule<T> {
  /** CEL expression over `self` (this value, after defaulting). */
  rule: string;
  /** Shown to the user by both the API server and zod; say what to do. */
  message: string;
  /**
   * Where the API server reports a violation, relative to this value, e.g.
   * `.timeout` (only field names: the API server does not allow list indices).
   */
  fieldPath?: string;
  reason?: RuleReason;
  /**
   * The same rule in TypeScript. `true` or `[]`: satisfied. `false`: violated
   * at `fieldPath`. A list of paths: violated there (relative to this value),
   * which lets zod be more precise than CEL, e.g. name the offending list item.
   */
  check: (self: T) => boolean | PathSegment[][];
}

/** The metadata key under which rules travel from the schemas to the CRD generator. */
export const RULES_META_KEY = "x-kubernetes-validations";

/** Turns a CEL `fieldPath` such as `.spec.ports` or `['a.b'].c` into path segments. */
export function fieldPathSegments(fieldPath: string | undefined): PathSegment[] {
  if (!fieldPath) return [];
  const out: PathSegment[] = [];
  const re = /\.([A-Za-z0-9_$-]+)|\['([^']*)'\]|\[(\d+)\]/gy;
  let m: RegExpExecArray | null = re.exec(fieldPath);
  while (m) {
    out.push(m[1] ?? m[2] ?? Number(m[3]));
    if (re.lastIndex === fieldPath.length) return out;
    m = re.exec(fieldPath);
  }
  throw new Error(`unsupported fieldPath ${JSON.stringify(fieldPath)}`);
}

/** The CEL rules already attached to a schema (inherited through clones). */
export function rulesOf(schema: z.ZodType): CelRule[] {
  const meta = z.globalRegistry.get(schema);
  return (meta?.[RULES_META_KEY] as CelRule[] | undefined) ?? [];
}

/**
 * Attaches rules to a schema: a zod refinement for runtime validation and the
 * CEL form as metadata for the CRD. Returns a new schema of the same type.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: ValidationRule<z.output<S>>[]): S {
  const existing = rulesOf(schema);
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      const result = r.check(value);
      if (result === true) continue;
      const paths = result === false ? [fieldPathSegments(r.fieldPath)] : result;
      for (const path of paths) ctx.addIssue({ code: "custom", message: r.message, path, input: value });
    }
  });
  const cel: CelRule[] = rules.map((r) => {
    const c: CelRule = { rule: r.rule, message: r.message };
    if (r.fieldPath) {
      fieldPathSegments(r.fieldPath); // fail early on a path the API server would reject
      c.fieldPath = r.fieldPath;
    }
    if (r.reason) c.reason = r.reason;
    return c;
  });
  return refined.meta({ [RULES_META_KEY]: [...existing, ...cel] }) as S;
}

/**
 * A regular expression as a CEL string literal for `matches()`. Raw strings
 * keep backslashes as they are; the JavaScript source must also be valid RE2.
 */
export function celRegex(re: RegExp): string {
  const src = re.source;
  if (!src.includes("'")) return `r'${src}'`;
  if (!src.includes('"')) return `r"${src}"`;
  throw new Error(`cannot quote ${src} for CEL`);
}
