/**
 * The zod schemas reject every manifest of the invalid corpus with an error
 * that names the offending field, and accept every example: the same
 * expectations the admission test checks against the real API server.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatFieldErrors, validateRosterObject } from "../../../src/api/index.ts";
import { examples, invalidCorpus, pathNames } from "../../fixtures/invalid/corpus.ts";

describe("invalid corpus", () => {
  const corpus = invalidCorpus();

  test("has at least 25 manifests of both kinds", () => {
    assert.ok(corpus.length >= 25, `only ${corpus.length} manifests`);
    const kinds = new Set(corpus.map((c) => c.manifest.kind));
    assert.deepEqual([...kinds].sort(), ["DiscoveryPolicy", "ServiceInstance"]);
  });

  for (const c of corpus) {
    test(`${c.file} is rejected at ${c.field}`, () => {
      const r = validateRosterObject(c.manifest);
      assert.equal(r.ok, false, `accepted, but ${c.why}`);
      if (r.ok) return;
      assert.ok(
        r.errors.some((e) => pathNames(e.path, c.field)),
        `no error names ${c.field}; got:\n${formatFieldErrors(r.errors)}`,
      );
      for (const e of r.errors) assert.ok(e.message.length > 0, `empty message at ${e.path}`);
    });
  }
});

describe("examples", () => {
  const all = examples();

  test("cover both kinds and every probe type", () => {
    assert.ok(all.length >= 6);
    const kinds = new Set(all.map((e) => e.manifest.kind));
    assert.deepEqual([...kinds].sort(), ["DiscoveryPolicy", "ServiceInstance"]);
    const text = JSON.stringify(all.map((e) => e.manifest));
    for (const t of ["http", "grpc", "heartbeat", "tcp"])
      assert.ok(text.includes(`"type":"${t}"`), `no ${t} probe`);
    assert.ok(text.includes('"drain":true'), "no drained instance");
  });

  for (const e of all) {
    const name = (e.manifest.metadata as { name: string }).name;
    test(`${e.file}: ${e.manifest.kind} ${name} is valid`, () => {
      const r = validateRosterObject(e.manifest);
      assert.ok(r.ok, r.ok ? "" : formatFieldErrors(r.errors));
    });
  }
});
