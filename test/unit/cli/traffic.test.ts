// The demo's traffic panel (src/cli/traffic.ts): per-backend rates over a
// sliding window, what kube-proxy routes to according to the slices, the
// rows that put both side by side, the settled check and the rendering.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { InstanceView } from "../../../src/cli/table.ts";
import {
  FAILED,
  kubeProxyRouting,
  RateMeter,
  renderTraffic,
  type SliceEndpoint,
  type TrafficPanel,
  trafficRows,
  trafficSettled,
} from "../../../src/cli/traffic.ts";

describe("RateMeter", () => {
  test("counts per key per second over the window, and forgets what left it", () => {
    const m = new RateMeter(2000, 0);
    for (let t = 100; t <= 4000; t += 100) m.add(t, "shop-1"); // 10 a second
    for (let t = 3100; t <= 4000; t += 500) m.add(t, "shop-3");
    m.add(1500, FAILED);
    const at4 = m.rates(4000);
    assert.equal(at4.get("shop-1"), 10, "20 in (2000, 4000] over 2 s");
    assert.equal(at4.get("shop-3"), 1);
    assert.equal(at4.has(FAILED), false, "the failure at 1500 left the window");
    assert.deepEqual([...m.rates(6500)], [], "nothing in (4500, 6500]");
  });

  test("before a whole window has passed, divides by the time since the start", () => {
    const m = new RateMeter(2000, 10_000);
    for (let t = 10_050; t <= 10_500; t += 50) m.add(t, "a"); // 10 in 0.5 s
    assert.equal(m.rates(10_500).get("a"), 20);
    assert.equal(m.complete(10_500), false);
    assert.equal(m.complete(12_000), true);
  });

  test("events after `now` are not counted yet", () => {
    const m = new RateMeter(1000, 0);
    m.add(1500, "a");
    m.add(2500, "a");
    assert.equal(m.rates(2000).get("a"), 1);
  });
});

const ep = (address: string, conditions: SliceEndpoint["conditions"], zone?: string): SliceEndpoint => ({
  addresses: [address],
  conditions,
  ...(zone ? { hints: { forZones: [{ name: zone }] } } : {}),
});
const ready = { ready: true, serving: true, terminating: false };
const unready = { ready: false, serving: false, terminating: false };
const draining = { ready: false, serving: true, terminating: true };

describe("kubeProxyRouting (kube-proxy's choice for a Cluster traffic policy)", () => {
  test("ready endpoints only; unready and draining ones say why", () => {
    const r = kubeProxyRouting([ep("a", ready), ep("b", unready), ep("c", draining), ep("d", {})], "zone-a");
    assert.equal(r.get("a"), undefined);
    assert.equal(r.get("b"), "not ready");
    assert.equal(r.get("c"), "draining (serving, terminating)");
    assert.equal(r.get("d"), undefined, "missing conditions read as ready, as kube-proxy does");
  });

  test("zone hints: only the node's zone while it has a ready hinted endpoint", () => {
    const eps = [ep("a", ready, "zone-a"), ep("b", ready, "zone-b"), ep("c", unready, "zone-b")];
    const inB = kubeProxyRouting(eps, "zone-b");
    assert.equal(inB.get("a"), "zone-a: the node's zone zone-b has ready endpoints");
    assert.equal(inB.get("b"), undefined);
    assert.equal(inB.get("c"), "not ready");
    // No ready endpoint hinted for zone-c: hints are ignored.
    const inC = kubeProxyRouting(eps, "zone-c");
    assert.equal(inC.get("a"), undefined);
    assert.equal(inC.get("b"), undefined);
  });

  test("zone hints are ignored unless every ready endpoint has one", () => {
    const r = kubeProxyRouting([ep("a", ready, "zone-a"), ep("b", ready)], "zone-b");
    assert.equal(r.get("a"), undefined);
    assert.equal(r.get("b"), undefined);
  });

  test("no ready endpoint at all: serving and terminating ones get the traffic", () => {
    const r = kubeProxyRouting([ep("a", draining), ep("b", unready)], "zone-a");
    assert.equal(r.get("a"), undefined);
    assert.equal(r.get("b"), "not ready");
  });
});

