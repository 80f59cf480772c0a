/**
 * The JSON Schema of the published endpoints document (`endpoints.json`),
 * generated from the zod schema in published.ts so that readers in other
 * languages validate against exactly what the writer checks. Committed as
 * schemas/endpoints.v1.schema.json (`npm run gen:schemas`); a unit test keeps
 * it current.
 *
 * What JSON Schema cannot say, and readers must check themselves (the zod
 * refinements): `family` matches the address, `ready` is true exactly for
 * states Ready and Panic, state Ready implies `healthy`, port names are unique
 * within an endpoint, (instance, address) pairs are unique, a Header, Cookie
 * or QueryParameter key has a `name` and the others have none, and strategy
 * ConsistentHash comes with `consistentHash`.
 */
import { z } from "zod";
import { PUBLISHED_FORMAT_VERSION, publishedEndpointsSchema } from "./published.ts";

export const PUBLISHED_SCHEMA_FILE = `endpoints.v${PUBLISHED_FORMAT_VERSION}.schema.json`;
export const PUBLISHED_SCHEMA_ID = `https://roster.dev/schemas/${PUBLISHED_SCHEMA_FILE}`;

export function publishedJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(publishedEndpointsSchema, { target: "draft-2020-12", io: "output" });
  const { $schema, ...rest } = generated as Record<string, unknown>;
  return {
    $schema,
    $id: PUBLISHED_SCHEMA_ID,
    title: `Roster published endpoints, format version ${PUBLISHED_FORMAT_VERSION}`,
    description:
      "The endpoints.json key of a Roster ConfigMap. Generated from src/api/published.ts; " +
      "unknown properties are allowed (additive changes within a major version).",
    ...rest,
  };
}

/** The committed file's exact text. */
export function renderPublishedJsonSchema(): string {
  return `${JSON.stringify(publishedJsonSchema(), null, 2)}\n`;
}
