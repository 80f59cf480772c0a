/**
 * The Helm chart against the sandbox's real API server: `helm install`
 * creates the objects; the pod template passes the `restricted` Pod
 * Security Standard; and the chart's RBAC is proven with the chart's own
 * ServiceAccount (a token from the TokenRequest API, so every request below
 * is authenticated and authorized exactly as the operator's would be): it
 * can do Roster's job and is refused everything else.
 *
 * No kubelet runs in the sandbox, so the Deployment's pods never start;
 * the requests the operator makes are made here with its identity instead.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type TestContext, test } from "node:test";
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type V1PodTemplateSpec,
} from "@kubernetes/client-node";
import { applier } from "../../../src/kube/apply.ts";
import { ApiError, type KubeClient, kubeClient } from "../../../src/kube/client.ts";
import { leaderElector, microTime } from "../../../src/kube/leader.ts";
import { type KubeObject, type ResourceType, resourcePath, resources } from "../../../src/kube/object.ts";
import { chartDir, helm, helmOk, valuesFile } from "../../support/chart.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";

const serviceInstances: ResourceType = {
  group: "roster.dev",
  version: "v1alpha1",
  plural: "serviceinstances",
  kind: "ServiceInstance",
  namespaced: true,
};
const discoveryPolicies: ResourceType = {
  ...serviceInstances,
  plural: "discoverypolicies",
  kind: "DiscoveryPolicy",
};
const deployments: ResourceType = {
  group: "apps",
  version: "v1",
  plural: "deployments",
  kind: "Deployment",
  namespaced: true,
};

interface Release {
  name: string;
  namespace: string;
  kubeconfig: string;
}

/** Installs the chart; the caller uninstalls (cluster-scoped objects outlive the namespace). */
async function install(release: Release, values: Record<string, unknown> = {}): Promise<void> {
  await helmOk(
    [
      "install",
      release.name,
      chartDir,
      "--namespace",
      release.namespace,
      "-f",
      valuesFile(values),
      "--timeout",
      "60s",
    ],
    { kubeconfig: release.kubeconfig },
  );
}

async function uninstall(release: Release): Promise<void> {
  const r = await helm(
    ["uninstall", release.name, "--namespace", release.namespace, "--wait", "--timeout", "60s"],
    {
      kubeconfig: release.kubeconfig,
    },
  );
  if (r.code !== 0) console.error(`helm uninstall ${release.name}: ${r.stderr}`);
}

/** A client authenticated as a ServiceAccount, with a short-lived token from the TokenRequest API. */
async function serviceAccountClient(
  admin: KubeConfig,
  namespace: string,
  name: string,
): Promise<{ client: KubeClient; username: string }> {
  const token = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds: 600 } },
  });
  const cluster = admin.getCurrentCluster();
  assert.ok(cluster && token.status?.token);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: token.status.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  const client = kubeClient(kc);
  const review = await client.request<{ status: { userInfo: { username: string } } }>({
    method: "POST",
    path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
  });
  return { client, username: review.status.userInfo.username };
}

async function allowed<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new Error(`the operator's ServiceAccount must be allowed to ${what}, got: ${String(err)}`);
  }
}

async function refused(what: string, p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) return;
    throw new Error(`${what}: expected 403 Forbidden, got: ${String(err)}`);
  }
  assert.fail(`the operator's ServiceAccount must NOT be allowed to ${what}, but the request succeeded`);
}

/** A watch the server accepts (200) or refuses; closed right away. */
async function watch(client: KubeClient, path: string): Promise<void> {
  const s = await client.stream({ method: "GET", path, query: { watch: 1, timeoutSeconds: 1 } });
  s.close();
}

const get = (client: KubeClient, path: string) => client.request({ method: "GET", path });
const post = <T = unknown>(client: KubeClient, path: string, body: unknown) =>
  client.request<T>({ method: "POST", path, body });

/**
 * Waits until the API server serves Roster's resources from its watch cache: right after the CRDs
 * are installed (a fresh sandbox) it answers 429 "storage is (re)initializing" for a moment.
 */
async function rosterApiReady(kc: KubeConfig): Promise<void> {
  const admin = kubeClient(kc);
  for (const rt of [serviceInstances, discoveryPolicies]) {
    await eventually(() => get(admin, resourcePath(rt)), { what: `${rt.plural} served`, timeoutMs: 30_000 });
  }
}