function instance(name: string, address: string, zone: string): InstanceView {
  return {
    name,
    address,
    zone,
    healthy: true,
    ready: "True",
    reason: "Healthy",
    probe: "ProbeSucceeded",
    weight: 100,
  };
}

describe("trafficRows", () => {
  const instances = [
    instance("shop-1", "198.18.0.10", "zone-a"),
    instance("shop-3", "198.18.0.12", "zone-b"),
    instance("shop-4", "198.18.0.13", "zone-b"),
    instance("shop-5", "198.18.0.14", "zone-b"),
    { ...instance("shop-6", "198.18.0.15", "zone-b"), healthy: false, ready: "False", reason: "Unhealthy" },
  ];
  const routing = new Map<string, string | undefined>([
    ["198.18.0.10", "zone-a: the node's zone zone-b has ready endpoints"],
    ["198.18.0.12", undefined],
    ["198.18.0.13", "not ready"],
    ["198.18.0.14", "not ready"],
  ]);

  test("each instance's rate next to why it gets none, or that kube-proxy lags", () => {
    const rows = trafficRows(
      instances,
      routing,
      new Map([
        ["shop-3", 24],
        ["shop-5", 3.5],
      ]),
    );
    assert.deepEqual(
      rows.map((r) => [r.name, r.rate, r.routed, r.note]),
      [
        ["shop-1", 0, false, "no traffic: zone-a: the node's zone zone-b has ready endpoints"],
        ["shop-3", 24, true, ""],
        ["shop-4", 0, false, "no traffic: not ready"],
        ["shop-5", 3.5, false, "not ready: kube-proxy's rules still route it"],
        ["shop-6", 0, false, "no traffic: not published (Unhealthy)"],
      ],
    );
  });

  test("a routed instance without traffic yet waits for kube-proxy", () => {
    const [row] = trafficRows([instances[1]!], routing, new Map());
    assert.equal(row!.note, "ready: waiting for kube-proxy's rules");
  });
});

function panel(overrides: Partial<TrafficPanel> = {}): TrafficPanel {
  return {
    target: "shop.roster-demo.svc.cluster.local:8080",
    clusterIP: "198.19.0.12",
    node: "rst-42-node",
    nodeZone: "zone-b",
    windowMs: 2000,
    rows: [
      {
        name: "shop-3",
        address: "198.18.0.12",
        zone: "zone-b",
        rate: 24,
        routed: true,
        ready: true,
        note: "",
      },
      {
        name: "shop-4",
        address: "198.18.0.13",
        zone: "zone-b",
        rate: 0,
        routed: false,
        ready: false,
        note: "no traffic: not ready",
      },
    ],
    failed: 0,
    complete: true,
    ...overrides,
  };
}

describe("trafficSettled", () => {
  test("true when traffic matches the routing over a whole window without failures", () => {
    assert.equal(trafficSettled(panel()), true);
  });
  test("false before a whole window, with failures, or when a row disagrees", () => {
    assert.equal(trafficSettled(undefined), false);
    assert.equal(trafficSettled(panel({ complete: false })), false);
    assert.equal(trafficSettled(panel({ failed: 0.5 })), false);
    assert.equal(trafficSettled(panel({ rows: [] })), false);
    const lagging = panel().rows.map((r) => ({ ...r, rate: 3 }));
    assert.equal(trafficSettled(panel({ rows: lagging })), false, "traffic to an unrouted one");
    const waiting = panel().rows.map((r) => ({ ...r, rate: 0 }));
    assert.equal(trafficSettled(panel({ rows: waiting })), false, "no traffic to a routed one");
  });
});

