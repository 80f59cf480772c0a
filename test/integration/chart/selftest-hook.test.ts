/**
 * The chart's `helm test` hook (templates/tests/selftest.yaml), rendered
 * offline: a Pod running `roster selftest` with the chart's image and security
 * settings, and a ServiceAccount + Role that may only create, read and delete
 * the test objects, in the namespace they go to. `helm install` and
 * `helm template --skip-tests` leave it out. Then against the sandbox's API
 * server: the rendered hook is admitted in a namespace enforcing the
 * `restricted` Pod Security Standard, and `roster selftest` authenticated as
 * the hook's ServiceAccount (a TokenRequest token) passes against a running
 * operator: its Role is enough, and no more. The pod itself never runs (no
 * kubelet in the sandbox); the command runs in the image under runc in
 * test/integration/image/.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  CoreV1Api,
  KubeConfig,
  type V1ClusterRoleBinding,
  type V1Pod,
  type V1Role,
  type V1RoleBinding,
} from "@kubernetes/client-node";
import { ApiError, kubeClient } from "../../../src/kube/index.ts";
import { resourcePath } from "../../../src/kube/object.ts";
import { rosterResources } from "../../../src/operator/context.ts";
import { kinds, type Manifest, one, render, valuesFile } from "../../support/chart.ts";
import { roster } from "../../support/cli.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";
import { startTestOperator } from "../../support/operator.ts";

const release = "rel";
const ns = "roster-system";
const name = "rel-roster-selftest";
const hooks = (objects: Manifest[]) =>
  objects.filter((o) => o.metadata.annotations?.["helm.sh/hook"] === "test");

test("the hook is rendered only with tests, as a Pod, ServiceAccount, Role and RoleBinding (and get /metrics)", async () => {
  const without = await render({}, { release, namespace: ns });
  assert.deepEqual(hooks(without), []);
  const objects = await render({}, { release, namespace: ns, tests: true });
  assert.deepEqual(kinds(hooks(objects)), [
    "ClusterRoleBinding",
    "Pod",
    "Role",
    "RoleBinding",
    "ServiceAccount",
  ]);
  assert.equal(objects.length - without.length, 5, "nothing but the hook is added");
  // metrics.auth kubernetes (the default): the pod's token may get /metrics through the reader role.
  const reader = one<V1ClusterRoleBinding>(objects, "ClusterRoleBinding", name);
  assert.deepEqual(reader.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: "rel-roster-metrics-reader",
  });
  assert.deepEqual(reader.subjects, [{ kind: "ServiceAccount", name, namespace: ns }]);
  const noAuth = await render({ metrics: { auth: "none" } }, { release, namespace: ns, tests: true });
  assert.ok(!noAuth.some((o) => o.kind === "ClusterRoleBinding" && o.metadata.name === name));
  for (const o of hooks(objects)) {
    assert.equal(o.metadata.name, name);
    if (o.kind !== "ClusterRoleBinding") assert.equal(o.metadata.namespace, ns);
    assert.equal(
      o.metadata.annotations?.["helm.sh/hook-delete-policy"],
      "before-hook-creation,hook-succeeded",
    );
    // The chart's Service and PodDisruptionBudget select name=roster: never the test pod.
    assert.equal(o.metadata.labels?.["app.kubernetes.io/name"], "roster-selftest");
    assert.equal(o.metadata.labels?.["app.kubernetes.io/instance"], release);
  }
  // RBAC exists before the pod starts (Helm creates hooks by weight).
  for (const kind of ["ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"]) {
    assert.equal(one(objects, kind, name).metadata.annotations?.["helm.sh/hook-weight"], "-1");
  }
});

test("the pod runs roster selftest with the chart's image, restricted security and a writable /tmp only", async () => {
  const objects = await render(
    { image: { repository: "roster", tag: "dev", pullPolicy: "Never" } },
    { release, namespace: ns, tests: true },
  );
  const pod = one<V1Pod>(objects, "Pod", name);
  const spec = pod.spec!;
  assert.equal(spec.restartPolicy, "Never");
  assert.equal(spec.serviceAccountName, name);
  assert.deepEqual(spec.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    seccompProfile: { type: "RuntimeDefault" },
  });
  const c = spec.containers[0]!;
  assert.equal(spec.containers.length, 1);
  assert.equal(c.image, "roster:dev");
  assert.equal(c.imagePullPolicy, "Never");
  assert.deepEqual(c.args, [
    "selftest",
    "--metrics-url",
    `http://rel-roster-metrics.${ns}.svc:8080/metrics`,
    "--namespace",
    ns,
    "--timeout",
    "60s",
  ]);
  assert.deepEqual(c.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  });
  assert.deepEqual(c.volumeMounts, [{ name: "tmp", mountPath: "/tmp" }]);
});

test("the Role grants only create/get/delete of the test objects, where the operator serves", async () => {
  const check = (objects: Manifest[], where: string) => {
    const role = one<V1Role>(objects, "Role", name);
    assert.equal(role.metadata?.namespace, where);
    assert.deepEqual(role.rules, [
      {
        apiGroups: ["roster.dev"],
        resources: ["serviceinstances", "discoverypolicies"],
        verbs: ["create", "get", "delete"],
      },
    ]);
    const binding = one<V1RoleBinding>(objects, "RoleBinding", name);
    assert.equal(binding.metadata?.namespace, where);
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name, namespace: ns }]);
    const args = one<V1Pod>(objects, "Pod", name).spec!.containers[0]!.args!;
    assert.equal(args[args.indexOf("--namespace") + 1], where);
  };
  check(await render({}, { release, namespace: ns, tests: true }), ns);
  // Served namespaces without the release's: the objects go to the first one served.
  check(
    await render({ watchNamespaces: ["team-a", "team-b"] }, { release, namespace: ns, tests: true }),
    "team-a",
  );
  check(await render({ watchNamespaces: ["team-b", ns] }, { release, namespace: ns, tests: true }), ns);
  // No metrics Service: only the reconcile check.
  const noMetrics = await render(
    { metrics: { service: { enabled: false } } },
    { release, namespace: ns, tests: true },
  );
  assert.ok(!one<V1Pod>(noMetrics, "Pod", name).spec!.containers[0]!.args!.includes("--metrics-url"));
});

const collection: Record<string, string> = {
  ServiceAccount: "/api/v1/namespaces/NS/serviceaccounts",
  Role: "/apis/rbac.authorization.k8s.io/v1/namespaces/NS/roles",
  RoleBinding: "/apis/rbac.authorization.k8s.io/v1/namespaces/NS/rolebindings",
  Pod: "/api/v1/namespaces/NS/pods",
};

test("on the API server: restricted admission accepts the hook, and selftest with its ServiceAccount passes", async (t) => {
  const { kc } = await testCluster();
  const hookNs = await testNamespace(t, "hook");
  const admin = kubeClient(kc);
  await admin.request({
    method: "PATCH",
    path: `/api/v1/namespaces/${hookNs}`,
    contentType: "application/merge-patch+json",
    body: { metadata: { labels: { "pod-security.kubernetes.io/enforce": "restricted" } } },
  });
  const objects = hooks(await render({}, { release, namespace: hookNs, tests: true }));
  // RBAC first, then the pod: Helm's order by hook weight.
  for (const kind of ["ServiceAccount", "Role", "RoleBinding", "Pod"]) {
    const o = one(objects, kind);
    await admin.request({ method: "POST", path: collection[kind]!.replace("NS", hookNs), body: o });
  }

  const token = await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace: hookNs,
    body: { spec: { expirationSeconds: 600 } },
  });
  const cluster = kc.getCurrentCluster()!;
  const saConfig = new KubeConfig();
  saConfig.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: token.status!.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  // A kubeconfig file for the CLI (valuesFile's directory is private to this process).
  const kubeconfig = join(valuesFile({}), "..", "selftest-kubeconfig");
  writeFileSync(kubeconfig, saConfig.exportConfig(), { mode: 0o600 });

  // No more than the test objects: listing or touching anything else is refused.
  const sa = kubeClient(saConfig);
  for (const path of [
    resourcePath(rosterResources.serviceInstances, { namespace: hookNs }),
    `/api/v1/namespaces/${hookNs}/configmaps`,
    resourcePath(rosterResources.serviceInstances, { namespace: "default" }),
  ]) {
    await assert.rejects(
      sa.request({ method: "GET", path }),
      (err) => err instanceof ApiError && err.status === 403,
      path,
    );
  }

  await startTestOperator(t, { namespaces: [hookNs] });
  const r = await roster(["selftest", "-n", hookNs, "--timeout", "30s"], { env: { KUBECONFIG: kubeconfig } });
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.match(
    r.stdout,
    new RegExp(`^selftest ok: ServiceInstance ${hookNs}/roster-selftest-[0-9a-f]{6} reconciled\\n$`),
  );
});
