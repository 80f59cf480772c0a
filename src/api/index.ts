/**
 * The Roster API (roster.dev/v1alpha1): zod schemas, the types inferred from
 * them, defaults, validation helpers and the CRD builder. Schemas and types
 * share names (`ServiceInstance` is both the zod schema and the parsed type).
 * See docs/api.md for the reference.
 */
export * from "./common.ts";
export * from "./crd.ts";
export * from "./discoverypolicy.ts";
export * from "./health.ts";
export * from "./rules.ts";
export * from "./serviceinstance.ts";
export * from "./validate.ts";
