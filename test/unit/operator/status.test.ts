import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServiceInstanceStatus } from "../../../src/api/index.ts";
import { metaTime } from "../../../src/kube/index.ts";
import { instanceHealthy } from "../../../src/operator/instance-view.ts";
import { instanceEvents, instanceStatus, truncate } from "../../../src/operator/status.ts";
import { deepEqual } from "../../../src/util/equal.ts";
import { instance, T0, verdict } from "./fixtures.ts";

type Input = Parameters<typeof instanceStatus>[0];

function status(input: Partial<Input> & Pick<Input, "instance">): ServiceInstanceStatus {
  return instanceStatus({ verdict: undefined, addresses: ["192.0.2.1"], now: T0, ...input });
}

function cond(s: ServiceInstanceStatus, type: string) {
  return s.conditions?.find((c) => c.type === type);
}

/** The status after another reconcile: `previous` stored on the instance. */
function next(previous: ServiceInstanceStatus, input: Partial<Input> = {}, spec = {}) {
  return status({ instance: instance(spec, { status: previous }), ...input });
}

describe("instanceStatus", () => {
  it("a new instance without a verdict awaits its probes", () => {
    const s = status({ instance: instance() });
    assert.equal(s.healthy, undefined);
    assert.equal(s.lastTransitionTime, undefined);
    assert.deepEqual([cond(s, "Healthy")?.status, cond(s, "Healthy")?.reason], ["Unknown", "AwaitingProbe"]);
    assert.deepEqual([cond(s, "Ready")?.status, cond(s, "Ready")?.reason], ["Unknown", "AwaitingProbe"]);
    assert.equal(s.observedGeneration, 1);
    assert.equal(s.portSummary, "8080/TCP");
    assert.deepEqual(s.addresses, ["192.0.2.1"]);
    assert.equal(s.lastProbe, undefined);
  });

  it("a healthy verdict: healthy, Ready, lastProbe from the verdict", () => {
    const s = status({ instance: instance(), verdict: verdict("Healthy", { since: T0 - 1500 }) });
    assert.equal(s.healthy, true);
    // When the verdict changed, not when the status was computed: slow start
    // reads the same time from the verdict before this status is written.
    assert.equal(s.lastTransitionTime, metaTime(T0 - 1500));
    assert.deepEqual(
      [cond(s, "Healthy")?.status, cond(s, "Healthy")?.reason, cond(s, "Healthy")?.message],
      ["True", "ProbeSucceeded", "HTTP 200"],
    );
    assert.deepEqual([cond(s, "Ready")?.status, cond(s, "Ready")?.reason], ["True", "Healthy"]);
    assert.deepEqual(s.lastProbe, {
      time: metaTime(T0 - 1500),
      result: "Success",
      reason: "ProbeSucceeded",
      message: "HTTP 200",
    });
  });

  it("keeps lastTransitionTime unless healthy flips", () => {
    const first = status({ instance: instance(), verdict: verdict("Healthy") });
    const later = next(first, { verdict: verdict("Healthy", { message: "HTTP 204" }), now: T0 + 60_000 });
    assert.equal(later.lastTransitionTime, metaTime(T0));
    assert.equal(cond(later, "Healthy")?.lastTransitionTime, metaTime(T0));
    assert.equal(cond(later, "Healthy")?.message, "HTTP 204");
    const flipped = next(later, {
      verdict: verdict("Unhealthy", { since: T0 + 120_000 }),
      now: T0 + 120_000,
    });
    assert.equal(flipped.healthy, false);
    assert.equal(flipped.lastTransitionTime, metaTime(T0 + 120_000));
    assert.equal(cond(flipped, "Healthy")?.lastTransitionTime, metaTime(T0 + 120_000));
    assert.deepEqual(
      [cond(flipped, "Ready")?.status, cond(flipped, "Ready")?.reason],
      ["False", "Unhealthy"],
    );
    assert.equal(flipped.lastProbe?.result, "Failure");
  });

  it("an unchanged verdict computes the very same status (no write)", () => {
    const first = status({ instance: instance(), verdict: verdict("Healthy") });
    assert.ok(deepEqual(next(first, { verdict: verdict("Healthy"), now: T0 + 30_000 }), first));
  });

  it("after a restart: no verdict yet, the recorded status stands unchanged", () => {
    for (const v of ["Healthy", "Unhealthy"] as const) {
      const recorded = status({ instance: instance(), verdict: verdict(v) });
      const restarted = next(recorded, { verdict: undefined, now: T0 + 3_600_000 });
      assert.ok(deepEqual(restarted, recorded), `${v}: nothing to write before the first verdict`);
      const unknown = next(recorded, { verdict: verdict("Unknown"), now: T0 + 3_600_000 });
      assert.ok(deepEqual(unknown, recorded), `${v}: nor with an Unknown verdict`);
      // The first fresh verdict is the same outcome at a later time: still nothing to write.
      const fresh = next(recorded, { verdict: verdict(v, { since: T0 + 3_601_000 }), now: T0 + 3_601_000 });
      assert.ok(deepEqual(fresh, recorded), `${v}: the same outcome keeps the recorded lastProbe`);
    }
  });

  it("Restored: a recorded healthy without a matching probe-made condition", () => {
    // E.g. written by something else, or a Healthy condition set by a blocker.
    const previous: ServiceInstanceStatus = { healthy: true, lastTransitionTime: metaTime(T0 - 60_000) };
    const s = next(previous, { now: T0 });
    assert.equal(s.healthy, true);
    assert.equal(s.lastTransitionTime, metaTime(T0 - 60_000));
    assert.deepEqual([cond(s, "Healthy")?.status, cond(s, "Healthy")?.reason], ["True", "Restored"]);
    assert.deepEqual([cond(s, "Ready")?.status, cond(s, "Ready")?.reason], ["True", "Healthy"]);

    const blocked = status({ instance: instance(), blocker: { reason: "SecretNotFound", message: "m" } });
    const unblocked = next(blocked, { now: T0 + 1000 });
    assert.equal(unblocked.healthy, false);
    assert.deepEqual(
      [cond(unblocked, "Healthy")?.status, cond(unblocked, "Healthy")?.reason],
      ["False", "Restored"],
    );
  });

  it("a spec change while no verdict is known rewrites the condition for the new generation", () => {
    const recorded = status({ instance: instance(), verdict: verdict("Healthy") });
    const s = status({ instance: instance({}, { generation: 2, status: recorded }), now: T0 + 1000 });
    assert.equal(cond(s, "Healthy")?.reason, "Restored");
    assert.equal(cond(s, "Healthy")?.observedGeneration, 2);
    assert.equal(s.observedGeneration, 2);
  });

  it("drain: Ready False Draining, Healthy untouched", () => {
    const s = status({ instance: instance({ drain: true }), verdict: verdict("Healthy") });
    assert.deepEqual([cond(s, "Ready")?.status, cond(s, "Ready")?.reason], ["False", "Draining"]);
    assert.match(cond(s, "Ready")?.message ?? "", /serving but not ready/);
    assert.equal(cond(s, "Healthy")?.status, "True");
    assert.equal(s.healthy, true);
    const failing = status({ instance: instance({ drain: true }), verdict: verdict("Unhealthy") });
    assert.equal(cond(failing, "Ready")?.reason, "Draining");
    assert.equal(failing.healthy, false);
  });

  it("a blocker: unhealthy, both conditions carry its reason, no lastProbe", () => {
    // The reconciler passes no verdict for a blocked instance (it is not probed).
    const s = status({
      instance: instance(),
      blocker: { reason: "InvalidHealthCheck", message: "probes name different hosts" },
    });
    assert.equal(s.healthy, false);
    for (const type of ["Healthy", "Ready"]) {
      assert.deepEqual(
        [cond(s, type)?.status, cond(s, type)?.reason, cond(s, type)?.message],
        ["False", "InvalidHealthCheck", "probes name different hosts"],
      );
    }
    assert.equal(s.lastProbe, undefined);
  });

  it("a conflict: Conflict True and Ready False; cleared to Conflict False", () => {
    const c = { reason: "Conflict", message: "Service web exists and is not managed by Roster" };
    const s = status({ instance: instance(), verdict: verdict("Healthy"), conflict: c });
    assert.deepEqual([cond(s, "Conflict")?.status, cond(s, "Ready")?.status], ["True", "False"]);
    assert.equal(cond(s, "Ready")?.reason, "Conflict");
    assert.equal(s.healthy, true, "the verdict is still reported");
    const cleared = next(s, { verdict: verdict("Healthy") });
    assert.deepEqual(
      [cond(cleared, "Conflict")?.status, cond(cleared, "Conflict")?.reason],
      ["False", "NoConflict"],
    );
    assert.equal(cond(cleared, "Ready")?.status, "True");
    assert.equal(cond(status({ instance: instance(), verdict: verdict("Healthy") }), "Conflict"), undefined);
  });

  it("DNS names: Resolved True with the addresses, False without", () => {
    const dns = instance({ address: "db.example.com" });
    const s = status({ instance: dns, verdict: verdict("Healthy"), addresses: ["192.0.2.7", "2001:db8::7"] });
    assert.equal(cond(s, "Resolved")?.status, "True");
    assert.equal(cond(s, "Resolved")?.message, "db.example.com resolved to 192.0.2.7, 2001:db8::7");
    const none = status({ instance: dns, addresses: [] });
    assert.deepEqual(
      [cond(none, "Resolved")?.status, cond(none, "Resolved")?.reason],
      ["False", "NotResolved"],
    );
    assert.equal(cond(status({ instance: instance(), verdict: verdict("Healthy") }), "Resolved"), undefined);
  });

  it("addresses EndpointSlices refuse: Ready says they are in the ConfigMap only", () => {
    const local = status({
      instance: instance({ address: "localhost" }),
      verdict: verdict("Healthy"),
      addresses: ["127.0.0.1"],
    });
    assert.deepEqual(
      [cond(local, "Ready")?.status, cond(local, "Ready")?.reason],
      ["True", "NotInEndpointSlices"],
    );
    assert.match(cond(local, "Ready")?.message ?? "", /in the ConfigMap only: 127\.0\.0\.1 \(loopback/);
    const mixed = status({
      instance: instance({ address: "host.example" }),
      verdict: verdict("Healthy"),
      addresses: ["192.0.2.1", "::1"],
    });
    assert.equal(cond(mixed, "Ready")?.reason, "NotInEndpointSlices");
    assert.doesNotMatch(cond(mixed, "Ready")?.message ?? "", /ConfigMap only/);
    assert.match(cond(mixed, "Ready")?.message ?? "", /::1 \(loopback/);
  });

  it("a stale ConfigMap (over budget): Ready never claims the ConfigMap; True only when in the EndpointSlices", () => {
    const stale = { configMap: "web-roster", reason: "OverBudget", endpointSlices: true };
    const sliced = status({
      instance: instance(),
      verdict: verdict("Healthy"),
      addresses: ["192.0.2.1"],
      configMapStale: stale,
    });
    const ready = cond(sliced, "Ready");
    assert.deepEqual([ready?.status, ready?.reason], ["True", "ConfigMapStale"]);
    assert.match(
      ready?.message ?? "",
      /EndpointSlices only; ConfigMap web-roster is published stale \(OverBudget\)/,
    );
    const noSlices = status({
      instance: instance(),
      verdict: verdict("Healthy"),
      addresses: ["192.0.2.1"],
      configMapStale: { ...stale, endpointSlices: false },
    });
    assert.deepEqual(
      [cond(noSlices, "Ready")?.status, cond(noSlices, "Ready")?.reason],
      ["False", "ConfigMapStale"],
    );
    assert.match(cond(noSlices, "Ready")?.message ?? "", /^not published: .*publish.endpointSlices is off/);
    const local = status({
      instance: instance({ address: "127.0.0.1" }),
      verdict: verdict("Healthy"),
      addresses: ["127.0.0.1"],
      configMapStale: stale,
    });
    assert.equal(cond(local, "Ready")?.status, "False");
    // Drained and unhealthy instances keep their reasons (they claim no readiness).
    const drained = status({
      instance: instance({ drain: true }),
      verdict: verdict("Healthy"),
      addresses: ["192.0.2.1"],
      configMapStale: stale,
    });
    assert.equal(cond(drained, "Ready")?.reason, "Draining");
  });

  it("bounds messages and keeps only CamelCase reasons in lastProbe", () => {
    const long = "x".repeat(5000);
    const s = status({
      instance: instance(),
      verdict: verdict("Unhealthy", { reason: "tls: bad certificate", message: long }),
    });
    assert.equal(cond(s, "Healthy")?.message.length, 1024);
    assert.equal(s.lastProbe?.message?.length, 1024);
    assert.equal(s.lastProbe?.reason, undefined);
    assert.equal(truncate("abc", 2), "a…");
    assert.equal(truncate("ab", 2), "ab");
  });

  it("instanceHealthy: the verdict, else the recorded value", () => {
    assert.equal(instanceHealthy({ healthy: true }, verdict("Unhealthy")), false);
    assert.equal(instanceHealthy({ healthy: false }, verdict("Healthy")), true);
    assert.equal(instanceHealthy({ healthy: false }, verdict("Unknown")), false);
    assert.equal(instanceHealthy(undefined, undefined), undefined);
  });
});

describe("instanceEvents", () => {
  /** Feeds verdicts through instanceStatus as the status writer does; returns the events of each write. */
  function run(verdicts: (ReturnType<typeof verdict> | undefined)[]) {
    let status: ServiceInstanceStatus | undefined;
    return verdicts.map((v, i) => {
      const next = instanceStatus({
        instance: instance({}, { status }),
        verdict: v,
        addresses: [],
        now: T0 + i,
      });
      const events = instanceEvents(status, next).map((e) => `${e.type} ${e.reason}: ${e.note}`);
      status = next;
      return events;
    });
  }

  it("records the first verdict, healthy or not, and every change of healthy", () => {
    assert.deepEqual(run([undefined, verdict("Unhealthy"), verdict("Unhealthy"), verdict("Healthy")]), [
      [],
      ["Warning BecameUnhealthy: first verdict: HttpStatus: HTTP 503"],
      [],
      ["Normal BecameHealthy: ProbeSucceeded: HTTP 200"],
    ]);
    assert.deepEqual(run([verdict("Healthy")]), [
      ["Normal BecameHealthy: first verdict: ProbeSucceeded: HTTP 200"],
    ]);
  });

  it("records flap damping when it starts, also when it does not change healthy, and when it ends", () => {
    const flapping = verdict("Unhealthy", {
      reason: "Flapping",
      message: "verdict changed more than 4 times",
    });
    assert.deepEqual(
      run([verdict("Unhealthy"), flapping, flapping, verdict("Unhealthy"), flapping, verdict("Healthy")]),
      [
        ["Warning BecameUnhealthy: first verdict: HttpStatus: HTTP 503"],
        ["Warning FlapDamping: verdict changed more than 4 times"],
        [],
        ["Normal FlapDampingEnded: stable again; unhealthy: HttpStatus: HTTP 503"],
        ["Warning FlapDamping: verdict changed more than 4 times"],
        [
          "Normal BecameHealthy: ProbeSucceeded: HTTP 200",
          "Normal FlapDampingEnded: stable again; healthy: ProbeSucceeded: HTTP 200",
        ],
      ],
    );
  });

  it("records Degraded when it starts or its cause changes, DegradedEnded on recovery to full health only", () => {
    const warn = verdict("Healthy", {
      degraded: { reason: "WarningHeader", message: 'HTTP 200; Warning: 199 - "overloaded"' },
    });
    const slow = verdict("Healthy", { degraded: { reason: "SlowResponse", message: "took 600ms" } });
    assert.deepEqual(
      run([verdict("Healthy"), warn, warn, slow, verdict("Healthy"), warn, verdict("Unhealthy")]),
      [
        ["Normal BecameHealthy: first verdict: ProbeSucceeded: HTTP 200"],
        ['Warning Degraded: WarningHeader: HTTP 200; Warning: 199 - "overloaded"'],
        [],
        ["Warning Degraded: SlowResponse: took 600ms"],
        ["Normal DegradedEnded: published at full weight again (was SlowResponse: took 600ms)"],
        ['Warning Degraded: WarningHeader: HTTP 200; Warning: 199 - "overloaded"'],
        ["Warning BecameUnhealthy: HttpStatus: HTTP 503"],
      ],
    );
  });

  it("a restart of a degraded instance (recorded Degraded stands) records nothing", () => {
    const warn = verdict("Healthy", {
      degraded: { reason: "WarningHeader", message: "HTTP 200; Warning: 199" },
    });
    const first = instanceStatus({ instance: instance(), verdict: warn, addresses: [], now: T0 });
    const restarted = instanceStatus({
      instance: instance({}, { status: first }),
      verdict: undefined,
      addresses: [],
      now: T0 + 1,
    });
    assert.deepEqual(instanceEvents(first, restarted), []);
  });

  it("an operator restart (no fresh verdict, the recorded one stands) records nothing", () => {
    const first = instanceStatus({
      instance: instance(),
      verdict: verdict("Healthy"),
      addresses: [],
      now: T0,
    });
    const restarted = instanceStatus({
      instance: instance({}, { status: first }),
      verdict: undefined,
      addresses: [],
      now: T0 + 1,
    });
    assert.deepEqual(instanceEvents(first, restarted), []);
  });
});
