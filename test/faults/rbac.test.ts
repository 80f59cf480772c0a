// The whole operator under the Helm chart's RBAC. The chart is rendered with
// bin/helm for a fixed list of namespaces; its ServiceAccount, Roles and
// RoleBindings are created in the shared test cluster (all namespaced, so
// they go away with the test's namespaces); the real operator then runs in
// this process with the chart's own config file (parsed by the operator's
// schema) and a token of that ServiceAccount from the TokenRequest API, so
// every request it makes is authorized exactly as in a pod of the chart.
//
// test/integration/chart/ proves the grants one request at a time; here the
// operator does its whole job with them: probing, status, Service,
// EndpointSlices, ConfigMap, Events and leader election with the chart's
// Lease, and is refused everything else.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type TestContext, test } from "node:test";
import type { KubeConfig, V1PolicyRule } from "@kubernetes/client-node";
import { parseConfig } from "../../src/config/index.ts";
import { type KubeClient, kubeClient } from "../../src/kube/client.ts";
import { type ResourceType, resourcePath, resources } from "../../src/kube/object.ts";
import type { Operator } from "../../src/operator/operator.ts";
import { operatorSettings, probingOptions } from "../../src/operator/settings.ts";
import { type Manifest, one, render } from "../support/chart.ts";
import { eventually, testCluster, testNamespace } from "../support/cluster.ts";
import { FAST, webInstance } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import { condition, rosterApi } from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";
import { canI, metricSum, refused, serviceAccountKubeConfig, sleep } from "./support.ts";

const rbacTypes = {
  ServiceAccount: {
    group: "",
    version: "v1",
    plural: "serviceaccounts",
    kind: "ServiceAccount",
    namespaced: true,
  },
  Role: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "roles",
    kind: "Role",
    namespaced: true,
  },
  RoleBinding: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "rolebindings",
    kind: "RoleBinding",
    namespaced: true,
  },
} as const satisfies Record<string, ResourceType>;

/** What the operator's identity is, and how to start it, for one rendering of the chart. */
interface ChartedOperator {
  release: string;
  /** The rendered objects (before `tighten`). */
  objects: Manifest[];
  /** The ServiceAccount's identity (same server and CA as the admin kubeconfig). */
  sa: KubeConfig;
  leaseNamespace: string;
  leaseName: string;
  start(t: TestContext, identity: string): Promise<Operator>;
}

/**
 * Renders the chart into `opNs` serving `served`, creates its RBAC objects
 * (after `tighten`, which may change a Role as a cluster admin would), and
 * returns the ServiceAccount's identity and a way to start the operator with
 * the chart's config.
 */
