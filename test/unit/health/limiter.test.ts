import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { limiter, type Ticket } from "../../../src/health/limiter.ts";

const key = (tenant: string, flow: string, host: string) => ({ tenant, flow, host });

test("bounds probes globally and per host, serving waiters in order", () => {
  const l = limiter({ maxConcurrent: 3, maxPerHost: 2, reserve: 0 });
  const ran: string[] = [];
  const tickets = new Map<string, Ticket>();
  const go = (name: string, host: string) =>
    tickets.set(
      name,
      l.acquire(key("ns", "i", host), () => ran.push(name)),
    );
  go("a1", "a");
  go("a2", "a");
  go("a3", "a"); // per-host limit
  go("b1", "b");
  go("c1", "c"); // global limit
  assert.deepEqual(ran, ["a1", "a2", "b1"]);
  assert.equal(l.inFlight, 3);
  assert.equal(l.queued, 2);
  tickets.get("a1")!.release();
  // The global slot goes to the first waiter for it (c1); a3 now holds a host slot and waits for a global one.
  assert.deepEqual(ran, ["a1", "a2", "b1", "c1"]);
  tickets.get("b1")!.release();
  assert.deepEqual(ran, ["a1", "a2", "b1", "c1", "a3"]);
  assert.equal(l.queued, 0);
  for (const t of tickets.values()) t.release();
  assert.equal(l.inFlight, 0);
  assert.equal(l.hosts, 0);
});

test("a cancelled waiter never runs and frees its place", () => {
  const l = limiter({ maxConcurrent: 1, maxPerHost: 1 });
  const ran: string[] = [];
  const k = key("ns", "i", "h");
  const first = l.acquire(k, () => ran.push("first"));
  const second = l.acquire(k, () => ran.push("second"));
  const third = l.acquire(k, () => ran.push("third"));
  second.release();
  second.release(); // idempotent
  first.release();
  assert.deepEqual(ran, ["first", "third"]);
  third.release();
  assert.equal(l.inFlight, 0);
  assert.equal(l.queued, 0);
});

test("a waiter cancelled while holding a host slot gives it back", () => {
  const l = limiter({ maxConcurrent: 1, maxPerHost: 2 });
  const ran: string[] = [];
  const x = l.acquire(key("ns", "x", "x"), () => ran.push("x"));
  const h1 = l.acquire(key("ns", "h", "h"), () => ran.push("h1")); // host slot, waits for a global one
  const h2 = l.acquire(key("ns", "h", "h"), () => ran.push("h2"));
  const h3 = l.acquire(key("ns", "h", "h"), () => ran.push("h3")); // waits for a host slot
  h1.release();
  x.release();
  assert.deepEqual(ran, ["x", "h2"]);
  h2.release();
  assert.deepEqual(ran, ["x", "h2", "h3"]);
  h3.release();
  assert.equal(l.hosts, 0);
});

test("handles long queues", () => {
  const l = limiter({ maxConcurrent: 1, maxPerHost: 1 });
  let count = 0;
  const tickets: Ticket[] = [];
  for (let i = 0; i < 5000; i++) tickets.push(l.acquire(key("ns", `i${i % 7}`, "h"), () => count++));
  for (const t of tickets) t.release();
  assert.equal(count, 5000);
  assert.equal(l.inFlight, 0);
});

test("free slots go round robin across tenants, then across the tenant's instances", () => {
  const l = limiter({ maxConcurrent: 1, maxPerHost: 100, reserve: 0 });
  const ran: string[] = [];
  let current: Ticket | undefined;
  const go = (tenant: string, flow: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const label = `${tenant}/${flow}`;
      const ticket: Ticket = l.acquire(key(tenant, flow, `${flow}${i}`), () => {
        ran.push(label);
        current = ticket;
      });
    }
  };
  const blocker = l.acquire(key("z", "z", "z"), () => {});
  go("a", "a1", 4); // a hog: one instance with many probes...
  go("a", "a2", 2); // ...and a second instance in the same namespace
  go("b", "b1", 2);
  blocker.release();
  while (current) {
    const t = current;
    current = undefined;
    t.release();
  }
  assert.deepEqual(ran, ["a/a1", "b/b1", "a/a2", "b/b1", "a/a1", "a/a2", "a/a1", "a/a1"]);
  assert.equal(l.inFlight, 0);
  assert.equal(l.queued, 0);
});