describe("the xDS column", () => {
  const withXds = (xds: number[], column: Partial<TrafficPanel["xds"]> = {}) =>
    panel({
      rows: panel().rows.map((r, i) => ({ ...r, xds: xds[i]! })),
      xds: { target: "xds:///shop.roster-demo", failed: 0, complete: true, ...column },
    });
  test("trafficRows takes each instance's xDS rate by name; ready is Roster's Ready condition", () => {
    const rows = trafficRows(
      [instance("shop-1", "198.18.0.10", "zone-a")],
      new Map([["198.18.0.10", "zone-a: elsewhere"]]),
      new Map(),
      new Map([["shop-1", 7]]),
    );
    assert.deepEqual(
      rows.map((r) => [r.routed, r.ready, r.xds]),
      [[false, true, 7]],
    );
  });
  test("settled only when exactly the Ready instances answered xDS RPCs, over a whole window, none failed", () => {
    assert.equal(trafficSettled(withXds([12, 0])), true);
    assert.equal(trafficSettled(withXds([12, 1])), false, "RPCs to an instance not published Ready");
    assert.equal(trafficSettled(withXds([0, 0])), false, "none to a Ready one");
    assert.equal(trafficSettled(withXds([12, 0], { failed: 1 })), false);
    assert.equal(trafficSettled(withXds([12, 0], { complete: false })), false);
  });
  test("rendered between the connection bars and the note, with its failure line", () => {
    const lines = renderTraffic(withXds([12, 0])).split("\n");
    assert.match(lines[1]!, /^ {2}BACKEND .* CONN\/S {34}XDS RPC\/S {19}NOTE$/);
    assert.match(lines[2]!, /^ {2}shop-3 .* #{30} {7}12\.0 {2}#{15}$/);
    assert.match(lines[3]!, /^ {2}shop-4 .* {30} {8}0\.0 {2} {15} {2}no traffic: not ready$/);
    assert.ok(
      lines.some((l) => l.includes("0.0 xDS RPCs/s failed (grpc-go over xDS: xds:///shop.roster-demo")),
    );
  });
});

describe("renderTraffic", () => {
  test("a header naming target, ClusterIP, node and window; aligned rows with bars; the failure rate", () => {
    const out = renderTraffic(panel());
    const lines = out.split("\n");
    assert.equal(
      lines[0],
      "traffic to shop.roster-demo.svc.cluster.local:8080 (ClusterIP 198.19.0.12)  from rst-42-node (zone-b)  new connections/s over 2 s",
    );
    assert.match(lines[1]!, /^ {2}BACKEND {2}ADDRESS {6}ZONE {4}CONN\/S {34}NOTE$/);
    assert.match(lines[2]!, /^ {2}shop-3 {3}198\.18\.0\.12 {2}zone-b {4}24\.0 {2}#{30}$/);
    assert.match(
      lines[3]!,
      /^ {2}shop-4 {3}198\.18\.0\.13 {2}zone-b {5}0\.0 {2} {30} {2}no traffic: not ready$/,
    );
    assert.match(lines[4]!, /^ {2}failed {3}0\.0 connections\/s refused or timed out$/);
    assert.ok(!out.includes("\x1b["), "no colour unless asked");
  });

  test("bars are relative to the busiest backend; colour on request", () => {
    const rows = [
      { name: "a", address: "x", zone: "z", rate: 10, routed: true, ready: true, note: "" },
      { name: "b", address: "y", zone: "z", rate: 5, routed: true, ready: true, note: "" },
    ];
    const out = renderTraffic(panel({ rows }), { color: true });
    assert.match(out, /a +x +z +10\.0 +#{30}/);
    assert.ok(out.includes(`5.0  ${"#".repeat(15)}\x1b[0m`), "half the bar");
    assert.ok(out.includes("\x1b[32m  a "), "rows with traffic in green");
  });

  test("no ClusterIP yet: the header leaves it out", () => {
    const { clusterIP: _, ...rest } = panel();
    assert.ok(!renderTraffic(rest).includes("ClusterIP"));
  });
});
