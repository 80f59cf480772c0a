/**
 * Helpers for the fault suite: a private sandbox that can be crashed and
 * restarted on the same data dir and port, the real operator started against
 * any KubeConfig, and small API helpers that take the KubeConfig explicitly
 * (test/support/roster.ts always talks to the shared test cluster).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1EndpointSlice,
  Watch,
} from "@kubernetes/client-node";
import type {
  DiscoveryPolicy,
  DiscoveryPolicyInput,
  ServiceInstance,
  ServiceInstanceInput,
} from "../../src/api/index.ts";
import { installCrds } from "../../src/dev/crds.ts";
import { type Sandbox, type SandboxOptions, startSandbox } from "../../src/dev/sandbox.ts";
import type { DestinationPolicyConfig } from "../../src/health/index.ts";
import type { OperatorSettings } from "../../src/operator/context.ts";
import type { Operator } from "../../src/operator/operator.ts";
import { startTestOperator } from "../support/operator.ts";
import { readyIn } from "../support/roster.ts";

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

const group = "roster.dev";
const version = "v1alpha1";

/** Roster and published-object helpers bound to one cluster. */
export function api(kc: KubeConfig) {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const slicesOf = async (namespace: string, service: string): Promise<V1EndpointSlice[]> =>
    (
      await discovery.listNamespacedEndpointSlice({
        namespace,
        labelSelector: `kubernetes.io/service-name=${service}`,
      })
    ).items;
  return {
    custom,
    core,
    discovery,
    async createNamespace(name: string): Promise<void> {
      await core.createNamespace({ body: { metadata: { name } } });
    },
    createInstance(namespace: string, name: string, spec: ServiceInstanceInput["spec"]) {
      return custom.createNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "serviceinstances",
        body: { apiVersion: `${group}/${version}`, kind: "ServiceInstance", metadata: { name }, spec },
      });
    },
    createPolicy(namespace: string, name: string, spec: DiscoveryPolicyInput["spec"]) {
      return custom.createNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "discoverypolicies",
        body: { apiVersion: `${group}/${version}`, kind: "DiscoveryPolicy", metadata: { name }, spec },
      });
    },
    patchInstanceSpec(namespace: string, name: string, spec: Partial<ServiceInstanceInput["spec"]>) {
      return custom.patchNamespacedCustomObject(
        { group, version, namespace, plural: "serviceinstances", name, body: { spec } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    },
    deleteInstance(namespace: string, name: string) {
      return custom.deleteNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "serviceinstances",
        name,
      });
    },
    async getInstance(namespace: string, name: string): Promise<ServiceInstance> {
      return (await custom.getNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "serviceinstances",
        name,
      })) as ServiceInstance;
    },
    async listInstances(namespace: string): Promise<ServiceInstance[]> {
      const list = (await custom.listNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "serviceinstances",
      })) as { items: ServiceInstance[] };
      return list.items;
    },
    async getPolicy(namespace: string, name: string): Promise<DiscoveryPolicy> {
      return (await custom.getNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: "discoverypolicies",
        name,
      })) as DiscoveryPolicy;
    },
    slicesOf,
    async readyAddresses(namespace: string, service: string): Promise<string[]> {
      return readyIn(await slicesOf(namespace, service));
    },
  };
}

/** Open file descriptors of this process (Linux). */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A metric's value summed over all label sets (0 when absent). */
export async function metricSum(operator: Operator, name: string, labels: Record<string, string> = {}) {
  const metric = operator.manager.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

export interface SliceHistory {
  /** Ready addresses after every event seen, in order. */
  readonly readySets: string[][];
  readonly initial: string[];
  /** The list's resourceVersion the watch started from. */
  readonly resourceVersion: string;
  /** Throws if the watch failed or ended before stop (a gap would make "never shrinks" unprovable). */
  stop(): void;
}

/**
 * Lists the service's slices and watches them from the list's
 * resourceVersion, recording the ready set after every event. With
 * `from`, it watches from an earlier list instead (etcd keeps the history
 * until compaction), so writes made while nobody watched are still seen.
 */
export async function sliceHistory(
  kc: KubeConfig,
  namespace: string,
  service: string,
  from?: { items: V1EndpointSlice[]; resourceVersion: string },
): Promise<SliceHistory> {
  const labelSelector = `kubernetes.io/service-name=${service}`;
  const start: { items: V1EndpointSlice[]; resourceVersion: string } =
    from ?? (await sliceSnapshot(kc, namespace, service));
  const current = new Map(start.items.map((s) => [s.metadata?.name ?? "", s]));
  const readySets: string[][] = [];
  let stopped = false;
  let failure: unknown;
  const controller = await new Watch(kc).watch(
    `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
    { labelSelector, resourceVersion: start.resourceVersion, allowWatchBookmarks: true },
    (type: string, obj: V1EndpointSlice) => {
      if (type === "BOOKMARK") return;
      if (type === "ERROR") {
        failure = new Error(`slice watch error: ${JSON.stringify(obj)}`);
        return;
      }
      const name = obj.metadata?.name ?? "";
      if (type === "DELETED") current.delete(name);
      else current.set(name, obj);
      readySets.push(readyIn([...current.values()]));
    },
    (err: unknown) => {
      if (!stopped) failure = err ?? new Error("slice watch ended early");
    },
  );
  return {
    readySets,
    initial: readyIn(start.items),
    resourceVersion: start.resourceVersion,
    stop() {
      stopped = true;
      controller.abort();
      if (failure) throw failure;
    },
  };
}

/** The slices of a service with the list's resourceVersion (for `sliceHistory(..., from)`). */
export async function sliceSnapshot(kc: KubeConfig, namespace: string, service: string) {
  const l = await kc
    .makeApiClient(DiscoveryV1Api)
    .listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` });
  return { items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "" };
}
