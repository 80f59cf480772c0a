/**
 * The chart ships the CRDs in charts/roster/crds/ (Helm needs real files
 * there, not symlinks to crds/). They are copies of the generated crds/ and
 * must stay byte-identical: `make chart-crds` copies them.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { crdDir } from "../../../src/dev/crds.ts";
import { chartDir } from "../../support/chart.ts";

const chartCrdDir = resolve(chartDir, "crds");
const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort();

test("charts/roster/crds/ is identical to crds/", () => {
  const fix = "run `make chart-crds` (copies crds/*.yaml into charts/roster/crds/) and commit the result";
  assert.deepEqual(
    yamlFiles(chartCrdDir),
    yamlFiles(crdDir),
    `the chart's CRD files differ from crds/: ${fix}`,
  );
  for (const f of yamlFiles(crdDir)) {
    const same = readFileSync(join(chartCrdDir, f), "utf8") === readFileSync(join(crdDir, f), "utf8");
    assert.ok(same, `charts/roster/crds/${f} differs from crds/${f}: ${fix}`);
  }
});
