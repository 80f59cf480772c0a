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
import {
  PUBLISHED_PARTS_FORMAT_VERSION,
  publishedHeadSchema,
  publishedPartSchema,
} from "./published-parts.ts";

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

/** Format 2 (split documents, published-parts.ts): the head's endpoints.json and a part's endpoints-part.json. */
export const PUBLISHED_HEAD_SCHEMA_FILE = `endpoints.v${PUBLISHED_PARTS_FORMAT_VERSION}.schema.json`;
export const PUBLISHED_PART_SCHEMA_FILE = `endpoints-part.v${PUBLISHED_PARTS_FORMAT_VERSION}.schema.json`;

function schemaOf(
  schema: z.ZodType,
  file: string,
  title: string,
  description: string,
): Record<string, unknown> {
  const generated = z.toJSONSchema(schema, { target: "draft-2020-12", io: "output" });
  const { $schema, ...rest } = generated as Record<string, unknown>;
  return { $schema, $id: `https://roster.dev/schemas/${file}`, title, description, ...rest };
}

export function publishedHeadJsonSchema(): Record<string, unknown> {
  return schemaOf(
    publishedHeadSchema,
    PUBLISHED_HEAD_SCHEMA_FILE,
    `Roster published endpoints head, format version ${PUBLISHED_PARTS_FORMAT_VERSION}`,
    "The endpoints.json key of a split Roster ConfigMap: the header fields and the parts to read " +
      "(each part's endpoints-part.json must carry this revision and hash to the listed sha256). " +
      "Generated from src/api/published-parts.ts; unknown properties are allowed.",
  );
}

export function publishedPartJsonSchema(): Record<string, unknown> {
  return schemaOf(
    publishedPartSchema,
    PUBLISHED_PART_SCHEMA_FILE,
    `Roster published endpoints part, format version ${PUBLISHED_PARTS_FORMAT_VERSION}`,
    "The endpoints-part.json key of a part ConfigMap of a split document: a run of the sorted endpoints. " +
      "Generated from src/api/published-parts.ts; unknown properties are allowed.",
  );
}

export const renderPublishedHeadJsonSchema = (): string =>
  `${JSON.stringify(publishedHeadJsonSchema(), null, 2)}\n`;
export const renderPublishedPartJsonSchema = (): string =>
  `${JSON.stringify(publishedPartJsonSchema(), null, 2)}\n`;
