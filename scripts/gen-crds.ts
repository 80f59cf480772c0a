/**
 * Writes crds/<group>_<plural>.yaml from the zod schemas in src/api.
 * `node scripts/gen-crds.ts` (also `npm run gen:crds`, `make crds`) rewrites
 * the files; `--check` only compares and exits 1 when they are out of date.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GROUP } from "../src/api/common.ts";
import { buildCrds, crdFileName, renderCrd } from "../src/api/crd.ts";

const dir = resolve(fileURLToPath(new URL("../crds", import.meta.url)));
const check = process.argv.includes("--check");

const wanted = new Map(buildCrds().map((c) => [crdFileName(c), renderCrd(c)]));
const stale = existsSync(dir)
  ? readdirSync(dir).filter((f) => f.startsWith(`${GROUP}_`) && f.endsWith(".yaml") && !wanted.has(f))
  : [];
const outdated = [...wanted].filter(
  ([f, text]) => !existsSync(join(dir, f)) || readFileSync(join(dir, f), "utf8") !== text,
);

if (check) {
  for (const [f] of outdated) console.error(`crds/${f} is out of date`);
  for (const f of stale) console.error(`crds/${f} is not generated any more`);
  if (outdated.length || stale.length) {
    console.error("run `make crds` and commit the result");
    process.exit(1);
  }
  console.log("crds/ is up to date");
} else {
  for (const [f, text] of outdated) {
    writeFileSync(join(dir, f), text);
    console.log(`wrote crds/${f}`);
  }
  for (const f of stale) {
    rmSync(join(dir, f));
    console.log(`removed crds/${f}`);
  }
  if (!outdated.length && !stale.length) console.log("crds/ is up to date");
}