test("a hog alone uses all but the reserve; a newcomer then starts at once", () => {
  const l = limiter({ maxConcurrent: 16, maxPerHost: 100, reserve: 4 });
  let hogRunning = 0;
  for (let i = 0; i < 40; i++) l.acquire(key("hog", `i${i % 4}`, `h${i}`), () => hogRunning++);
  assert.equal(hogRunning, 12, "work-conserving up to maxConcurrent - reserve");
  assert.equal(l.held("hog"), 12);
  let victim = 0;
  const tickets: Ticket[] = [];
  for (let i = 0; i < 4; i++) tickets.push(l.acquire(key("victim", "v", `v${i}`), () => victim++));
  assert.equal(victim, 4, "the victim's probes start without waiting for a hung one");
  // A freed victim slot goes back to the victim, never to the hog, while the hog is over its share.
  tickets[0]!.release();
  assert.equal(l.held("hog"), 12);
  l.acquire(key("victim", "v", "v9"), () => victim++);
  assert.equal(victim, 5);
});

const ops = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant("acquire" as const),
      tenant: fc.integer({ min: 0, max: 3 }),
      flow: fc.integer({ min: 0, max: 3 }),
      host: fc.integer({ min: 0, max: 5 }),
    }),
    fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
  ),
  { maxLength: 300 },
);

test("property: limits hold, a tenant never holds more than maxConcurrent - reserve, idle slots only while waiters are over their share", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 8 }),
      ops,
      (max, perHost, reserveWanted, list) => {
        const reserve = Math.min(max - 1, reserveWanted);
        const l = limiter({ maxConcurrent: max, maxPerHost: perHost, reserve });
        interface Entry {
          tenant: string;
          host: string;
          ticket?: Ticket;
          running: boolean;
          done: boolean;
        }
        const entries: Entry[] = [];
        const check = () => {
          const live = entries.filter((e) => e.running && !e.done);
          assert.ok(live.length <= max, "global limit");
          assert.equal(l.inFlight, live.length);
          const perHostCount = new Map<string, number>();
          const perTenant = new Map<string, number>();
          for (const e of live) {
            perHostCount.set(e.host, (perHostCount.get(e.host) ?? 0) + 1);
            perTenant.set(e.tenant, (perTenant.get(e.tenant) ?? 0) + 1);
          }
          for (const n of perHostCount.values()) assert.ok(n <= perHost, "per-host limit");
          for (const [t, n] of perTenant) {
            assert.ok(n <= max - reserve, `tenant ${t} holds ${n} > ${max - reserve}`);
            assert.equal(l.held(t), n);
          }
          const waiting = entries.filter((e) => !e.running && !e.done);
          assert.equal(l.queued, waiting.length);
          // Work-conserving: with waiters whose host has room, at most `reserve` slots stay idle.
          const hostFree = waiting.some((e) => (perHostCount.get(e.host) ?? 0) < perHost);
          if (hostFree)
            assert.ok(live.length >= max - reserve, `${max - live.length} idle slots while waiting`);
        };
        for (const op of list) {
          if (op.kind === "acquire") {
            const e: Entry = { tenant: `t${op.tenant}`, host: `h${op.host}`, running: false, done: false };
            entries.push(e);
            e.ticket = l.acquire(key(e.tenant, `f${op.flow}`, e.host), () => {
              assert.ok(!e.done, "a released waiter never runs");
              e.running = true;
            });
          } else {
            const open = entries.filter((e) => !e.done);
            if (open.length === 0) continue;
            const e = open[op.pick % open.length]!;
            e.done = true;
            e.ticket!.release();
          }
          check();
        }
        for (const e of entries) {
          e.done = true;
          e.ticket!.release();
        }
        assert.equal(l.inFlight, 0);
        assert.equal(l.queued, 0);
        assert.equal(l.hosts, 0);
      },
    ),
    { numRuns: 300 },
  );
});

test("property: with one hung hog, another tenant holding fewer than the reserve always starts at once", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 8, max: 64 }),
      fc.integer({ min: 0, max: 200 }),
      fc.array(fc.oneof(fc.constant("acquire" as const), fc.nat()), { maxLength: 100 }),
      (max, hogProbes, victimOps) => {
        const reserve = Math.floor(max / 8);
        const l = limiter({ maxConcurrent: max, maxPerHost: 1000, reserve });
        // The hog never releases: every probe hangs until its timeout.
        for (let i = 0; i < hogProbes; i++) l.acquire(key("hog", `i${i % 5}`, `h${i}`), () => {});
        const held: Ticket[] = [];
        for (const op of victimOps) {
          if (op === "acquire") {
            if (held.length >= reserve) continue;
            let ran = false;
            held.push(l.acquire(key("victim", `v${held.length % 3}`, "v"), () => (ran = true)));
            assert.ok(ran, `victim holding ${held.length - 1} of a reserve of ${reserve} had to wait`);
          } else if (held.length > 0) {
            held.splice(op % held.length, 1)[0]!.release();
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});
