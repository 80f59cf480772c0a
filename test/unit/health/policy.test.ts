import assert from "node:assert/strict";
import { test } from "node:test";
import { destinationPolicy, embeddedIPv4, parseCidr, unmapIPv4 } from "../../../src/health/policy.ts";

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

// Pure decisions (no connection is made): the real metadata addresses are only ever checked here.
test("the cloud metadata addresses outside link-local are denied by default", () => {
  const p = destinationPolicy({ allowLoopback: true });
  for (const ip of ["fd00:ec2::254", "FD00:EC2:0:0:0:0:0:254", "100.100.100.200", "::ffff:100.100.100.200"]) {
    const d = p.check(ip);
    assert.equal(d.allowed, false, ip);
  }
  // Neighbours stay allowed (100.64.0.0/10 is carrier-grade NAT, used by some clusters).
  for (const ip of ["fd00:ec2::253", "100.100.100.201", "100.64.0.1"]) assert.equal(allowed(p, ip), true, ip);
});

test("IPv6 forms that embed an IPv4 address are also judged by their IPv4 address", () => {
  assert.deepEqual(embeddedIPv4("64:ff9b::a9fe:a9fe"), { ipv4: "169.254.169.254", form: "NAT64" });
  assert.deepEqual(embeddedIPv4("64:ff9b::169.254.169.254"), { ipv4: "169.254.169.254", form: "NAT64" });
  assert.deepEqual(embeddedIPv4("2002:a9fe:a9fe::1"), { ipv4: "169.254.169.254", form: "6to4" });
  assert.deepEqual(embeddedIPv4("2002:a9fe:a9fe:1:2:3:4:5"), { ipv4: "169.254.169.254", form: "6to4" });
  assert.deepEqual(embeddedIPv4("::a9fe:a9fe"), { ipv4: "169.254.169.254", form: "IPv4-compatible" });
  assert.deepEqual(embeddedIPv4("::169.254.169.254"), { ipv4: "169.254.169.254", form: "IPv4-compatible" });
  for (const ip of ["::", "::1", "2001:db8::1", "64:ff9b:1::a9fe:a9fe", "fd00::a9fe:a9fe", "10.0.0.1"])
    assert.equal(embeddedIPv4(ip), undefined, ip);

  const p = destinationPolicy();
  const denied = {
    "64:ff9b::a9fe:a9fe": "NAT64 form of 169.254.169.254) is in denied range 169.254.0.0/16",
    "64:ff9b::169.254.169.254": "NAT64 form of 169.254.169.254",
    "64:ff9b::6464:64c8": "NAT64 form of 100.100.100.200) is in denied range 100.100.100.200/32",
    "2002:a9fe:a9fe::": "6to4 form of 169.254.169.254",
    "2002:6464:64c8::1": "6to4 form of 100.100.100.200",
    "::a9fe:a9fe": "IPv4-compatible form of 169.254.169.254",
    "::169.254.169.254": "IPv4-compatible form of 169.254.169.254",
    "64:ff9b::7f00:1": "NAT64 form of 127.0.0.1) is a loopback address",
    "2002:7f00:1::": "6to4 form of 127.0.0.1) is a loopback address",
    "::7f00:1": "IPv4-compatible form of 127.0.0.1) is a loopback address",
  };
  for (const [ip, why] of Object.entries(denied)) {
    const d = p.check(ip);
    assert.ok(!d.allowed && d.message.includes(why), `${ip}: ${JSON.stringify(d)}`);
  }
  // The IPv4-mapped form was already judged as IPv4.
  assert.equal(allowed(p, "::ffff:169.254.169.254"), false);
  // Embeddings of allowed IPv4 addresses stay allowed; a configured deny list applies inside them too.
  for (const ip of ["64:ff9b::a00:1", "2002:a00:1::1", "::a00:1"]) assert.equal(allowed(p, ip), true, ip);
  const custom = destinationPolicy({ deny: ["192.0.2.0/24"] });
  assert.equal(allowed(custom, "64:ff9b::c000:205"), false);
  assert.equal(allowed(custom, "2002:c000:205::"), false);
  // With loopback allowed, the loopback embeddings follow the IPv4 rule.
  assert.equal(allowed(destinationPolicy({ allowLoopback: true }), "64:ff9b::7f00:1"), true);
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
