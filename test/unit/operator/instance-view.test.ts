/** The instance view: what an instance is, as published, for this replica's and other replicas' instances. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { destinationPolicy } from "../../../src/health/policy.ts";
import type { InstanceObject, OperatorContext } from "../../../src/operator/context.ts";
import { instanceView } from "../../../src/operator/instance-view.ts";
import { publicationPolicy } from "../../../src/operator/publication.ts";
import { runtimeStore } from "../../../src/operator/runtime.ts";
import type { InstanceVerdict } from "../../../src/operator/verdicts.ts";
import { instance, NS, T0, verdict } from "./fixtures.ts";

function setup(owned: (key: string) => boolean = () => true) {
  const verdicts = new Map<string, InstanceVerdict>();
  const policy = publicationPolicy(destinationPolicy({ deny: ["198.19.9.0/24"] }), {
    clusterNetworks: ["198.19.0.0/24"],
    allow: {},
  });
  const ctx = {
    shards: { owns: owned },
    verdicts: { get: (k: string) => verdicts.get(k), subscribe: () => () => {} },
    publication: () => policy,
  } as unknown as OperatorContext;
  const runtimes = runtimeStore();
  return { view: instanceView(ctx, runtimes), runtimes, verdicts };
}

const si = (name: string, status?: InstanceObject["status"]) =>
  instance({ address: "web.example" }, { name, status }) as InstanceObject;

test("an owned instance: runtime first, then the fresh verdict, else the recorded one", () => {
  const { view, runtimes, verdicts } = setup();
  const key = `${NS}/a`;
  assert.deepEqual(view.published(si("a")), {
    blocked: true,
    settled: false,
    verdict: "Unknown",
    degraded: false,
    addresses: [],
  });
  assert.equal(view.probed(key), undefined, "not seen by the probe-target controller yet");
  runtimes.set(key, { generation: 1, blocker: { reason: "InvalidSpec", message: "bad" } });
  assert.deepEqual(view.published(si("a")), {
    blocked: true,
    settled: true,
    verdict: "Unknown",
    degraded: false,
    addresses: [],
  });
  assert.equal(view.probed(key)?.verdict, undefined, "a blocked instance has no verdict");

  runtimes.set(key, { generation: 1 });
  const restored = view.published(si("a", { healthy: true }));
  assert.deepEqual(
    [restored.verdict, restored.settled],
    ["Healthy", false],
    "the recorded verdict until probed",
  );
  verdicts.set(
    key,
    verdict("Healthy", {
      addresses: [
        { address: "198.18.0.1", verdict: "Healthy" },
        { address: "198.18.0.2", verdict: "Unhealthy" },
        { address: "198.19.0.5", verdict: "Healthy" }, // cluster network: never published
        { address: "198.19.9.1", verdict: "Unknown" }, // denied destination: listed, never ready
      ],
    }),
  );
  assert.deepEqual(view.published(si("a")), {
    blocked: false,
    settled: true,
    verdict: "Healthy",
    degraded: false,
    addresses: ["198.18.0.1"],
    healthySince: T0,
  });
  assert.deepEqual(view.probed(key)?.addresses, ["198.18.0.1", "198.18.0.2", "198.19.9.1"]);
  assert.deepEqual(
    view.inputs([si("a"), si("b")]).map((i) => [i.name, i.verdict]),
    [["a", "Healthy"]],
    "blocked (unseen) instances are left out",
  );
});

test("a host override publishes the instance address's own resolution at the overall verdict", () => {
  const { view, runtimes, verdicts } = setup();
  const key = `${NS}/a`;
  runtimes.set(key, { generation: 1, hostOverride: "probe.example", resolved: ["198.18.1.1", "198.18.1.2"] });
  verdicts.set(key, verdict("Unhealthy"));
  assert.deepEqual(view.published(si("a")), {
    blocked: false,
    settled: true,
    verdict: "Unhealthy",
    degraded: false,
    addresses: ["198.18.1.1", "198.18.1.2"],
  });
});

test("an instance another replica probes is what that replica recorded", () => {
  const { view } = setup(() => false);
  const healthy = si("a", { healthy: true, addresses: ["198.18.0.9"] });
  assert.deepEqual(view.published(healthy), {
    blocked: false,
    settled: true,
    verdict: "Healthy",
    degraded: false,
    addresses: ["198.18.0.9"],
  });
  const blocked = si("b", {
    conditions: [
      {
        type: "Ready",
        status: "False",
        reason: "SecretNotFound",
        message: "",
        lastTransitionTime: "2030-01-01T00:00:00Z",
      },
    ],
  });
  assert.deepEqual([view.published(blocked).blocked, view.published(blocked).settled], [true, true]);
  assert.deepEqual(view.published(si("c")).settled, false, "nothing recorded yet");
});

test("the runtime store notifies on changes only, and clears silently", () => {
  const runtimes = runtimeStore();
  const heard: string[] = [];
  runtimes.subscribe((k) => heard.push(k));
  runtimes.set("ns/a", { generation: 1 });
  runtimes.set("ns/a", { generation: 1 });
  runtimes.set("ns/a", { generation: 2 });
  runtimes.delete("ns/a");
  runtimes.delete("ns/a");
  runtimes.probing(5);
  runtimes.probing(9);
  assert.equal(runtimes.probingSince(), 5);
  runtimes.set("ns/b", { generation: 1 });
  runtimes.clear();
  assert.deepEqual(heard, ["ns/a", "ns/a", "ns/a", "ns/b"]);
  assert.equal(runtimes.probingSince(), undefined);
  assert.equal(runtimes.get("ns/b"), undefined);
});
