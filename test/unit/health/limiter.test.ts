import assert from "node:assert/strict";
import { test } from "node:test";
import { limiter, type Ticket } from "../../../src/health/limiter.ts";

test("bounds probes globally and per host, serving waiters in order", () => {
  const l = limiter(3, 2);
  const ran: string[] = [];
  const tickets = new Map<string, Ticket>();
  const go = (name: string, host: string) =>
    tickets.set(
      name,
      l.acquire(host, () => ran.push(name)),
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
  const l = limiter(1, 1);
  const ran: string[] = [];
  const first = l.acquire("h", () => ran.push("first"));
  const second = l.acquire("h", () => ran.push("second"));
  const third = l.acquire("h", () => ran.push("third"));
  second.release();
  second.release(); // idempotent
  first.release();
  assert.deepEqual(ran, ["first", "third"]);
  third.release();
  assert.equal(l.inFlight, 0);
  assert.equal(l.queued, 0);
});

test("a waiter cancelled while holding a host slot gives it back", () => {
  const l = limiter(1, 2);
  const ran: string[] = [];
  const x = l.acquire("x", () => ran.push("x"));
  const h1 = l.acquire("h", () => ran.push("h1")); // host slot, waits for the global one
  const h2 = l.acquire("h", () => ran.push("h2"));
  const h3 = l.acquire("h", () => ran.push("h3")); // waits for a host slot
  h1.release();
  x.release();
  assert.deepEqual(ran, ["x", "h2"]);
  h2.release();
  assert.deepEqual(ran, ["x", "h2", "h3"]);
  h3.release();
  assert.equal(l.hosts, 0);
});

test("handles long queues", () => {
  const l = limiter(1, 1);
  let count = 0;
  const tickets: Ticket[] = [];
  for (let i = 0; i < 5000; i++) tickets.push(l.acquire("h", () => count++));
  for (const t of tickets) t.release();
  assert.equal(count, 5000);
  assert.equal(l.inFlight, 0);
});
