/**
 * Reading the config file: YAML, validated with zod, with errors a human can
 * act on.
 *
 * Guarantees: `parseConfig` either returns a complete config (defaults
 * applied) or throws a `ConfigError` whose message names the file and, for
 * each problem, the field path and what is wrong, or the line and column of
 * a YAML syntax error. It never returns a partially valid config.
 */
import { readFileSync } from "node:fs";
import { load, YAMLException } from "js-yaml";
import type { z } from "zod";
import { OperatorConfig } from "./schema.ts";

export class ConfigError extends Error {
  readonly source: string;
  /** One entry per problem: `leaderElection.leaseDuration: must be ...`. */
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.source = source;
    this.problems = problems;
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || "(top level)";
}

function problemsOf(error: z.ZodError): string[] {
  const out: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) out.push(`${fieldPath([...issue.path, key])}: unknown field`);
      continue;
    }
    out.push(`${fieldPath(issue.path)}: ${issue.message}`);
  }
  return out;
}

/** Parses and validates config text; `source` names it in errors. */
export function parseConfig(text: string, source = "<config>"): OperatorConfig {
  let doc: unknown;
  // An empty file (or one with only comments) is the all-defaults config.
  if (!text.split("\n").some((l) => l.trim() !== "" && !l.trim().startsWith("#") && l.trim() !== "---")) {
    text = "{}";
  }
  try {
    doc = load(text);
  } catch (err) {
    if (err instanceof YAMLException) {
      const m = err.mark;
      const where = m ? ` at line ${m.line + 1}, column ${m.column + 1}` : "";
      throw new ConfigError(source, [`YAML syntax error${where}: ${err.reason}`]);
    }
    throw new ConfigError(source, [`cannot parse: ${String(err)}`]);
  }
  if (doc === undefined || doc === null) doc = {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(source, ["the document must be a mapping (key: value), not a list or a scalar"]);
  }
  const r = OperatorConfig.safeParse(doc);
  if (!r.success) throw new ConfigError(source, problemsOf(r.error));
  return r.data;
}

export function readConfigText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
}

export function loadConfig(path: string): OperatorConfig {
  return parseConfig(readConfigText(path), path);
}

/** Top-level keys whose value differs between two configs. */
export function changedKeys(prev: OperatorConfig, next: OperatorConfig): (keyof OperatorConfig)[] {
  return (Object.keys(next) as (keyof OperatorConfig)[]).filter(
    (k) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]),
  );
}
