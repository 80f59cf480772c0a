/**
 * Writes schemas/: the JSON Schema of endpoints.json (from the zod schema in
 * src/api/published.ts) and the balancing conformance vectors (from
 * src/balance). `node scripts/gen-schemas.ts` (`npm run gen:schemas`) rewrites
 * them; `--check` only compares and exits 1 when they are out of date.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  PUBLISHED_HEAD_SCHEMA_FILE,
  PUBLISHED_PART_SCHEMA_FILE,
  PUBLISHED_SCHEMA_FILE,
  renderPublishedHeadJsonSchema,
  renderPublishedJsonSchema,
  renderPublishedPartJsonSchema,
} from "../src/api/json-schema.ts";
import { renderConformanceVectors, VECTORS_FILE } from "../src/balance/vectors.ts";

const dir = resolve(fileURLToPath(new URL("../schemas", import.meta.url)));
const check = process.argv.includes("--check");
const wanted: [string, string][] = [
  [PUBLISHED_SCHEMA_FILE, renderPublishedJsonSchema()],
  [PUBLISHED_HEAD_SCHEMA_FILE, renderPublishedHeadJsonSchema()],
  [PUBLISHED_PART_SCHEMA_FILE, renderPublishedPartJsonSchema()],
  [VECTORS_FILE, renderConformanceVectors()],
];
let stale = 0;
for (const [file, text] of wanted) {
  const path = join(dir, file);
  if (existsSync(path) && readFileSync(path, "utf8") === text) continue;
  stale++;
  if (check) {
    console.error(`schemas/${file} is out of date`);
  } else {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, text);
    console.log(`wrote schemas/${file}`);
  }
}
if (check && stale) {
  console.error("run `npm run gen:schemas` and commit the result");
  process.exit(1);
}
if (!stale) console.log("schemas/ is up to date");
