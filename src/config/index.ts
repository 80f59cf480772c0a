/** The operator's config file: schema, loading, hot reload, and its mapping onto the runtime. */
export * from "./load.ts";
export * from "./runtime.ts";
export * from "./schema.ts";
export * from "./watch.ts";
