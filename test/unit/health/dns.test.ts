import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { test } from "node:test";
import { dnsCache, dnsServerProblem, dnsServersResolver } from "../../../src/health/dns.ts";
import { fakeClock, systemClock } from "../../../src/util/clock.ts";
import { answer, startDnsServer } from "../../support/dns-server.ts";

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

test("DNS server addresses: IPs with optional ports only", () => {
  for (const ok of ["10.0.0.10", "10.0.0.10:53", "fd00::10", "[fd00::10]:5353", "[::1]", "::1"]) {
    assert.equal(dnsServerProblem(ok), undefined, ok);
  }
  for (const bad of [
    "dns.example",
    "10.0.0.300",
    "10.0.0.10:0",
    "10.0.0.10:70000",
    "[10.0.0.1]:53",
    "fd00::10:53:x",
    "",
  ]) {
    assert.ok(dnsServerProblem(bad), bad);
  }
  assert.throws(() => dnsServersResolver([]), /1 to 8 servers/);
  assert.throws(() => dnsServersResolver(["dns.example"]), /invalid DNS server "dns.example"/);
});

// A real DNS server on loopback (UDP): not a mock of the resolver, c-ares does the talking.
test("dnsServersResolver merges A and AAAA answers from the given server", async (t) => {
  const server = await startDnsServer(t, {
    "dual.test": ["127.0.0.5", "2001:db8::7"],
    "v4.test": ["10.0.0.1", "10.0.0.2"],
    "v6.test": ["::1"],
    "empty.test": [],
  });
  const resolve = dnsServersResolver([server.address]);
  assert.deepEqual((await resolve("dual.test")).sort(), ["127.0.0.5", "2001:db8::7"]);
  assert.deepEqual((await resolve("v4.test")).sort(), ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(await resolve("v6.test"), ["::1"]);
  // Answers change as soon as the server's do (no cache in the resolver itself).
  server.records.set("v4.test", ["10.0.0.3"]);
  assert.deepEqual(await resolve("v4.test"), ["10.0.0.3"]);
  assert.ok(server.queries.includes("dual.test A") && server.queries.includes("dual.test AAAA"));
});

test("NXDOMAIN and NODATA are authoritative failures through dnsCache, like getaddrinfo's", async (t) => {
  const server = await startDnsServer(t, { "empty.test": [] });
  const cache = dnsCache({
    resolver: dnsServersResolver([server.address]),
    clock: systemClock,
    refreshMs: 1000,
    negativeTtlMs: 1000,
    timeoutMs: 5000,
  });
  const nx = await cache.resolve("nx.test");
  assert.equal(nx.ok, false);
  assert.equal(!nx.ok && nx.authoritative, true);
  assert.match(
    !nx.ok ? nx.message : "",
    /^resolving nx\.test: no such name \(NXDOMAIN from 127\.0\.0\.1:\d+\)$/,
  );
  const empty = await cache.resolve("empty.test");
  assert.equal(!empty.ok && empty.authoritative, true);
  assert.match(!empty.ok ? empty.message : "", /no A or AAAA records/);
});

test("an unreachable DNS server is a transient failure, not an authoritative one", async () => {
  // A port that was just free: the query is refused (ICMP port unreachable) or times out.
  const socket = createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  const port = socket.address().port;
  await new Promise<void>((r) => socket.close(() => r()));
  const cache = dnsCache({
    resolver: dnsServersResolver([`127.0.0.1:${port}`]),
    clock: systemClock,
    refreshMs: 1000,
    negativeTtlMs: 1000,
    timeoutMs: 5000,
  });
  const r = await cache.resolve("down.test");
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.authoritative, false);
  assert.match(!r.ok ? r.message : "", /127\.0\.0\.1:\d+/);
});

