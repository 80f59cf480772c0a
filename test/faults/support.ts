/**
 * Helpers for the fault suite: a private sandbox that can be crashed and
 * restarted on the same data dir and port, the real operator started against
 * any KubeConfig, and watch/metric helpers; `api(kc)` is test/support/roster.ts's
 * `rosterApi(kc)`, the Roster helpers bound to any cluster.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { CoordinationV1Api, CoreV1Api, KubeConfig, Watch } from "@kubernetes/client-node";
import { installCrds } from "../../src/dev/crds.ts";
import { type Sandbox, type SandboxOptions, startSandbox } from "../../src/dev/sandbox.ts";
import type { DestinationPolicyConfig } from "../../src/health/index.ts";
import { ApiError, kubeClient } from "../../src/kube/client.ts";
import { type ResourceType, resourcePath } from "../../src/kube/object.ts";
import type { OperatorSettings } from "../../src/operator/context.ts";
import type { Operator } from "../../src/operator/operator.ts";
import { type RosterProcess, startRoster } from "../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { webInstance } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import { createInstance, createPolicy, readyAddresses, rosterApi } from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";

export function loadKc(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export interface PrivateCluster {
  readonly kc: KubeConfig;
  readonly kubeconfigPath: string;
  readonly dir: string;
  /** SIGKILLs the control plane (graceful shutdown waits ~20 s for watches to drain). */
  crash(): Promise<void>;
  /** Starts it again on the same data dir (same port, certificates and data). */
  restart(): Promise<void>;
}

/** A private sandbox with Roster's CRDs, removed when the test ends. */
export async function privateCluster(
  t: TestContext,
  options: Omit<SandboxOptions, "dir"> = {},
): Promise<PrivateCluster> {
  const root = mkdtempSync(join(tmpdir(), "roster-fault-"));
  const dir = join(root, "sandbox");
  let sandbox: Sandbox = await startSandbox({ ...options, dir });
  const kc = loadKc(sandbox.kubeconfigPath);
  await installCrds(kc);
  const crash = async () => {
    try {
      process.kill(sandbox.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await sandbox.stop();
  };
  t.after(async () => {
    await crash();
    rmSync(root, { recursive: true, force: true });
  });
  return {
    kc,
    kubeconfigPath: sandbox.kubeconfigPath,
    dir,
    crash,
    async restart() {
      sandbox = await startSandbox({ ...options, dir });
    },
  };
}

export interface OperatorOn {
  namespaces: string[];
  settings?: Partial<OperatorSettings>;
  destinations?: DestinationPolicyConfig;
}

/** The real operator in this process against `kc`, stopped when the test ends. */
export function startOperatorOn(t: TestContext, kc: KubeConfig, options: OperatorOn): Promise<Operator> {
  return startTestOperator(t, { ...options, kubeConfig: kc });
}

/**
 * Roster and published-object helpers bound to one cluster: the shared
 * helpers of test/support/roster.ts (`rosterApi`) under the fault suite's name.
 */
export const api = rosterApi;

/**
 * A KubeConfig for the same server and CA as `admin`, authenticated as the
 * ServiceAccount `namespace/name` with a token from the TokenRequest API:
 * every request made with it is authorized exactly as that account's pods
 * would be.
 */
export async function serviceAccountKubeConfig(
  admin: KubeConfig,
  namespace: string,
  name: string,
  expirationSeconds = 3600,
): Promise<KubeConfig> {
  const token = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds } },
  });
  const cluster = admin.getCurrentCluster();
  if (!cluster || !token.status?.token) throw new Error(`no token for ServiceAccount ${namespace}/${name}`);
  const user = `${namespace}-${name}`;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token: token.status.token }],
    contexts: [{ name: user, cluster: cluster.name, user }],
    currentContext: user,
  });
  return kc;
}

export interface AccessQuery {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
}

/** `kubectl auth can-i` for the identity of `kc`: a SelfSubjectAccessReview. */
export async function canI(kc: KubeConfig, q: AccessQuery): Promise<boolean> {
  const review = await kubeClient(kc).request<{ status?: { allowed?: boolean } }>({
    method: "POST",
    path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: { resourceAttributes: { group: q.group ?? "", ...q } },
    },
  });
  return review.status?.allowed === true;
}

/** Resolves when the request is refused with 403 Forbidden; throws on success or any other error. */
export async function refused(what: string, p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) return;
    throw new Error(`${what}: expected 403 Forbidden, got: ${String(err)}`);
  }
  throw new Error(`${what}: expected 403 Forbidden, but the request succeeded`);
}

export interface ChangeEvent {
  plural: string;
  type: string;
  name: string;
  resourceVersion: string;
}

