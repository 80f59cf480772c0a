/**
 * The data plane for tests: the test cluster's (scripts/with-sandbox.ts
 * starts the sandbox with --data-plane), or one started for this process
 * next to a private sandbox. Tests get test hosts on it and consumers in its
 * node namespace. Without root or network namespaces a test skips with the
 * reason; under CI=true it fails instead.
 */
import type { TestContext } from "node:test";
import type { ServiceInstanceInput } from "../../src/api/index.ts";
import {
  type Consumer,
  type ConsumerLine,
  type ConsumerOptions,
  type DataPlane,
  dataPlaneUnsupported,
  readDataPlane,
  startDataPlane,
  type TestHost,
  TestHosts,
} from "../../src/dev/testhosts.ts";
import { eventually, testCluster } from "./cluster.ts";

import { FAST } from "./instances.ts";

let shared: Promise<DataPlane> | undefined;

async function plane(): Promise<DataPlane> {
  const { kubeconfigPath } = await testCluster();
  return readDataPlane(kubeconfigPath) ?? (await startDataPlane(kubeconfigPath)).plane;
}

/** Skips the test (outside CI) when this machine cannot run a data plane; true when it can. */
export function canRunDataPlane(t: TestContext): boolean {
  const reason = dataPlaneUnsupported();
  if (!reason) return true;
  if (process.env.CI === "true") throw new Error(`CI=true but ${reason}`);
  t.skip(reason);
  return false;
}

/** Test hosts on the data plane, removed when the test ends; undefined when the test was skipped. */
export async function testHosts(t: TestContext): Promise<TestHosts | undefined> {
  if (!canRunDataPlane(t)) return undefined;
  shared ??= plane();
  const hosts = TestHosts.open(await shared);
  t.after(() => hosts.close());
  return hosts;
}

/**
 * A data plane of its own for the sandbox of `kubeconfigPath` (a private
 * one, e.g. to restart its API server), and test hosts on it; both removed
 * when the test ends. Call canRunDataPlane first.
 */
export async function privateTestHosts(
  t: TestContext,
  kubeconfigPath: string,
  options: { zone?: string } = {},
): Promise<TestHosts> {
  const dp = await startDataPlane(kubeconfigPath, options);
  const hosts = TestHosts.open(dp.plane);
  t.after(async () => {
    await hosts.close();
    await dp.stop();
  });
  return hosts;
}

/** A ServiceInstance spec of service `web` at the host's IPv4 address, HTTP-probed on its first port. */
export function dataPlaneInstance(
  host: TestHost,
  ports: { name: string; port: number }[],
  extra: Partial<ServiceInstanceInput["spec"]> = {},
): ServiceInstanceInput["spec"] {
  return {
    service: "web",
    address: host.ipv4,
    ports,
    healthCheck: {
      probes: [{ type: "http" as const, http: { port: ports[0]!.name, path: "/healthz" } }],
      ...FAST,
    },
    ...extra,
  };
}

/** The probe destination policy of data-plane tests: only this data plane's test hosts. */
export function testHostDestinations(plane: DataPlane) {
  return { allow: [plane.subnet4, plane.subnet6] };
}

export interface Tally {
  /** Connections served, by backend id. */
  byId: Record<string, number>;
  /** `id port address` of every connection served, counted. */
  byTarget: Record<string, number>;
  errors: Record<string, number>;
  served: number;
}

export function tally(lines: readonly ConsumerLine[]): Tally {
  const t: Tally = { byId: {}, byTarget: {}, errors: {}, served: 0 };
  for (const l of lines) {
    if (l.resolved !== undefined) continue;
    if (l.id) {
      t.served++;
      t.byId[l.id] = (t.byId[l.id] ?? 0) + 1;
      const key = `${l.id} ${l.port} ${l.addr}`;
      t.byTarget[key] = (t.byTarget[key] ?? 0) + 1;
    } else if (l.err) {
      t.errors[l.err] = (t.errors[l.err] ?? 0) + 1;
    } else if (l.dnsErr) {
      const key = `lookup ${l.dnsErr}`;
      t.errors[key] = (t.errors[key] ?? 0) + 1;
    }
  }
  return t;
}

/** Runs `count` connections through the name (resolved by CoreDNS) and tallies them. */
export async function consume(hosts: TestHosts, options: ConsumerOptions): Promise<Tally> {
  const lines = await hosts.consumer({ http: true, concurrency: 4, ...options }).done;
  return tally(lines);
}

/**
 * Waits until the last `n` connections of a running consumer all satisfy
 * `ok` (with `n` large enough, a backend still in kube-proxy's rules would
 * have shown up), and returns the index where that run began.
 */
export async function settled(
  consumer: Consumer,
  from: number,
  ok: (l: ConsumerLine) => boolean,
  { n = 60, timeoutMs = 20_000, what = "consumer traffic to settle" } = {},
): Promise<number> {
  return eventually(
    () => {
      const lines = consumer.lines;
      let i = lines.length;
      while (i > from && (lines[i - 1]!.resolved !== undefined || ok(lines[i - 1]!))) i--;
      return lines.length - i >= n ? i : undefined;
    },
    { timeoutMs, what },
  );
}

/** Waits until each of `ids` has served a connection of the consumer (so kube-proxy has programmed it). */
export async function servedBy(
  consumer: Consumer,
  ids: readonly string[],
  timeoutMs = 15_000,
): Promise<void> {
  await eventually(
    () => {
      const seen = new Set(consumer.lines.map((l) => l.id));
      return ids.every((id) => seen.has(id)) ? true : undefined;
    },
    { timeoutMs, what: `connections served by ${ids.join(", ")}` },
  );
}