async function namespaces(t: TestContext, ...prefixes: string[]): Promise<string[]> {
  return Promise.all(prefixes.map((p) => testNamespace(t, p)));
}

function releaseName(): string {
  return `roster-${randomBytes(3).toString("hex")}`;
}

test("helm install creates the operator's objects, and its pods pass the restricted Pod Security Standard", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  await rosterApiReady(kc);
  const [namespace, restricted] = await namespaces(t, "roster", "psa");
  const release: Release = { name: releaseName(), namespace: namespace!, kubeconfig: kubeconfigPath };
  try {
    await install(release);
    const name = release.name; // the full name is the release name when it contains "roster"
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

    const deployment = await apps.readNamespacedDeployment({ name, namespace: release.namespace });
    assert.equal(deployment.spec?.replicas, 2);
    await core.readNamespacedServiceAccount({ name, namespace: release.namespace });
    const cm = await core.readNamespacedConfigMap({ name: `${name}-config`, namespace: release.namespace });
    assert.match(cm.data?.["config.yaml"] ?? "", /leaseName: .*-leader/);
    await core.readNamespacedService({ name: `${name}-metrics`, namespace: release.namespace });
    await kc
      .makeApiClient(PolicyV1Api)
      .readNamespacedPodDisruptionBudget({ name, namespace: release.namespace });
    await rbac.readClusterRole({ name });
    await rbac.readClusterRoleBinding({ name });
    await rbac.readNamespacedRole({ name: `${name}-leader-election`, namespace: release.namespace });
    await rbac.readNamespacedRoleBinding({ name: `${name}-leader-election`, namespace: release.namespace });
    // The CRDs from the chart's crds/ are served (already present in a shared sandbox: Helm skips them).
    await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({
      group: "roster.dev",
      version: "v1alpha1",
      plural: "serviceinstances",
    });
    const status = await helmOk(["status", release.name, "--namespace", release.namespace], {
      kubeconfig: kubeconfigPath,
    });
    assert.match(status, /STATUS: deployed/);

    // Pod Security admission enforces "restricted" on pods (not on Deployments): create the
    // Deployment's pod, dry-run, in a namespace that enforces it.
    await core.patchNamespace(
      {
        name: restricted!,
        body: [
          {
            op: "add",
            path: "/metadata/labels/pod-security.kubernetes.io~1enforce",
            value: "restricted",
          },
        ],
      },
      undefined,
    );
    const template = deployment.spec!.template;
    const dryRunPod = (spec: V1PodTemplateSpec["spec"]) =>
      core.createNamespacedPod({
        namespace: restricted!,
        body: { metadata: { name: "roster-pss" }, spec: spec! },
        dryRun: "All",
      });
    await dryRunPod(template.spec);
    // Control: the same pod with one relaxed setting is refused, so the check above is real.
    const relaxed = structuredClone(template.spec!);
    relaxed.containers[0]!.securityContext = {
      ...relaxed.containers[0]!.securityContext,
      allowPrivilegeEscalation: true,
    };
    await assert.rejects(dryRunPod(relaxed), (err: unknown) => {
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 403);
      const message = (JSON.parse(String(err.body)) as { message?: string }).message;
      assert.match(
        message ?? "",
        /violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/,
      );
      return true;
    });
  } finally {
    await uninstall(release);
  }
});

