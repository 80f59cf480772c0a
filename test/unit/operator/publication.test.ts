import assert from "node:assert/strict";
import { test } from "node:test";
import { destinationPolicy } from "../../../src/health/policy.ts";
import { publicationPolicy } from "../../../src/operator/publication.ts";

test("publication policy: destination policy first, then the cluster networks unless allowed per namespace", () => {
  const p = publicationPolicy(destinationPolicy({ deny: ["169.254.0.0/16", "192.0.2.66/32"] }), {
    clusterNetworks: ["10.0.0.0/16", "fd00:10::/64"],
    allow: { trusted: ["10.0.5.0/24"], empty: [] },
  });
  assert.deepEqual(p.check("a", "192.0.2.1"), { allowed: true });
  const denied = p.check("trusted", "192.0.2.66");
  assert.equal(denied.allowed, false);
  assert.equal(denied.rule, "destination");
  assert.equal(p.check("a", "127.0.0.1").rule, "destination", "loopback stays the destination policy's call");
  const pod = p.check("a", "10.0.5.7");
  assert.equal(pod.rule, "cluster");
  assert.match(pod.allowed ? "" : pod.message, /inside the cluster network \(10\.0\.0\.0\/16\)/);
  assert.equal(p.check("trusted", "10.0.5.7").allowed, true);
  assert.equal(p.check("trusted", "10.0.6.7").allowed, false, "only the allowed range");
  assert.equal(p.check("empty", "10.0.5.7").allowed, false, "an empty allow list allows nothing");
  assert.equal(p.check("a", "fd00:10::5").allowed, false);
});
