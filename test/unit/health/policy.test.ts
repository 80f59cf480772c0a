import assert from "node:assert/strict";
import { test } from "node:test";
import { destinationPolicy, parseCidr, unmapIPv4 } from "../../../src/health/policy.ts";

const allowed = (p: ReturnType<typeof destinationPolicy>, ip: string) => p.check(ip).allowed;

test("by default denies link-local (cloud metadata) and loopback, allows the rest", () => {
  const p = destinationPolicy();
  for (const ip of [
    "169.254.169.254",
    "169.254.0.1",
    "fe80::1",
    "fe80::1%eth0",
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "0.0.0.0",
    "::",
  ]) {
    assert.equal(allowed(p, ip), false, ip);
  }
  for (const ip of ["10.0.0.1", "192.168.1.10", "8.8.8.8", "2001:db8::1", "fd00::5"])
    assert.equal(allowed(p, ip), true, ip);
  const d = p.check("169.254.169.254");
  assert.ok(!d.allowed && d.message.includes("169.254.0.0/16"));
});

test("IPv4-mapped IPv6 addresses are judged as IPv4", () => {
  const p = destinationPolicy();
  assert.equal(allowed(p, "::ffff:169.254.169.254"), false);
  assert.equal(allowed(p, "::ffff:a9fe:a9fe"), false);
  assert.equal(allowed(p, "::FFFF:127.0.0.1"), false);
  assert.equal(allowed(p, "::ffff:10.0.0.1"), true);
  assert.equal(unmapIPv4("::ffff:a9fe:a9fe"), "169.254.169.254");
  assert.equal(unmapIPv4("2001:db8::1"), "2001:db8::1");
});

test("loopback only when configured", () => {
  const p = destinationPolicy({ allowLoopback: true });
  assert.equal(allowed(p, "127.0.0.1"), true);
  assert.equal(allowed(p, "::1"), true);
  assert.equal(allowed(p, "169.254.169.254"), false);
});

test("an allow list restricts probes to its ranges; deny wins over allow", () => {
  const p = destinationPolicy({ allow: ["10.0.0.0/8", "2001:db8::/32"], deny: ["10.9.0.0/16"] });
  assert.equal(allowed(p, "10.1.2.3"), true);
  assert.equal(allowed(p, "10.9.1.1"), false);
  assert.equal(allowed(p, "192.168.0.1"), false);
  assert.equal(allowed(p, "2001:db8::7"), true);
  // A configured deny list replaces the defaults.
  assert.equal(allowed(destinationPolicy({ deny: [] }), "169.254.169.254"), true);
});

test("single IPs are /32 or /128; invalid CIDRs are rejected", () => {
  assert.deepEqual(parseCidr("10.0.0.1"), { address: "10.0.0.1", prefix: 32, family: "ipv4" });
  assert.deepEqual(parseCidr("fd00::/8"), { address: "fd00::", prefix: 8, family: "ipv6" });
  for (const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0/8", "example.com/24", "10.0.0.0/x", "10.0.0.0/"]) {
    assert.throws(() => parseCidr(bad), /invalid CIDR/, bad);
  }
  assert.throws(() => destinationPolicy({ deny: ["nope"] }), /invalid CIDR/);
  assert.equal(allowed(destinationPolicy(), "not-an-ip"), false);
});
