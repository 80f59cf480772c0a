import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configMapClaim, configMapIndex } from "../../../src/operator/claims.ts";
import { policy } from "./fixtures.ts";

const named = (name: string, service: string, created: string, cm?: { name?: string; enabled?: boolean }) => {
  const p = policy(name, { service, publish: { configMap: cm ?? {} } }, created);
  p.metadata.uid = `uid-${name}`;
  return p;
};

describe("configMapClaim", () => {
  const old = named("old", "a", "2030-01-01T00:00:00Z", { name: "shared" });
  const young = named("young", "b", "2030-01-02T00:00:00Z", { name: "shared" });
  const all = () => true;

  it("the oldest policy naming the ConfigMap keeps it; the other loses", () => {
    assert.equal(configMapClaim(old, [old, young], all)?.lost, false);
    const lost = configMapClaim(young, [old, young], all);
    assert.equal(lost?.lost, true);
    assert.equal(lost?.winner.metadata.name, "old");
    assert.match(lost?.message ?? "", /ConfigMap shared is published by DiscoveryPolicy old/);
  });

  it("same creation time: by name", () => {
    const b = named("b", "b", "2030-01-01T00:00:00Z", { name: "shared" });
    const a = named("a", "a", "2030-01-01T00:00:00Z", { name: "shared" });
    assert.equal(configMapClaim(b, [a, b], all)?.lost, true);
  });

  it("a rival that governs nothing (duplicate or invalid policy) claims nothing; alone, no claim", () => {
    assert.equal(
      configMapClaim(young, [old, young], (p) => p !== old),
      undefined,
    );
    assert.equal(configMapClaim(young, [young], all), undefined);
  });

  it("the index: the named or default ConfigMap, nothing when disabled", () => {
    assert.deepEqual(configMapIndex(old), ["shop/shared"]);
    assert.deepEqual(configMapIndex(named("d", "svc", "2030-01-01T00:00:00Z")), ["shop/svc-roster"]);
    assert.deepEqual(configMapIndex(named("x", "svc", "2030-01-01T00:00:00Z", { enabled: false })), []);
  });
});
