import assert from "node:assert/strict";
import { test } from "node:test";
import { dnsCache } from "../../../src/health/dns.ts";
import { fakeClock } from "../../../src/util/clock.ts";

function errno(code: string): Error {
  return Object.assign(new Error(`getaddrinfo ${code}`), { code });
}

test("caches answers for the refresh period and coalesces concurrent lookups", async () => {
  const clock = fakeClock(0);
  let lookups = 0;
  const cache = dnsCache({
    resolver: async () => {
      lookups++;
      return ["10.0.0.2", "10.0.0.1", "10.0.0.2", "FD00::1"];
    },
    clock,
    refreshMs: 30_000,
    negativeTtlMs: 5000,
    timeoutMs: 1000,
  });
  const [a, b] = await Promise.all([cache.resolve("db.example"), cache.resolve("db.example")]);
  assert.deepEqual(a, { ok: true, addresses: ["10.0.0.1", "10.0.0.2", "fd00::1"] });
  assert.deepEqual(b, a);
  assert.equal(lookups, 1);
  clock.advance(29_000);
  await cache.resolve("db.example");
  assert.equal(lookups, 1);
  clock.advance(1000);
  await cache.resolve("db.example");
  assert.equal(lookups, 2);
  // IP literals need no lookup.
  assert.deepEqual(await cache.resolve("10.1.1.1"), { ok: true, addresses: ["10.1.1.1"] });
  assert.equal(lookups, 2);
});

test("tells a name that does not exist from a transient failure, and remembers failures briefly", async () => {
  const clock = fakeClock(0);
  let lookups = 0;
  const cache = dnsCache({
    resolver: async (host) => {
      lookups++;
      throw errno(host === "gone.example" ? "ENOTFOUND" : "EAI_AGAIN");
    },
    clock,
    refreshMs: 30_000,
    negativeTtlMs: 5000,
    timeoutMs: 1000,
  });
  const gone = await cache.resolve("gone.example");
  assert.equal(gone.ok, false);
  assert.equal(!gone.ok && gone.authoritative, true);
  const flaky = await cache.resolve("flaky.example");
  assert.equal(!flaky.ok && flaky.authoritative, false);
  await cache.resolve("gone.example");
  assert.equal(lookups, 2);
  clock.advance(5000);
  await cache.resolve("gone.example");
  assert.equal(lookups, 3);
});

test("a lookup that hangs fails after the timeout", async () => {
  const clock = fakeClock(0);
  const cache = dnsCache({
    resolver: () => new Promise(() => {}),
    clock,
    refreshMs: 30_000,
    negativeTtlMs: 5000,
    timeoutMs: 1000,
  });
  const pending = cache.resolve("slow.example");
  clock.advance(1000);
  const r = await pending;
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.message : "", /timed out/);
  cache.forget("slow.example");
  assert.equal(cache.size, 0);
});
