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
import { PUBLISHED_PART_DATA_KEY } from "../../../src/api/published-parts.ts";
import { planPartedConfigMaps } from "../../../src/publish/index.ts";
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

async function read(
  docText: string,
  partTexts: readonly string[] = [],
): Promise<{ code: number; out: Record<string, unknown> }> {
  const dir = mkdtempSync(join(tmpdir(), "roster-py-"));
  try {
    const file = join(dir, PUBLISHED_DATA_KEY);
    writeFileSync(file, docText);
    const parts = partTexts.map((text, i) => {
      const path = join(dir, `part-${i}.json`);
      writeFileSync(path, text);
      return path;
    });
    const r = await run(PYTHON, [reader, schema, file, ...parts]).then(
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

test("the Python reader assembles a split document (format 2) and refuses a torn set", async (t) => {
  if (!(await hasJsonschema())) {
    if (process.env.CI === "true")
      assert.fail(`${PYTHON} with jsonschema is required in CI (python3-jsonschema)`);
    t.skip(`${PYTHON} has no jsonschema module (apt-get install python3-jsonschema)`);
    return;
  }
  const endpoints = (n: number, sick: number) =>
    Array.from({ length: n }, (_, i) => ({
      instance: `web-${String(i).padStart(3, "0")}`,
      address: `198.18.1.${i + 1}`,
      family: "IPv4" as const,
      ports: [{ name: "http", port: 8080, protocol: "TCP" as const }],
      weight: 100,
      tags: [],
      metadata: { note: "x".repeat(40) },
      state: i === sick ? ("Unhealthy" as const) : ("Ready" as const),
      ready: i !== sick,
      healthy: i !== sick,
    }));
  const plan = (n: number, sick: number, previous?: ReturnType<typeof planPartedConfigMaps>) =>
    planPartedConfigMaps(
      {
        namespace: "shop",
        name: "web-roster",
        content: {
          formatVersion: 1,
          namespace: "shop",
          service: "web",
          panic: false,
          loadBalancing: { strategy: "RoundRobin", zoneAware: false },
          endpoints: endpoints(n, sick),
        },
        previous: previous?.head,
        previousParts: previous?.parts ?? [],
        maxParts: 64,
      },
      2_000,
    )!;
  const one = plan(30, 3);
  const two = plan(30, 4, one);
  const text = (cm: { data?: Record<string, string> }, key: string) => cm.data![key]!;
  const partTexts = (p: typeof one) => p.parts.map((cm) => text(cm, PUBLISHED_PART_DATA_KEY));
  assert.ok(one.parts.length >= 2);
  const whole = await read(text(two.head, PUBLISHED_DATA_KEY), [...partTexts(two)].reverse());
  assert.equal(whole.code, 0, JSON.stringify(whole.out));
  assert.deepEqual(whole.out, {
    valid: true,
    revision: 2,
    strategy: "RoundRobin",
    ready: endpoints(30, 4)
      .filter((e) => e.ready)
      .map((e) => `${e.instance}/${e.address}:8080`),
  });
  // Head 2 with part 0 of revision 1: torn, never read.
  const torn = await read(text(two.head, PUBLISHED_DATA_KEY), [
    partTexts(one)[0]!,
    ...partTexts(two).slice(1),
  ]);
  assert.equal(torn.code, 3, JSON.stringify(torn.out));
  assert.equal(torn.out.valid, true);
  assert.match(String(torn.out.torn), /web-roster-part-0/);
});