async function chartedOperator(
  opNs: string,
  served: string[],
  values: Record<string, unknown>,
  tighten: (role: Manifest) => Manifest = (r) => r,
): Promise<ChartedOperator> {
  const { kc: admin } = await testCluster();
  const release = `roster-${randomBytes(3).toString("hex")}`;
  const objects = await render(
    {
      watchNamespaces: served,
      // Probe targets are loopback servers; hold start-up publication briefly only.
      probing: { destinations: { allowLoopback: true } },
      publishing: { startupHold: "3s" },
      ...values,
    },
    { release, namespace: opNs },
  );
  // With watchNamespaces the chart grants nothing cluster-wide on any object: its only
  // cluster-scoped rules are the /metrics ones (create reviews, get /metrics), which this
  // operator (metrics not served here) does not need and the test does not create.
  const clusterRules = objects
    .filter((o) => o.kind === "ClusterRole")
    .flatMap((o) => (o as Manifest & { rules: unknown[] }).rules);
  assert.deepEqual(
    clusterRules,
    [
      { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
      { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
      { nonResourceURLs: ["/metrics"], verbs: ["get"] },
    ],
    "with watchNamespaces the chart grants nothing cluster-wide but the /metrics reviews",
  );
  const create = (m: Manifest) =>
    kubeClient(admin).request({
      method: "POST",
      path: resourcePath(rbacTypes[m.kind as keyof typeof rbacTypes], { namespace: m.metadata.namespace }),
      body: m,
    });
  const account = one(objects, "ServiceAccount");
  await create(account);
  for (const role of objects.filter((o) => o.kind === "Role")) await create(tighten(role));
  for (const binding of objects.filter((o) => o.kind === "RoleBinding")) await create(binding);
  const configMap = one<Manifest & { data: Record<string, string> }>(objects, "ConfigMap");
  const config = parseConfig(configMap.data["config.yaml"]!, "chart ConfigMap");
  assert.deepEqual(config.namespaces, served);
  assert.equal(config.leaderElection.enabled, true);
  assert.equal(config.leaderElection.namespace, opNs);

  const sa = await serviceAccountKubeConfig(admin, opNs, account.metadata.name);
  // The RBAC authorizer learns of new bindings through its informers: wait until they apply.
  await eventually(
    async () =>
      (await canI(sa, {
        verb: "watch",
        group: "roster.dev",
        resource: "serviceinstances",
        namespace: served[served.length - 1],
      })) &&
      (await canI(sa, {
        verb: "get",
        group: "coordination.k8s.io",
        resource: "leases",
        namespace: opNs,
        name: config.leaderElection.leaseName,
      }))
        ? true
        : undefined,
    { what: "the chart's RoleBindings in effect", timeoutMs: 15_000 },
  );
  return {
    release,
    objects,
    sa,
    leaseNamespace: config.leaderElection.namespace,
    leaseName: config.leaderElection.leaseName,
    start: (tc, identity) =>
      startTestOperator(tc, {
        kubeConfig: sa,
        namespaces: config.namespaces,
        settings: { ...operatorSettings(config), batchWindowMs: 20 },
        destinations: probingOptions(config).destinations,
        leaderElection: {
          namespace: config.leaderElection.namespace,
          name: config.leaderElection.leaseName,
          identity,
        },
      }),
  };
}

async function leaseHolder(client: KubeClient, namespace: string, name: string): Promise<string | undefined> {
  const lease = await client.request<{ spec?: { holderIdentity?: string } }>({
    method: "GET",
    path: resourcePath(resources.leases, { namespace, name }),
  });
  return lease.spec?.holderIdentity || undefined;
}

const forbidden = (operator: Operator) => metricSum(operator, "rest_client_requests_total", { code: "403" });

test("probeSecrets off: the operator does its whole job under the chart's RBAC, reads no Secret and writes nothing else", async (t) => {
  const { kc } = await testCluster();
  const admin = rosterApi(kc);
  const adminClient = kubeClient(kc);
  const [opNs, served, unserved] = await Promise.all(
    ["roster", "served", "unserved"].map((p) => testNamespace(t, p)),
  );
  const chart = await chartedOperator(opNs!, [served!], { probeSecrets: { enabled: false } });
  const client = kubeClient(chart.sa);

  // (b) No Secret anywhere: neither the review nor a real GET with the same token allows it.
  await admin.createSecret(served!, "probe-token", { token: "s3cret" });
  for (const namespace of [served!, unserved!, opNs!]) {
    assert.equal(await canI(chart.sa, { verb: "get", resource: "secrets", namespace }), false, namespace);
  }
  assert.equal(await canI(chart.sa, { verb: "list", resource: "secrets" }), false);
  await refused(
    "GET a Secret in the served namespace",
    client.request({ method: "GET", path: `/api/v1/namespaces/${served}/secrets/probe-token` }),
  );

  const targets = await httpTargets(t, 3);
  await admin.createPolicy(served!, "web", { service: "web", publish: { panicThreshold: 0 } });
  await admin.createInstance(served!, "web-1", webInstance(targets[0]!, 0));
  await admin.createInstance(served!, "web-2", webInstance(targets[1]!, 1));
  await admin.createInstance(
    served!,
    "web-secret",
    webInstance(targets[2]!, 2, {
      healthCheck: {
        probes: [
          {
            type: "http",
            http: {
              host: targets[2]!.host,
              port: "http",
              path: "/healthz",
              headers: [
                { name: "X-Token", valueFrom: { secretKeyRef: { name: "probe-token", key: "token" } } },
              ],
            },
          },
        ],
        ...FAST,
      },
    }),
  );
  await admin.createInstance(unserved!, "web-1", webInstance(targets[0]!, 0));

  // Two replicas with the chart's identity and Lease (d).
  const a = await chart.start(t, "replica-a");
  const b = await chart.start(t, "replica-b");
  const [leader, standby] = await eventually(
    () => (a.manager.isLeader() ? [a, b] : b.manager.isLeader() ? [b, a] : undefined),
    { what: "one replica to lead", timeoutMs: 15_000 },
  );
  assert.equal(standby.manager.isLeader(), false, "one leader only");
  assert.equal(
    await leaseHolder(adminClient, chart.leaseNamespace, chart.leaseName),
    leader.manager.identity,
    "the chart's Lease names the leader",
  );

  // (a) End to end in the served namespace.
  await eventually(
    async () => {
      const ready = await admin.readyAddresses(served!, "web");
      if (ready.join() !== "192.0.2.1,192.0.2.2") return undefined;
      const doc = await admin.publishedDocument(served!, "web-roster");
      if (doc?.endpoints.map((e) => e.instance).join() !== "web-1,web-2") return undefined;
      for (const name of ["web-1", "web-2"]) {
        const si = await admin.getInstance(served!, name);
        if (si.status?.healthy !== true || condition(si, "Ready")?.status !== "True") return undefined;
      }
      const policy = await admin.getPolicy(served!, "web");
      return policy.status?.healthyInstances === 2 ? true : undefined;
    },
    { what: "web-1 and web-2 healthy, recorded and published", timeoutMs: 20_000, intervalMs: 200 },
  );
  const service = await admin.getService(served!, "web");
  assert.ok(service, "the selector-less Service is published");
  // Secrets off: the header cannot be resolved, reported on the instance (README: SecretNotFound).
  const blocked = await eventually(
    async () => {
      const si = await admin.getInstance(served!, "web-secret");
      return condition(si, "Healthy") ? si : undefined;
    },
    { what: "web-secret has a Healthy condition" },
  );
  assert.equal(condition(blocked, "Healthy")?.status, "False");
  assert.equal(condition(blocked, "Healthy")?.reason, "SecretNotFound");
  assert.equal(targets[2]!.hits, 0, "web-secret is never probed without its header");

  // Events are written with the chart's grant: web-2 fails.
  targets[1]!.healthy = false;
  await eventually(
    async () =>
      (await admin.readyAddresses(served!, "web")).join() === "192.0.2.1" &&
      (await admin.hasEvent(served!, "web-2", "BecameUnhealthy"))
        ? true
        : undefined,
    { what: "web-2 unpublished with a BecameUnhealthy Event", timeoutMs: 10_000, intervalMs: 200 },
  );

  // Nothing in the unserved namespace is touched (nor could be).
  const outside = await admin.getInstance(unserved!, "web-1");
  assert.equal(outside.status, undefined, "an instance in an unserved namespace gets no status");
  assert.deepEqual(await admin.slicesOf(unserved!, "web"), []);

  // The operator never even tried something the chart does not grant.
  assert.equal(await forbidden(leader), 0, "the leader got no 403");
  assert.equal(await forbidden(standby), 0, "the standby got no 403");
  assert.equal(await metricSum(leader, "controller_runtime_reconcile_errors_total"), 0, "no reconcile error");

  // (c) Kinds and namespaces it does not manage, with the same token.
  const post = (path: string, body: unknown) => client.request({ method: "POST", path, body });
  await refused(
    "create a Deployment in the served namespace",
    post(`/apis/apps/v1/namespaces/${served}/deployments`, {
      metadata: { name: "x" },
      spec: {
        selector: { matchLabels: { a: "b" } },
        template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "x" }] } },
      },
    }),
  );
  await refused(
    "create a Secret in the served namespace",
    post(`/api/v1/namespaces/${served}/secrets`, { metadata: { name: "x" } }),
  );
  await refused(
    "create a ConfigMap in an unserved namespace",
    post(`/api/v1/namespaces/${unserved}/configmaps`, { metadata: { name: "x" } }),
  );
  await refused(
    "create a Service in an unserved namespace",
    post(`/api/v1/namespaces/${unserved}/services`, {
      metadata: { name: "x" },
      spec: { ports: [{ port: 80 }] },
    }),
  );
  await refused(
    "create an EndpointSlice in an unserved namespace",
    post(resourcePath(resources.endpointSlices, { namespace: unserved! }), {
      metadata: { name: "x" },
      addressType: "IPv4",
      endpoints: [],
    }),
  );
  await refused(
    "read ServiceInstances in an unserved namespace",
    client.request({
      method: "GET",
      path: `/apis/roster.dev/v1alpha1/namespaces/${unserved}/serviceinstances`,
    }),
  );
  await refused(
    "change a ServiceInstance's spec",
    client.request({
      method: "PATCH",
      path: `/apis/roster.dev/v1alpha1/namespaces/${served}/serviceinstances/web-1`,
      contentType: "application/merge-patch+json",
      body: { spec: { weight: 1 } },
    }),
  );
  await refused(
    "create a Lease in the served namespace",
    post(resourcePath(resources.leases, { namespace: served! }), { metadata: { name: "x" }, spec: {} }),
  );

  // (d) The leader stops (releases the Lease); the standby takes over with the same grants and
  // publishes what happens next.
  const before = await adminClient.request<{ metadata: { resourceVersion: string } }>({
    method: "GET",
    path: resourcePath(resources.leases, { namespace: chart.leaseNamespace, name: chart.leaseName }),
  });
  await leader.stop();
  await eventually(() => (standby.manager.isLeader() ? true : undefined), {
    what: "the standby to take the Lease",
    timeoutMs: 10_000,
  });
  assert.equal(
    await leaseHolder(adminClient, chart.leaseNamespace, chart.leaseName),
    standby.manager.identity,
  );
  targets[1]!.healthy = true;
  await eventually(
    async () =>
      (await admin.readyAddresses(served!, "web")).join() === "192.0.2.1,192.0.2.2" ? true : undefined,
    { what: "the new leader republishes web-2", timeoutMs: 15_000, intervalMs: 200 },
  );
  const after = await adminClient.request<{ metadata: { resourceVersion: string } }>({
    method: "GET",
    path: resourcePath(resources.leases, { namespace: chart.leaseNamespace, name: chart.leaseName }),
  });
  assert.notEqual(after.metadata.resourceVersion, before.metadata.resourceVersion, "the Lease was renewed");
  assert.equal(await forbidden(standby), 0, "the new leader got no 403");
});