test("the test DNS server answers per RFC 1035: header, echoed question, answers", () => {
  // A query for "a.test" AAAA with RD and an EDNS OPT record (as c-ares sends it).
  const question = Buffer.from([1, 0x61, 4, 0x74, 0x65, 0x73, 0x74, 0, 0, 28, 0, 1]);
  const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
  const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
  const res = answer(Buffer.concat([header, question, opt]), new Map([["a.test", ["10.0.0.1", "fd00::1"]]]))!;
  assert.equal(res.readUInt16BE(0), 0x1234, "same id");
  assert.equal(res.readUInt16BE(2), 0x8500, "QR, AA, RD, NOERROR");
  assert.deepEqual(
    [res.readUInt16BE(4), res.readUInt16BE(6), res.readUInt16BE(8), res.readUInt16BE(10)],
    [1, 1, 0, 0],
  );
  assert.deepEqual(res.subarray(12, 12 + question.length), question);
  const rr = res.subarray(12 + question.length);
  assert.equal(rr.readUInt16BE(0), 0xc00c, "name compressed to the question's");
  assert.equal(rr.readUInt16BE(2), 28);
  assert.equal(rr.readUInt16BE(10), 16);
  assert.deepEqual([...rr.subarray(12)], [0xfd, 0, ...Array(13).fill(0), 1]);
  // Unknown name: NXDOMAIN; other opcodes: NOTIMP; two questions: FORMERR; too short: dropped.
  const nx = answer(Buffer.concat([header, question]), new Map())!;
  assert.equal(nx.readUInt16BE(2) & 0xf, 3);
  const status = Buffer.from(header);
  status.writeUInt16BE(0x1000, 2);
  assert.equal(answer(Buffer.concat([status, question]), new Map())!.readUInt16BE(2) & 0xf, 4);
  const two = Buffer.from(header);
  two.writeUInt16BE(2, 4);
  assert.equal(answer(Buffer.concat([two, question, question]), new Map())!.readUInt16BE(2) & 0xf, 1);
  assert.equal(answer(Buffer.from([1, 2, 3]), new Map()), undefined);
});

// Issue 13: every new redirect name used to stay cached forever (600 names in 30 s for 20 targets).
test("bounded: least recently used names go first beyond maxEntries; expired answers are evicted", async () => {
  const clock = fakeClock(0);
  const asked: string[] = [];
  const cache = dnsCache({
    resolver: async (host) => {
      asked.push(host);
      if (host.startsWith("gone")) throw errno("ENOTFOUND");
      return ["10.0.0.1"];
    },
    clock,
    refreshMs: 30_000,
    negativeTtlMs: 5000,
    timeoutMs: 1000,
    maxEntries: 100,
  });
  // A flood of fresh names: never more than maxEntries, and a name in use stays.
  for (let i = 0; i < 1000; i++) {
    await cache.resolve(`r${i}.example`);
    await cache.resolve("kept.example");
    assert.ok(cache.size <= 100);
  }
  assert.equal(cache.size, 100);
  assert.equal(asked.filter((h) => h === "kept.example").length, 1, "the name in use was never evicted");
  await cache.resolve("r0.example");
  assert.equal(asked.filter((h) => h === "r0.example").length, 2, "an evicted name is looked up again");

  // Answers past their refresh period (failures past their TTL) are dropped by a sweep...
  await cache.resolve("gone.example");
  clock.advance(5000);
  cache.sweep();
  assert.equal(cache.size, 99, "the failure expired (it had pushed out one name)");
  clock.advance(25_000);
  cache.sweep();
  assert.equal(cache.size, 0, "everything expired: nothing is kept for names no longer asked for");

  // ...and by `resolve` itself, once per refresh period, so a cache nobody sweeps stays bounded too.
  for (let i = 0; i < 50; i++) await cache.resolve(`s${i}.example`);
  clock.advance(30_000);
  await cache.resolve("new.example");
  assert.equal(cache.size, 1);
});

test("a lookup in flight is shared even when its entry is evicted, and is not cached afterwards", async () => {
  const clock = fakeClock(0);
  let release: (a: string[]) => void = () => {};
  const cache = dnsCache({
    resolver: (host) =>
      host === "slow.example" ? new Promise<string[]>((r) => (release = r)) : Promise.resolve(["10.0.0.2"]),
    clock,
    refreshMs: 30_000,
    negativeTtlMs: 5000,
    timeoutMs: 1000,
    maxEntries: 1,
  });
  const slow = cache.resolve("slow.example");
  await cache.resolve("other.example"); // evicts slow.example
  release(["10.0.0.3"]);
  assert.deepEqual(await slow, { ok: true, addresses: ["10.0.0.3"] });
  assert.equal(cache.size, 1);
});
