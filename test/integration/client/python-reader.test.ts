// A reader in another language: Python (Debian's python3 and python3-jsonschema)
// validates the endpoints.json the operator really published against the
// committed JSON Schema and reads the same ready set as the TypeScript parser.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { PUBLISHED_SCHEMA_FILE } from "../../../src/api/json-schema.ts";
import {
  PUBLISHED_DATA_KEY,
  parsePublishedEndpoints,
  serializePublishedEndpoints,
} from "../../../src/api/published.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { MARGIN_MS, webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { clients, createInstance } from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

const run = promisify(execFile);
// Debian's interpreter, where .ci/run installs python3-jsonschema.
const PYTHON = "/usr/bin/python3";
const schema = new URL(`../../../schemas/${PUBLISHED_SCHEMA_FILE}`, import.meta.url).pathname;
const reader = new URL("../../../examples/readers/read_endpoints.py", import.meta.url).pathname;

async function hasJsonschema(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  return run(PYTHON, ["-c", "import jsonschema"]).then(
    () => true,
    () => false,
  );
}

async function read(docText: string): Promise<{ code: number; out: Record<string, unknown> }> {
  const dir = mkdtempSync(join(tmpdir(), "roster-py-"));
  try {
    const file = join(dir, PUBLISHED_DATA_KEY);
    writeFileSync(file, docText);
    const r = await run(PYTHON, [reader, schema, file]).then(
      (x) => ({ code: 0, stdout: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    return { code: r.code, out: JSON.parse(r.stdout) as Record<string, unknown> };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a Python reader validates the published endpoints.json against the committed schema", async (t) => {
  if (!(await hasJsonschema())) {
    if (process.env.CI === "true")
      assert.fail(`${PYTHON} with jsonschema is required in CI (python3-jsonschema)`);
    t.skip(`${PYTHON} has no jsonschema module (apt-get install python3-jsonschema)`);
    return;
  }
  const ns = await testNamespace(t, "pyreader");
  const targets = await httpTargets(t, 3);
  await startTestOperator(t, { namespaces: [ns] });
  targets[2]!.healthy = false;
  await createInstance(ns, "web-1", webInstance(targets[0]!, 0, { zone: "a", weight: 300, tags: ["x"] }));
  await createInstance(ns, "web-2", webInstance(targets[1]!, 1, { drain: true }));
  await createInstance(ns, "web-3", webInstance(targets[2]!, 2));
  const { core } = await clients();
  const text = await eventually(
    async () => {
      const cm = await core
        .readNamespacedConfigMap({ namespace: ns, name: "web-roster" })
        .catch(() => undefined);
      const data = cm?.data?.[PUBLISHED_DATA_KEY];
      if (!data) return undefined;
      const states = parsePublishedEndpoints(data)
        .endpoints.map((e) => e.state)
        .join(",");
      return states === "Ready,Draining,Unhealthy" ? data : undefined;
    },
    { timeoutMs: 15_000 + MARGIN_MS, what: "three endpoints Ready, Draining, Unhealthy" },
  );
  const doc = parsePublishedEndpoints(text);
  const good = await read(text);
  assert.equal(good.code, 0, JSON.stringify(good.out));
  assert.deepEqual(good.out, {
    valid: true,
    revision: doc.revision,
    strategy: doc.loadBalancing.strategy,
    ready: doc.endpoints.filter((e) => e.ready).map((e) => `${e.instance}/${e.address}:${e.ports[0]!.port}`),
  });

  // A stale document (over the ConfigMap budget) is valid, and refused for routing.
  const staleDoc = serializePublishedEndpoints({
    ...doc,
    revision: doc.revision + 1,
    endpoints: [],
    stale: { reason: "OverBudget", bytes: 1_200_000, limit: 1_000_000 },
  });
  const stale = await read(staleDoc);
  assert.equal(stale.code, 2, JSON.stringify(stale.out));
  assert.deepEqual(stale.out, {
    valid: true,
    revision: doc.revision + 1,
    stale: { reason: "OverBudget", bytes: 1_200_000, limit: 1_000_000 },
    ready: [],
  });

  // The schema really constrains: a state outside the enum and a missing field are refused.
  const bad = JSON.parse(text) as { endpoints: { state: string }[]; panic?: boolean };
  bad.endpoints[0]!.state = "Healthy";
  delete bad.panic;
  const refused = await read(JSON.stringify(bad));
  assert.equal(refused.code, 1);
  const errors = (refused.out.errors as string[]).join("\n");
  assert.match(errors, /endpoints\/0\/state: 'Healthy' is not one of/);
  assert.match(errors, /'panic' is a required property/);
});