/** The Role without the chart's Secret rule: the namespace's admin withholds Secrets from Roster. */
function withoutSecrets(role: Manifest): Manifest {
  const rules = (role as Manifest & { rules: V1PolicyRule[] }).rules;
  return { ...role, rules: rules.filter((r) => !r.resources?.includes("secrets")) };
}

test("probeSecrets on: Secrets are read only in served namespaces; a forbidden one is a condition, not a stall", async (t) => {
  const { kc } = await testCluster();
  const admin = rosterApi(kc);
  const [opNs, nsA, nsB, unserved] = await Promise.all(
    ["roster", "a", "b", "unserved"].map((p) => testNamespace(t, p)),
  );
  const chart = await chartedOperator(opNs!, [nsA!, nsB!], { probeSecrets: { enabled: true } }, (role) =>
    role.metadata.namespace === nsB ? withoutSecrets(role) : role,
  );
  const client = kubeClient(chart.sa);
  for (const [namespace, value] of [
    [nsA!, "secret-of-a"],
    [nsB!, "secret-of-b"],
    [unserved!, "secret-of-unserved"],
  ] as const) {
    await admin.createSecret(namespace, "probe-token", { token: value });
  }

  // What the token may do, by review and by a real request.
  assert.equal(await canI(chart.sa, { verb: "get", resource: "secrets", namespace: nsA! }), true);
  assert.equal(await canI(chart.sa, { verb: "list", resource: "secrets", namespace: nsA! }), false);
  assert.equal(await canI(chart.sa, { verb: "watch", resource: "secrets", namespace: nsA! }), false);
  assert.equal(await canI(chart.sa, { verb: "get", resource: "secrets", namespace: nsB! }), false);
  assert.equal(await canI(chart.sa, { verb: "get", resource: "secrets", namespace: unserved! }), false);
  assert.equal(await canI(chart.sa, { verb: "get", resource: "secrets", namespace: opNs! }), false);
  const got = await client.request<{ data: Record<string, string> }>({
    method: "GET",
    path: `/api/v1/namespaces/${nsA}/secrets/probe-token`,
  });
  assert.equal(Buffer.from(got.data.token!, "base64").toString(), "secret-of-a");
  await refused(
    "GET a Secret in an unserved namespace",
    client.request({ method: "GET", path: `/api/v1/namespaces/${unserved}/secrets/probe-token` }),
  );
  await refused(
    "list Secrets in a served namespace",
    client.request({ method: "GET", path: `/api/v1/namespaces/${nsA}/secrets` }),
  );

  const targets = await httpTargets(t, 3);
  const withToken = (index: number) =>
    webInstance(targets[index]!, index, {
      healthCheck: {
        probes: [
          {
            type: "http",
            http: {
              host: targets[index]!.host,
              port: "http",
              path: "/healthz",
              headers: [
                { name: "X-Token", valueFrom: { secretKeyRef: { name: "probe-token", key: "token" } } },
              ],
            },
          },
        ],
        ...FAST,
      },
    });
  await admin.createInstance(nsA!, "web-1", withToken(0));
  await admin.createInstance(nsB!, "web-1", withToken(1));
  await admin.createInstance(nsB!, "web-2", webInstance(targets[2]!, 2));
  const operator = await chart.start(t, "replica-a");

  // A: the Secret is read from A and sent; the instance is healthy and published.
  await eventually(
    async () => {
      const si = await admin.getInstance(nsA!, "web-1");
      return si.status?.healthy === true && (await admin.readyAddresses(nsA!, "web")).join() === "192.0.2.1"
        ? true
        : undefined;
    },
    { what: "A's web-1 healthy and published", timeoutMs: 15_000, intervalMs: 200 },
  );
  assert.equal(targets[0]!.lastHeaders?.["x-token"], "secret-of-a");
  // B: the instance without a Secret works all the same.
  await eventually(
    async () => ((await admin.readyAddresses(nsB!, "web")).join() === "192.0.2.3" ? true : undefined),
    { what: "B's web-2 published", timeoutMs: 15_000, intervalMs: 200 },
  );
  assert.equal(targets[1]!.hits, 0, "B's web-1 is never probed (its header is unreadable)");

  // B's web-1 names a Secret the operator may not read: a condition, and the operator keeps working.
  const si = await eventually(
    async () => {
      const s = await admin.getInstance(nsB!, "web-1");
      return condition(s, "Healthy")?.reason === "SecretForbidden" ? s : undefined;
    },
    { what: "SecretForbidden on B's web-1", timeoutMs: 15_000, intervalMs: 200 },
  );
  assert.equal(condition(si, "Healthy")?.status, "False");
  assert.equal(condition(si, "Ready")?.status, "False");
  assert.equal(si.status?.healthy, false);
  // Settled: the forbidden read is not retried as a failing reconcile.
  const errors = () =>
    metricSum(operator, "controller_runtime_reconcile_errors_total", { controller: "serviceinstance" });
  const errorsBefore = await errors();
  await sleep(3000);
  assert.equal(await errors(), errorsBefore, "no reconcile error keeps coming back for the forbidden Secret");
  assert.ok(!(await admin.readyAddresses(nsB!, "web")).includes("192.0.2.2"), "B's web-1 never published");

  // The operator keeps working in both namespaces: a failure in B and in A is published.
  targets[2]!.healthy = false;
  targets[0]!.healthy = false;
  await eventually(
    async () =>
      (await admin.readyAddresses(nsB!, "web")).length === 0 &&
      (await admin.readyAddresses(nsA!, "web")).length === 0
        ? true
        : undefined,
    { what: "both failures unpublished", timeoutMs: 10_000, intervalMs: 200 },
  );
  assert.equal(targets[1]!.hits, 0, "B's web-1 still never probed");

  // B's admin grants the chart's Secret rule after all: the instance recovers on its own (the
  // operator looks again; nothing watches Secrets) and is probed with B's Secret, not A's.
  const roleB = chart.objects.find((o) => o.kind === "Role" && o.metadata.namespace === nsB)!;
  await kubeClient(kc).request({
    method: "PATCH",
    path: resourcePath(rbacTypes.Role, { namespace: nsB!, name: roleB.metadata.name }),
    contentType: "application/merge-patch+json",
    body: { rules: (roleB as Manifest & { rules: V1PolicyRule[] }).rules },
  });
  await eventually(
    async () => ((await admin.getInstance(nsB!, "web-1")).status?.healthy === true ? true : undefined),
    { what: "B's web-1 healthy once its Secret may be read", timeoutMs: 25_000, intervalMs: 250 },
  );
  assert.equal(targets[1]!.lastHeaders?.["x-token"], "secret-of-b");
  t.diagnostic(`403 answers to the operator (B's Secret reads): ${await forbidden(operator)}`);
});
