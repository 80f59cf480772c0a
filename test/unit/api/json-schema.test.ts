/** schemas/endpoints.v1.schema.json is generated from the zod schema and committed; it must be current. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  PUBLISHED_HEAD_SCHEMA_FILE,
  PUBLISHED_PART_SCHEMA_FILE,
  PUBLISHED_SCHEMA_FILE,
  publishedHeadJsonSchema,
  publishedJsonSchema,
  renderPublishedHeadJsonSchema,
  renderPublishedJsonSchema,
  renderPublishedPartJsonSchema,
} from "../../../src/api/json-schema.ts";
import { ENDPOINT_STATES, LOAD_BALANCING_STRATEGIES } from "../../../src/api/published.ts";

test("the committed JSON Schema of endpoints.json is current (npm run gen:schemas)", () => {
  const committed = readFileSync(
    new URL(`../../../schemas/${PUBLISHED_SCHEMA_FILE}`, import.meta.url),
    "utf8",
  );
  assert.equal(committed, renderPublishedJsonSchema());
  for (const [file, text] of [
    [PUBLISHED_HEAD_SCHEMA_FILE, renderPublishedHeadJsonSchema()],
    [PUBLISHED_PART_SCHEMA_FILE, renderPublishedPartJsonSchema()],
  ] as const) {
    assert.equal(readFileSync(new URL(`../../../schemas/${file}`, import.meta.url), "utf8"), text, file);
  }
});

test("the format-2 head schema lists its parts with hashes", () => {
  const s = publishedHeadJsonSchema() as {
    required: string[];
    properties: Record<string, { const?: unknown }>;
  };
  assert.equal(s.properties.formatVersion?.const, 2);
  assert.ok(s.required.includes("parts") && s.required.includes("endpointCount"));
});

test("the JSON Schema carries the format's required fields and enums", () => {
  const s = publishedJsonSchema() as {
    required: string[];
    properties: Record<
      string,
      { const?: unknown; items?: { properties: Record<string, { enum?: string[] }> } }
    >;
  };
  assert.deepEqual(
    [...s.required].sort(),
    ["endpoints", "formatVersion", "loadBalancing", "namespace", "panic", "revision", "service"].sort(),
  );
  assert.equal(s.properties.formatVersion?.const, 1);
  assert.deepEqual(s.properties.endpoints?.items?.properties.state?.enum, [...ENDPOINT_STATES]);
  const text = JSON.stringify(s);
  for (const strategy of LOAD_BALANCING_STRATEGIES) assert.ok(text.includes(`"${strategy}"`));
});