test("RBAC, all namespaces: the chart's ServiceAccount can do Roster's job and nothing else", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  await rosterApiReady(kc);
  const [opNs, appNs] = await namespaces(t, "roster", "app");
  const release: Release = { name: releaseName(), namespace: opNs!, kubeconfig: kubeconfigPath };
  try {
    await install(release);
    const sa = release.name;
    const { client, username } = await serviceAccountClient(kc, opNs!, sa);
    assert.equal(username, `system:serviceaccount:${opNs}:${sa}`);
    const admin = kubeClient(kc);
    const apply = applier(client);
    const ns = appNs!;

    // --- what Roster does -------------------------------------------------------------
    // Caches: list and watch its API objects and what it publishes, in every namespace.
    for (const rt of [
      serviceInstances,
      discoveryPolicies,
      resources.services,
      resources.endpointSlices,
      resources.configMaps,
      resources.leases,
    ]) {
      await allowed(`list ${rt.plural} cluster-wide`, get(client, resourcePath(rt)));
      await allowed(`watch ${rt.plural} cluster-wide`, watch(client, resourcePath(rt)));
    }
    // An instance (applied by its team), its status written by Roster, then deregistered.
    const si = await admin.request<{ metadata: { uid: string } }>({
      method: "POST",
      path: resourcePath(serviceInstances, { namespace: ns }),
      body: {
        apiVersion: "roster.dev/v1alpha1",
        kind: "ServiceInstance",
        metadata: { name: "web-1", namespace: ns },
        spec: { service: "web", address: "10.0.0.10", ports: [{ name: "http", port: 8080 }] },
      },
    });
    await allowed(
      "get a ServiceInstance",
      get(client, resourcePath(serviceInstances, { namespace: ns, name: "web-1" })),
    );
    await allowed(
      "apply ServiceInstance status",
      apply.apply(
        serviceInstances,
        {
          apiVersion: "roster.dev/v1alpha1",
          kind: "ServiceInstance",
          metadata: { name: "web-1", namespace: ns },
          status: { healthy: true, observedGeneration: 1 },
        },
        { subresource: "status" },
      ),
    );
    const owner = {
      apiVersion: "roster.dev/v1alpha1",
      kind: "ServiceInstance",
      name: "web-1",
      uid: si.metadata.uid,
    };
    // Publish: a selector-less Service, an EndpointSlice and a ConfigMap (server-side apply creates them).
    const labels = { "app.kubernetes.io/managed-by": "roster" };
    const published: [ResourceType, KubeObject & Record<string, unknown>][] = [
      [
        resources.services,
        { metadata: { name: "web", namespace: ns, labels }, spec: { ports: [{ name: "http", port: 8080 }] } },
      ],
      [
        resources.endpointSlices,
        {
          metadata: {
            name: "web-abcde",
            namespace: ns,
            labels: { ...labels, "kubernetes.io/service-name": "web" },
            ownerReferences: [owner],
          },
          addressType: "IPv4",
          endpoints: [{ addresses: ["10.0.0.10"], conditions: { ready: true } }],
          ports: [{ name: "http", port: 8080 }],
        },
      ],
      [resources.configMaps, { metadata: { name: "web-roster", namespace: ns, labels }, data: { v: "1" } }],
    ];
    for (const [rt, obj] of published) {
      await allowed(`create ${rt.kind} by apply`, apply.apply(rt, obj));
      await allowed(
        `update ${rt.kind} by apply`,
        apply.apply(rt, { ...obj, metadata: { ...obj.metadata, annotations: { r: "2" } } }),
      );
      await allowed(`delete ${rt.kind}`, apply.delete(rt, ns, obj.metadata.name!));
    }
    // Events on transitions, both APIs; a repeat is a patch.
    const regarding = { ...owner, namespace: ns };
    await allowed(
      "create an events.k8s.io Event",
      post(client, resourcePath(resources.events, { namespace: ns }), {
        apiVersion: "events.k8s.io/v1",
        kind: "Event",
        metadata: { name: "web-1.t1", namespace: ns },
        eventTime: microTime(Date.now()),
        reportingController: "roster.dev/roster",
        reportingInstance: "test",
        action: "Probe",
        reason: "BecameHealthy",
        type: "Normal",
        regarding,
        note: "probe succeeded",
      }),
    );
    await allowed(
      "patch an events.k8s.io Event",
      client.request({
        method: "PATCH",
        path: resourcePath(resources.events, { namespace: ns, name: "web-1.t1" }),
        contentType: "application/merge-patch+json",
        body: { series: { count: 2, lastObservedTime: microTime(Date.now()) } },
      }),
    );
    await allowed(
      "create a core/v1 Event",
      post(client, `/api/v1/namespaces/${ns}/events`, {
        metadata: { name: "web-1.t2", namespace: ns },
        involvedObject: regarding,
        reason: "BecameHealthy",
        message: "probe succeeded",
        type: "Normal",
        source: { component: "roster" },
      }),
    );
    // Heartbeat probes read instance Leases.
    await admin.request({
      method: "POST",
      path: resourcePath(resources.leases, { namespace: ns }),
      body: {
        metadata: { name: "web-1-heartbeat" },
        spec: { holderIdentity: "web-1", leaseDurationSeconds: 10 },
      },
    });
    await allowed(
      "get a heartbeat Lease",
      get(client, resourcePath(resources.leases, { namespace: ns, name: "web-1-heartbeat" })),
    );
    // deregisterAfter.
    await allowed("delete a ServiceInstance", apply.delete(serviceInstances, ns, "web-1"));

    // Leader election on its own Lease in its own namespace, with Roster's elector.
    const abort = new AbortController();
    const elector = leaderElector({
      client,
      namespace: opNs!,
      name: `${release.name}-leader`,
      identity: "pod-a",
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 200,
    });
    const outcome = elector.run(abort.signal);
    await eventually(() => (elector.isLeader() ? true : undefined), {
      what: "leadership",
      timeoutMs: 10_000,
    });
    abort.abort();
    assert.equal(await outcome, "stopped");
    const lease = await admin.request<{ spec: { holderIdentity?: string } }>({
      method: "GET",
      path: resourcePath(resources.leases, { namespace: opNs!, name: `${release.name}-leader` }),
    });
    assert.ok(!lease.spec.holderIdentity, "the Lease was released (updated) on stop");

    // metrics.auth kubernetes (the default): review each scrape's token, and the metrics-reader
    // ClusterRole lets its subject get /metrics (and nothing else).
    const { token: scraperToken } = (
      await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
        name: sa,
        namespace: opNs!,
        body: { spec: { expirationSeconds: 600 } },
      })
    ).status!;
    const tr = await allowed(
      "create TokenReviews",
      post<{ status: { user?: { username?: string } } }>(
        client,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token: scraperToken },
        },
      ),
    );
    assert.equal(tr.status.user?.username, username);
    const metricsReview = (user: string) =>
      post<{ status: { allowed: boolean } }>(client, "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: { user, nonResourceAttributes: { path: "/metrics", verb: "get" } },
      });
    const sar = await allowed("create SubjectAccessReviews", metricsReview("someone"));
    assert.equal(sar.status.allowed, false, "nobody may get /metrics without the reader role");
    await admin.request({
      method: "POST",
      path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      body: {
        metadata: { name: `${release.name}-test-scraper` },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: `${release.name}-metrics-reader`,
        },
        subjects: [{ kind: "User", name: "scraper", apiGroup: "rbac.authorization.k8s.io" }],
      },
    });
    try {
      await eventually(async () => ((await metricsReview("scraper")).status.allowed ? true : undefined), {
        what: "the metrics-reader ClusterRole to grant get /metrics",
      });
    } finally {
      await admin
        .request({
          method: "DELETE",
          path: `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${release.name}-test-scraper`,
        })
        .catch(() => undefined);
    }

    // --- what Roster must not do --------------------------------------------------------
    await refused("create Deployments", post(client, resourcePath(deployments, { namespace: ns }), {}));
    await refused("create Pods", post(client, `/api/v1/namespaces/${ns}/pods`, {}));
    await refused("read a Secret (probeSecrets off)", get(client, `/api/v1/namespaces/${ns}/secrets/any`));
    await refused("list Secrets cluster-wide", get(client, "/api/v1/secrets"));
    await refused("read Secrets in its own namespace", get(client, `/api/v1/namespaces/${opNs}/secrets`));
    await refused(
      "create ServiceInstances",
      post(client, resourcePath(serviceInstances, { namespace: ns }), {}),
    );
    await refused(
      "change a ServiceInstance's spec",
      client.request({
        method: "PATCH",
        path: resourcePath(serviceInstances, { namespace: ns, name: "web-1" }),
        contentType: "application/merge-patch+json",
        body: { spec: { weight: 1 } },
      }),
    );
    await refused(
      "create DiscoveryPolicies",
      post(client, resourcePath(discoveryPolicies, { namespace: ns }), {}),
    );
    await refused(
      "delete DiscoveryPolicies",
      client.request({
        method: "DELETE",
        path: resourcePath(discoveryPolicies, { namespace: ns, name: "any" }),
      }),
    );
    await refused(
      "create Leases in served namespaces",
      post(client, resourcePath(resources.leases, { namespace: ns }), {}),
    );
    await admin.request({
      method: "POST",
      path: resourcePath(resources.leases, { namespace: opNs! }),
      body: { metadata: { name: "someone-else" }, spec: {} },
    });
    await refused(
      "renew another Lease in its namespace",
      client.request({
        method: "PUT",
        path: resourcePath(resources.leases, { namespace: opNs!, name: "someone-else" }),
        body: { metadata: { name: "someone-else", namespace: opNs }, spec: { holderIdentity: "roster" } },
      }),
    );
    await refused(
      "write a heartbeat Lease",
      client.request({
        method: "DELETE",
        path: resourcePath(resources.leases, { namespace: ns, name: "web-1-heartbeat" }),
      }),
    );
    await refused("create Namespaces", post(client, "/api/v1/namespaces", {}));
    await refused("create ClusterRoles", post(client, "/apis/rbac.authorization.k8s.io/v1/clusterroles", {}));
    await refused(
      "create RoleBindings",
      post(client, `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {}),
    );
    await refused(
      "create Ingresses",
      post(client, `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`, {}),
    );
    await refused("update CRDs", post(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {}));
    await refused("read Nodes", get(client, "/api/v1/nodes"));
  } finally {
    await uninstall(release);
  }
});

test("RBAC, watchNamespaces with probeSecrets: only the listed namespaces, Secrets readable there only", async (t) => {
  const { kc, kubeconfigPath } = await testCluster();
  await rosterApiReady(kc);
  const [opNs, served, other] = await namespaces(t, "roster", "served", "other");
  const release: Release = { name: releaseName(), namespace: opNs!, kubeconfig: kubeconfigPath };
  try {
    await install(release, { watchNamespaces: [served], probeSecrets: { enabled: true } });
    const { client } = await serviceAccountClient(kc, opNs!, release.name);
    const core = kc.makeApiClient(CoreV1Api);
    for (const namespace of [served!, other!]) {
      await core.createNamespacedSecret({
        namespace,
        body: { metadata: { name: "probe-token" }, stringData: { t: "x" } },
      });
    }

    await allowed(
      "read a probe Secret in a served namespace",
      get(client, `/api/v1/namespaces/${served}/secrets/probe-token`),
    );
    for (const rt of [serviceInstances, discoveryPolicies, resources.endpointSlices, resources.leases]) {
      await allowed(`list ${rt.plural} in ${served}`, get(client, resourcePath(rt, { namespace: served })));
      await allowed(
        `watch ${rt.plural} in ${served}`,
        watch(client, resourcePath(rt, { namespace: served })),
      );
      await refused(`list ${rt.plural} in ${other}`, get(client, resourcePath(rt, { namespace: other })));
      await refused(`list ${rt.plural} cluster-wide`, get(client, resourcePath(rt)));
    }
    await allowed(
      "apply a ConfigMap in a served namespace",
      applier(client).apply(resources.configMaps, {
        metadata: { name: "web-roster", namespace: served! },
        data: {},
      }),
    );
    await refused(
      "apply a ConfigMap elsewhere",
      applier(client).apply(resources.configMaps, {
        metadata: { name: "web-roster", namespace: other! },
        data: {},
      }),
    );
    await refused(
      "read a Secret in a namespace it does not serve",
      get(client, `/api/v1/namespaces/${other}/secrets/probe-token`),
    );
    await refused("list Secrets in a served namespace", get(client, `/api/v1/namespaces/${served}/secrets`));
    await refused("list Secrets cluster-wide", get(client, "/api/v1/secrets"));
    await refused("read Secrets in its own namespace", get(client, `/api/v1/namespaces/${opNs}/secrets/any`));
    // Its own Lease still works in its namespace, which it does not serve.
    await allowed(
      "create its leader-election Lease",
      post(client, resourcePath(resources.leases, { namespace: opNs! }), {
        metadata: { name: `${release.name}-leader` },
        spec: { holderIdentity: "pod-a", leaseDurationSeconds: 15 },
      }),
    );
    await allowed(
      "read its leader-election Lease",
      get(client, resourcePath(resources.leases, { namespace: opNs!, name: `${release.name}-leader` })),
    );
  } finally {
    await uninstall(release);
  }
});
