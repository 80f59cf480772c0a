import assert from "node:assert/strict";
import { test } from "node:test";
import { diffEndpoints, hostPort, toRosterEndpoints } from "../../../src/client/endpoint.ts";
import { requestHashKey } from "../../../src/client/hash-key.ts";
import { endpoint } from "./fixtures.ts";

test("requestHashKey reads the key where the published policy says", () => {
  const req = {
    headers: { "x-user": "alice", cookie: "a=1; session=s-42; b=2", multi: ["p", "q"] },
    url: "/cart?user=bob&x=1",
    socket: { remoteAddress: "10.1.2.3" },
  };
  assert.equal(requestHashKey({ source: "Header", name: "X-User" }, req), "alice");
  assert.equal(requestHashKey({ source: "Header", name: "multi" }, req), "p,q");
  assert.equal(requestHashKey({ source: "Header", name: "missing" }, req), undefined);
  assert.equal(requestHashKey({ source: "Cookie", name: "session" }, req), "s-42");
  assert.equal(requestHashKey({ source: "Cookie", name: "nope" }, req), undefined);
  assert.equal(requestHashKey({ source: "QueryParameter", name: "user" }, req), "bob");
  assert.equal(requestHashKey({ source: "QueryParameter", name: "user" }, { url: "/cart" }), undefined);
  assert.equal(requestHashKey({ source: "SourceIP" }, req), "10.1.2.3");
  assert.equal(requestHashKey({ source: "SourceIP" }, { ...req, remoteAddress: "192.0.2.9" }), "192.0.2.9");
  assert.equal(requestHashKey({ source: "Caller" }, req), undefined);
});

function doc(endpoints: ReturnType<typeof endpoint>[]) {
  return toRosterEndpoints({
    formatVersion: 1,
    revision: 1,
    namespace: "ns",
    service: "web",
    panic: false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false },
    endpoints,
  });
}

test("published endpoints become frozen RosterEndpoints sorted by id", () => {
  const eps = doc([
    endpoint({ instance: "b", address: "10.0.0.2" }),
    { ...endpoint({ instance: "a", address: "fd00::1" }), family: "IPv6" },
  ]);
  assert.deepEqual(
    eps.map((e) => e.id),
    ["a/fd00::1", "b/10.0.0.2"],
  );
  assert.equal(eps[0]!.namespace, "ns");
  assert.equal(eps[0]!.service, "web");
  assert.ok(Object.isFrozen(eps[0]) && Object.isFrozen(eps[0]!.ports));
  assert.equal(hostPort(eps[0]!), "[fd00::1]:8080");
  assert.equal(hostPort(eps[1]!, "http"), "10.0.0.2:8080");
  assert.throws(() => hostPort(eps[1]!, "grpc"), RangeError);
});

test("diffEndpoints tells added, removed, changed and health-changed endpoints apart", () => {
  const before = doc([
    endpoint({ instance: "a", address: "10.0.0.1" }),
    endpoint({ instance: "b", address: "10.0.0.2" }),
    endpoint({ instance: "c", address: "10.0.0.3" }),
  ]);
  const after = doc([
    endpoint({ instance: "a", address: "10.0.0.1", weight: 5 }),
    endpoint({ instance: "b", address: "10.0.0.2", state: "Unhealthy" }),
    endpoint({ instance: "d", address: "10.0.0.4" }),
  ]);
  const d = diffEndpoints(before, after);
  assert.deepEqual(
    d.added.map((e) => e.instance),
    ["d"],
  );
  assert.deepEqual(
    d.removed.map((e) => e.instance),
    ["c"],
  );
  assert.deepEqual(
    d.changed.map(([, e]) => e.instance),
    ["a", "b"],
  );
  assert.deepEqual(
    d.healthChanged.map(([prev, e]) => `${e.instance}:${prev.state}->${e.state}`),
    ["b:Ready->Unhealthy"],
  );
  assert.deepEqual(diffEndpoints(after, after), { added: [], removed: [], changed: [], healthChanged: [] });
});
