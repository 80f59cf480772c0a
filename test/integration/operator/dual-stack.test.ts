// Mixed IPv4/IPv6 instances: one EndpointSlice per address family, and a
// change in one family leaves the other family's slice alone. IPv6 instances
// are published at 2001:db8::N and probed at servers on ::1.
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { httpCheck, INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import { createInstance, publishedDocument, readyAddresses, slicesOf } from "../../support/roster.ts";
import { httpTargetsOn } from "../../support/targets.ts";

test("IPv4 and IPv6 instances are published in one slice per family", async (t) => {
  const ns = await testNamespace(t, "dual");
  const v4 = await httpTargetsOn(t, ["127.0.0.1", "127.0.0.2"]);
  // Both IPv6 instances are probed at one server on ::1: endpoints with
  // different port numbers could not share a slice.
  const [six] = await httpTargetsOn(t, ["::1"]);
  const v6 = [six!, six!];
  await startTestOperator(t, { namespaces: [ns] });
  for (const [i, target] of v4.entries()) {
    await createInstance(ns, `web-v4-${i + 1}`, {
      service: "web",
      address: `192.0.2.${i + 1}`,
      ports: [{ name: "http", port: target.port }],
      healthCheck: httpCheck(target),
    });
  }
  for (const [i, target] of v6.entries()) {
    await createInstance(ns, `web-v6-${i + 1}`, {
      service: "web",
      // Not canonical on purpose: published in RFC 5952 form.
      address: `2001:DB8:0:0::${i + 1}`,
      ports: [{ name: "http", port: target.port }],
      healthCheck: httpCheck(target),
    });
  }
  const all = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"];
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined), {
    timeoutMs: 15_000,
    what: "four ready endpoints, two per family",
  });
  const slices = await slicesOf(ns, "web");
  assert.deepEqual(slices.map((s) => s.addressType).sort(), ["IPv4", "IPv6"]);
  for (const s of slices) {
    const addresses = (s.endpoints ?? []).flatMap((e) => e.addresses).sort();
    assert.deepEqual(addresses, s.addressType === "IPv4" ? all.slice(0, 2) : all.slice(2));
    assert.match(s.metadata?.name ?? "", s.addressType === "IPv4" ? /^web-ipv4-/ : /^web-ipv6-/);
    assert.equal(s.metadata?.labels?.["endpointslice.kubernetes.io/managed-by"], "roster.dev");
  }
  const doc = await publishedDocument(ns, "web-roster");
  assert.deepEqual(
    doc?.endpoints.map((e) => [e.address, e.family]),
    [
      ["192.0.2.1", "IPv4"],
      ["192.0.2.2", "IPv4"],
      ["2001:db8::1", "IPv6"],
      ["2001:db8::2", "IPv6"],
    ],
  );

  // The IPv6 instances fail: the IPv6 slice goes, the IPv4 slice is not rewritten.
  const ipv4Slice = slices.find((s) => s.addressType === "IPv4")!;
  six!.healthy = false;
  await eventually(
    async () => {
      const now = await slicesOf(ns, "web");
      return now.length === 1 ? now : undefined;
    },
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS, what: "the IPv6 slice to go" },
  ).then(([only]) => {
    assert.equal(only?.addressType, "IPv4");
    assert.equal(only?.metadata?.resourceVersion, ipv4Slice.metadata?.resourceVersion);
  });
  assert.deepEqual(await readyAddresses(ns, "web"), all.slice(0, 2));
});
