/**
 * crds/ is generated from the zod schemas and committed; this test fails when
 * someone changes a schema without running `make crds`, and checks that the
 * generated schemas are structural and complete.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { load } from "js-yaml";
import {
  buildCrds,
  type CustomResourceDefinition,
  crdFileName,
  type OpenApiSchema,
  renderCrd,
} from "../../../src/api/index.ts";
import { crdDir } from "../../../src/dev/crds.ts";

function firstDifference(a: string, b: string): string {
  const x = a.split("\n");
  const y = b.split("\n");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i])
      return `line ${i + 1}:\n  committed: ${x[i] ?? "<end of file>"}\n  generated: ${y[i] ?? "<end of file>"}`;
  }
  return "";
}

/** Calls `visit` on every schema node with its path. */
function walk(node: OpenApiSchema, path: string, visit: (n: OpenApiSchema, path: string) => void): void {
  visit(node, path);
  for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, OpenApiSchema>)) {
    walk(v, `${path}.${k}`, visit);
  }
  if (node.items) walk(node.items as OpenApiSchema, `${path}[]`, visit);
  if (typeof node.additionalProperties === "object")
    walk(node.additionalProperties as OpenApiSchema, `${path}{}`, visit);
}

const crds = buildCrds();
const byKind = (kind: string) => crds.find((c) => c.spec.names.kind === kind) as CustomResourceDefinition;
const schemaOf = (c: CustomResourceDefinition) => c.spec.versions[0]!.schema.openAPIV3Schema;

describe("generated CRDs", () => {
  test("committed crds/ equals freshly generated output (run `make crds` after editing src/api)", () => {
    for (const c of crds) {
      const file = join(crdDir, crdFileName(c));
      assert.ok(existsSync(file), `crds/${crdFileName(c)} is missing: run \`make crds\``);
      const committed = readFileSync(file, "utf8");
      const generated = renderCrd(c);
      assert.ok(
        committed === generated,
        `crds/${crdFileName(c)} is out of date: run \`make crds\`; first difference at ${firstDifference(committed, generated)}`,
      );
    }
    const expected = new Set(crds.map(crdFileName));
    const stale = readdirSync(crdDir).filter((f) => f.startsWith("roster.dev_") && !expected.has(f));
    assert.deepEqual(stale, [], "crds/ holds CRDs that are no longer generated: run `make crds`");
  });

  test("generation is deterministic and the YAML round-trips", () => {
    for (const c of crds) {
      assert.equal(renderCrd(c), renderCrd(buildCrds().find((d) => d.metadata.name === c.metadata.name)!));
      assert.deepEqual(load(renderCrd(c)), JSON.parse(JSON.stringify(c)));
    }
  });

  test("names, short names, category, scope and status subresource", () => {
    const si = byKind("ServiceInstance");
    const dp = byKind("DiscoveryPolicy");
    assert.equal(si.metadata.name, "serviceinstances.roster.dev");
    assert.equal(dp.metadata.name, "discoverypolicies.roster.dev");
    assert.deepEqual(si.spec.names.shortNames, ["si"]);
    assert.deepEqual(dp.spec.names.shortNames, ["dp"]);
    for (const c of crds) {
      assert.deepEqual(c.spec.names.categories, ["roster"]);
      assert.equal(c.spec.scope, "Namespaced");
      assert.equal(c.spec.versions.length, 1);
      assert.deepEqual(c.spec.versions[0]!.subresources, { status: {} });
      assert.equal(c.spec.versions[0]!.name, "v1alpha1");
    }
  });

  test("printer columns", () => {
    const cols = (kind: string) =>
      byKind(kind)
        .spec.versions[0]!.additionalPrinterColumns.filter((c) => !c.priority)
        .map((c) => c.name.toUpperCase());
    for (const name of ["SERVICE", "ADDRESS", "PORTS", "HEALTHY", "AGE"]) {
      assert.ok(cols("ServiceInstance").includes(name), `ServiceInstance lacks ${name}`);
    }
    for (const name of ["SERVICE", "STRATEGY", "HEALTHY", "TOTAL", "PANIC", "AGE"]) {
      assert.ok(cols("DiscoveryPolicy").includes(name), `DiscoveryPolicy lacks ${name}`);
    }
  });

  test("schemas are structural: typed nodes, descriptions everywhere, no JSON Schema leftovers", () => {
    for (const c of crds) {
      walk(schemaOf(c), "", (n, path) => {
        for (const k of [
          "$schema",
          "$ref",
          "oneOf",
          "allOf",
          "not",
          "const",
          "propertyNames",
          "additionalItems",
        ]) {
          assert.equal(n[k], undefined, `${c.spec.names.kind}${path} has ${k}`);
        }
        assert.notEqual(
          n.additionalProperties,
          false,
          `${c.spec.names.kind}${path} has additionalProperties: false`,
        );
        if (n["x-kubernetes-int-or-string"]) {
          assert.deepEqual(n.anyOf, [{ type: "integer" }, { type: "string" }], `${path}: int-or-string form`);
          assert.equal(n.type, undefined);
        } else {
          assert.equal(n.anyOf, undefined, `${c.spec.names.kind}${path} has anyOf`);
          assert.ok(typeof n.type === "string", `${c.spec.names.kind}${path} has no type`);
        }
        for (const [k, v] of Object.entries((n.properties ?? {}) as Record<string, OpenApiSchema>)) {
          if (path === "" && k === "metadata") continue;
          assert.ok(
            typeof v.description === "string" && v.description.length > 0,
            `${path}.${k} has no description`,
          );
        }
        if (n.type === "string" && !n.enum && !n.format && path !== ".apiVersion" && path !== ".kind") {
          assert.ok(
            typeof n.maxLength === "number",
            `${c.spec.names.kind}${path}: strings need maxLength (CEL cost)`,
          );
        }
        if (n.type === "array")
          assert.ok(typeof n.maxItems === "number", `${path}: arrays need maxItems (CEL cost)`);
        if (n.type === "object" && n.additionalProperties) {
          assert.ok(typeof n.maxProperties === "number", `${path}: maps need maxProperties (CEL cost)`);
        }
      });
    }
  });

  test("ports and conditions are list-maps whose keys are required", () => {
    const si = schemaOf(byKind("ServiceInstance")) as {
      properties: Record<string, { properties: Record<string, OpenApiSchema> }>;
    };
    const ports = si.properties.spec!.properties.ports!;
    assert.equal(ports["x-kubernetes-list-type"], "map");
    assert.deepEqual(ports["x-kubernetes-list-map-keys"], ["name"]);
    assert.ok(((ports.items as OpenApiSchema).required as string[]).includes("name"));
    for (const c of crds) {
      const status = (schemaOf(c).properties as Record<string, { properties: Record<string, OpenApiSchema> }>)
        .status!;
      const conditions = status.properties.conditions!;
      assert.equal(conditions["x-kubernetes-list-type"], "map");
      assert.deepEqual(conditions["x-kubernetes-list-map-keys"], ["type"]);
      assert.ok(((conditions.items as OpenApiSchema).required as string[]).includes("type"));
    }
  });

  test("cross-field rules are CEL validations with messages", () => {
    const rules: { rule: string; message: string; fieldPath?: string }[] = [];
    for (const c of crds) {
      walk(schemaOf(c), "", (n) => {
        rules.push(...((n["x-kubernetes-validations"] ?? []) as typeof rules));
      });
    }
    const has = (s: string) => rules.some((r) => r.rule.includes(s));
    assert.ok(has("duration(self.timeout) < duration(self.interval)"), "timeout < interval");
    assert.ok(has("q.name == p.name"), "unique port names");
    assert.ok(has("self.ports.exists(q, q.name == p.http.port)"), "probe port exists");
    assert.ok(has("isIP(self)"), "address is an IP or DNS name");
    assert.ok(has(".sum() <= 4096"), "metadata size");
    for (const r of rules) {
      assert.ok(r.message.length > 0, `rule ${r.rule} has no message`);
      if (r.fieldPath) assert.match(r.fieldPath, /^(\.[A-Za-z][A-Za-z0-9]*)+$/);
    }
  });

  test("defaults sit only on fields the API server may default", () => {
    const si = schemaOf(byKind("ServiceInstance"));
    walk(si, "", (n, path) => {
      // A probe member (http, tcp, ...) must never be defaulted: it is only valid for its own type.
      if (/probes\[\]\.(http|tcp|grpc|heartbeat)$/.test(path)) assert.equal(n.default, undefined, path);
    });
  });
});

