/** verdictChangeTime: the start of push latency is the verdict that changed the document. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  PUBLISHED_FORMAT_VERSION,
  type PublishedEndpoint,
  type PublishedEndpoints,
} from "../../../src/api/published.ts";
import { verdictChangeTime } from "../../../src/xds/source.ts";

function ep(instance: string, healthy: boolean, weight = 100): PublishedEndpoint {
  return {
    instance,
    address: `198.18.0.${instance.length}`,
    family: "IPv4",
    ports: [{ name: "grpc", port: 9000, protocol: "TCP" }],
    weight,
    tags: [],
    metadata: {},
    state: healthy ? "Ready" : "Unhealthy",
    ready: healthy,
    healthy,
  };
}

function doc(endpoints: PublishedEndpoint[]): PublishedEndpoints {
  return {
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision: 1,
    namespace: "shop",
    service: "web",
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints,
  };
}

const times: Record<string, number> = { a: 1000, bb: 2000, ccc: 3000 };
const since = (ns: string, name: string) => (ns === "shop" ? times[name] : undefined);

test("the latest verdict time among the endpoints whose verdict flipped", () => {
  const before = doc([ep("a", true), ep("bb", true), ep("ccc", true)]);
  const after = doc([ep("a", false), ep("bb", false), ep("ccc", true)]);
  assert.equal(verdictChangeTime(before, after, since, 5000), 2000);
});

test("changes that flip no verdict are not timed", () => {
  const before = doc([ep("a", true), ep("bb", true)]);
  assert.equal(verdictChangeTime(before, doc([ep("a", true, 50), ep("bb", true)]), since, 5000), undefined);
  // A new instance is no verdict change of a published endpoint.
  assert.equal(
    verdictChangeTime(before, doc([ep("a", true), ep("bb", true), ep("ccc", false)]), since, 5000),
    undefined,
  );
  // The first document has nothing to compare with.
  assert.equal(verdictChangeTime(undefined, before, since, 5000), undefined);
});

test("unknown or future verdict times are ignored", () => {
  const before = doc([ep("a", true), ep("x", true)]);
  assert.equal(verdictChangeTime(before, doc([ep("a", true), ep("x", false)]), since, 5000), undefined);
  assert.equal(verdictChangeTime(before, doc([ep("a", false), ep("x", true)]), since, 500), undefined);
});