export interface ChangeLog {
  /** Every ADDED/MODIFIED/DELETED seen since the lists, in order of arrival. */
  readonly events: ChangeEvent[];
  /** Throws if a watch failed or ended before stop (a gap would make "no change" unprovable). */
  stop(): void;
}

/**
 * Lists each resource type in `namespace` and watches it from the list's
 * resourceVersion, recording every change: "nothing changed here" becomes
 * "no event arrived", with no window between the lists and the watches.
 */
export async function watchChanges(
  kc: KubeConfig,
  namespace: string,
  types: readonly ResourceType[],
): Promise<ChangeLog> {
  const client = kubeClient(kc);
  const events: ChangeEvent[] = [];
  const controllers: AbortController[] = [];
  let stopped = false;
  let failure: unknown;
  for (const rt of types) {
    const path = resourcePath(rt, { namespace });
    const list = await client.request<{ metadata: { resourceVersion: string } }>({ method: "GET", path });
    controllers.push(
      await new Watch(kc).watch(
        path,
        { resourceVersion: list.metadata.resourceVersion, allowWatchBookmarks: true },
        (type: string, obj: { metadata?: { name?: string; resourceVersion?: string } }) => {
          if (type === "BOOKMARK") return;
          if (type === "ERROR") {
            failure = new Error(`${rt.plural} watch error: ${JSON.stringify(obj)}`);
            return;
          }
          events.push({
            plural: rt.plural,
            type,
            name: obj.metadata?.name ?? "",
            resourceVersion: obj.metadata?.resourceVersion ?? "",
          });
        },
        (err: unknown) => {
          if (!stopped) failure = err ?? new Error(`${rt.plural} watch ended early`);
        },
      ),
    );
  }
  return {
    events,
    stop() {
      stopped = true;
      for (const c of controllers) c.abort();
      if (failure) throw failure;
    },
  };
}

/** Open file descriptors of this process (Linux). */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Writes a `roster run` config file (YAML lines) into a temporary dir removed when the test ends. */
export function configFile(t: TestContext, lines: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "roster-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "config.yaml");
  writeFileSync(path, [...lines, ""].join("\n"));
  return path;
}

/** `roster run --config <config> -n <namespace>` against `kubeconfig`, as replica `identity` (POD_NAME). */
export function startReplica(
  t: TestContext,
  o: {
    config: string;
    namespace: string;
    kubeconfig: string;
    identity?: string;
    metricsPort?: number;
    args?: string[];
  },
): RosterProcess {
  return startRoster(
    t,
    [
      "run",
      "--config",
      o.config,
      "-n",
      o.namespace,
      "--metrics-port",
      String(o.metricsPort ?? 0),
      "--health-port",
      "0",
      ...(o.args ?? []),
    ],
    { env: { KUBECONFIG: o.kubeconfig, POD_NAME: o.identity } },
  );
}

/** A metric's value summed over all label sets (0 when absent). */
export async function metricSum(operator: Operator, name: string, labels: Record<string, string> = {}) {
  const metric = operator.manager.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

export const LEADER_LEASE_MS = 4000;
export const LEADER_RETRY_MS = 500;

/**
 * Two `roster run` replicas with leader election (4 s lease, 500 ms retry)
 * serving four healthy web instances (published at 192.0.2.1-4, probed on
 * loopback): returns once all four are ready and one replica holds the Lease.
 */
export async function leaderPair(t: TestContext, prefix: string) {
  const { kc, kubeconfigPath } = await testCluster();
  const ns = await testNamespace(t, prefix);
  const config = configFile(t, [
    "logLevel: info",
    `leaderElection: { enabled: true, namespace: ${ns}, leaseName: roster-leader, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms }`,
    "probing: { destinations: { allowLoopback: true } }",
    "publishing: { batchWindow: 10ms, startupHold: 10s }",
  ]);
  const start = (identity: string): RosterProcess =>
    startReplica(t, { config, namespace: ns, kubeconfig: kubeconfigPath, identity });
  const leases = kc.makeApiClient(CoordinationV1Api);
  const holder = async () =>
    (await leases.readNamespacedLease({ namespace: ns, name: "roster-leader" }).catch(() => undefined))?.spec
      ?.holderIdentity;

  const targets = await httpTargets(t, 4);
  await createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of targets.entries())
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  const replicas = { a: start("replica-a"), b: start("replica-b") };
  await Promise.all(Object.values(replicas).map((r) => r.waitForOutput(/"msg":"roster started"/, 30_000)));
  const all = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined), {
    timeoutMs: 20_000,
    what: "four ready endpoints",
  });
  const leader = await eventually(holder, { what: "a leader" });
  return { kc, ns, targets, replicas, all, holder, leader };
}