describe("what the docs say kubectl shows", () => {
  const repo = join(crdDir, "..");
  const columns = (kind: string) => {
    const all = byKind(kind).spec.versions[0]!.additionalPrinterColumns ?? [];
    const names = (wide: boolean) =>
      all.filter((c) => (c.priority ?? 0) > 0 === wide).map((c) => c.name.toUpperCase());
    return { shown: ["NAME", ...names(false)], wide: names(true) };
  };
  const list = (s: string) => s.split(/,\s*|\s+and\s+/).map((w) => w.trim());
  for (const doc of ["README.md", "docs/api.md"]) {
    for (const [short, kind] of [
      ["si", "ServiceInstance"],
      ["dp", "DiscoveryPolicy"],
    ] as const) {
      test(`${doc}: \`kubectl get ${short}\` lists the ${kind} printer columns`, () => {
        const text = readFileSync(join(repo, doc), "utf8").replace(/\s+/g, " ");
        const m = new RegExp(
          `\`kubectl get ${short}\` shows ([A-Z, /]+); \`-o wide\` adds ([A-Za-z ,]+?)\\.`,
        ).exec(text);
        assert.ok(m, `${doc} says what \`kubectl get ${short}\` shows`);
        assert.deepEqual({ shown: list(m[1]!), wide: list(m[2]!) }, columns(kind));
      });
    }
  }

  test("README's live view has the columns `roster status` prints", () => {
    const readme = readFileSync(join(repo, "README.md"), "utf8");
    const headers = readme.split("\n").filter((l) => /^\s+INSTANCE\s/.test(l));
    assert.ok(headers.length > 0);
    for (const h of headers)
      assert.deepEqual(h.trim().split(/\s+/), [
        "INSTANCE",
        "ADDRESS",
        "HEALTHY",
        "READY",
        "REASON",
        "PROBE",
        "WEIGHT",
        "ZONE",
      ]);
  });
});
