import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { allShards, memberShards, rendezvousOwner } from "../../../src/operator/shards.ts";

const keys = Array.from({ length: 30_000 }, (_, i) => `ns-${i % 7}/instance-${i}`);
const shares = (members: string[]) => {
  const counts = new Map(members.map((m) => [m, 0]));
  for (const k of keys) {
    const o = rendezvousOwner(k, members)!;
    counts.set(o, (counts.get(o) ?? 0) + 1);
  }
  return counts;
};

test("one owner per key, the same for any member order", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 8 }),
      fc.string(),
      (members, key) => {
        const owner = rendezvousOwner(key, members);
        assert.ok(owner !== undefined && members.includes(owner));
        assert.equal(rendezvousOwner(key, [...members].reverse()), owner);
      },
    ),
  );
  assert.equal(rendezvousOwner("a/b", []), undefined);
});

test("shares are even: every member within 5% of 1/N (30k keys)", () => {
  for (const n of [2, 3, 5, 10]) {
    const members = Array.from({ length: n }, (_, i) => `roster-7d9f8b6c5-${i}x${i * 7}`);
    for (const [m, c] of shares(members)) {
      const ratio = c / (keys.length / n);
      assert.ok(
        ratio > 0.95 && ratio < 1.05,
        `${n} members: ${m} has ${c} (${ratio.toFixed(3)} of its share)`,
      );
    }
  }
});

test("a member leaving moves only its own keys; one joining takes only keys from others", () => {
  const three = ["replica-a", "replica-b", "replica-c"];
  const two = ["replica-a", "replica-c"];
  let moved = 0;
  for (const k of keys) {
    const before = rendezvousOwner(k, three);
    const after = rendezvousOwner(k, two);
    if (before !== "replica-b") assert.equal(after, before, k);
    else moved++;
  }
  assert.ok(moved > keys.length / 4, `replica-b had ${moved}`);
  const four = [...three, "replica-d"];
  for (const k of keys) {
    const after = rendezvousOwner(k, four);
    if (after !== "replica-d") assert.equal(after, rendezvousOwner(k, three), k);
  }
});

test("memberShards owns nothing before joining, its share after", () => {
  let members: string[] = [];
  const shards = memberShards("replica-b", () => members);
  assert.equal(
    keys.some((k) => shards.owns(k)),
    false,
  );
  members = ["replica-a", "replica-b"];
  const owned = keys.filter((k) => shards.owns(k)).length;
  assert.ok(owned > keys.length * 0.45 && owned < keys.length * 0.55, `owned ${owned}`);
  assert.ok(allShards.owns("any/key"));
});
