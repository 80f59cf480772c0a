/**
 * The Helm chart, rendered offline: `helm lint`, `helm template` with several
 * value sets (what objects exist, the exact RBAC rules, the security
 * settings, the operator config the operator's own schema accepts), and
 * values.schema.json rejecting bad values with a message naming the field.
 * Needs bin/helm (`make helm`), not a cluster.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1Deployment,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
  V1Service,
} from "@kubernetes/client-node";
import { derivedHeapFlags, heapLimitsFor } from "../../../src/cli/v8-limits.ts";
import { parseConfig } from "../../../src/config/load.ts";
import type { OperatorConfig } from "../../../src/config/schema.ts";
import {
  chartDir,
  helm,
  kinds,
  kubeVersion,
  type Manifest,
  one,
  render,
  renderFailure,
} from "../../support/chart.ts";

const release = "rel";
const ns = "roster-system";
const fullname = "rel-roster";

/** Every (apiGroup, resource, verb) a rule set grants, as `group/resource:verb` ("core" for ""). */
function grants(rules: V1PolicyRule[] | undefined, opts: { withNames?: boolean } = {}): string[] {
  const out: string[] = [];
  for (const r of rules ?? []) {
    for (const g of r.apiGroups ?? []) {
      for (const res of r.resources ?? []) {
        for (const v of r.verbs) {
          const names = opts.withNames && r.resourceNames ? `[${r.resourceNames.join(",")}]` : "";
          out.push(`${g || "core"}/${res}${names}:${v}`);
        }
      }
    }
  }
  return out.sort();
}

const crud = ["get", "list", "watch", "create", "update", "patch", "delete"];
/** The least privilege Roster needs in a namespace it serves; anything more is a test failure. */
const servedGrants = [
  ...["get", "list", "watch", "delete"].map((v) => `roster.dev/serviceinstances:${v}`),
  ...["get", "list", "watch"].map((v) => `roster.dev/discoverypolicies:${v}`),
  ...["get", "update", "patch"].map((v) => `roster.dev/serviceinstances/status:${v}`),
  ...["get", "update", "patch"].map((v) => `roster.dev/discoverypolicies/status:${v}`),
  "roster.dev/serviceinstances/finalizers:update",
  "roster.dev/discoverypolicies/finalizers:update",
  ...crud.map((v) => `core/services:${v}`),
  ...crud.map((v) => `core/configmaps:${v}`),
  ...crud.map((v) => `discovery.k8s.io/endpointslices:${v}`),
  ...["get", "list", "watch"].map((v) => `coordination.k8s.io/leases:${v}`),
  "events.k8s.io/events:create",
  "events.k8s.io/events:patch",
  "core/events:create",
  "core/events:patch",
].sort();
const secretGrants = ["core/secrets:get"];

function configOf(objects: Manifest[]): OperatorConfig {
  const cm = one<V1ConfigMap>(objects, "ConfigMap", `${fullname}-config`);
  const text = cm.data?.["config.yaml"];
  assert.ok(text, "the ConfigMap has config.yaml");
  return parseConfig(text, "rendered ConfigMap");
}

function restartChecksum(objects: Manifest[]): string {
  const d = one<V1Deployment>(objects, "Deployment", fullname);
  const sum = d.spec?.template.metadata?.annotations?.["checksum/restart-config"];
  assert.match(sum ?? "", /^[0-9a-f]{64}$/);
  return sum!;
}

test("helm lint --strict passes for each value set", async () => {
  const sets: string[][] = [
    [],
    ["--set", "watchNamespaces={team-a,team-b}"],
    ["--set", "probeSecrets.enabled=true"],
    ["--set", "metrics.serviceMonitor.enabled=true"],
    ["--set", "metrics.auth=none", "--set", "metrics.bindAddress=127.0.0.1"],
    ["--set", "metrics.tls.secretName=roster-metrics-tls"],
    ["--set", "replicaCount=1", "--set", "leaderElection.enabled=false"],
    ["--set", "probing.maxPerHost=4", "--set", "probing.destinations.allowLoopback=true"],
    ["--set", "publishing.batchWindow=50ms", "--set", "publishing.startupHold=0s"],
  ];
  for (const set of sets) {
    const r = await helm(["lint", "--strict", chartDir, "--kube-version", kubeVersion, ...set]);
    assert.equal(r.code, 0, `helm lint ${set.join(" ")}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

describe("default values", () => {
  test("render exactly the operator's objects, cluster-wide", async () => {
    const objects = await render({}, { release, namespace: ns });
    assert.deepEqual(kinds(objects), [
      "ClusterRole", // served rules
      "ClusterRole", // metrics-auth (TokenReview, SubjectAccessReview)
      "ClusterRole", // metrics-reader (for scrapers)
      "ClusterRoleBinding",
      "ClusterRoleBinding",
      "ConfigMap",
      "Deployment",
      "PodDisruptionBudget",
      "Role",
      "RoleBinding",
      "Service",
      "ServiceAccount",
    ]);
    for (const o of objects) {
      if (!o.kind.startsWith("Cluster")) assert.equal(o.metadata.namespace, ns, `${o.kind} namespace`);
      assert.equal(o.metadata.labels?.["app.kubernetes.io/instance"], release);
    }
  });

  test("a Deployment of 2 replicas with leader election, restricted security, probes and a read-only root", async () => {
    const objects = await render({}, { release, namespace: ns });
    const d = one<V1Deployment>(objects, "Deployment", fullname);
    assert.equal(d.spec?.replicas, 2);
    const pod = d.spec!.template.spec!;
    assert.equal(pod.serviceAccountName, fullname);
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.equal(pod.containers.length, 1);
    const c = pod.containers[0]!;
    assert.deepEqual(c.args, ["run", "--config", "/etc/roster/config.yaml"]);
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.deepEqual(
      c.ports?.map((p) => [p.name, p.containerPort]),
      [
        ["metrics", 8080],
        ["health", 8081],
      ],
    );
    assert.deepEqual(c.livenessProbe?.httpGet, { path: "/healthz", port: "health" });
    assert.deepEqual(c.readinessProbe?.httpGet, { path: "/readyz", port: "health" });
    assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory);
    // No NODE_OPTIONS: `roster run` derives V8's limits from the memory limit, leaving room for
    // native memory. Sized for 4,000 instances with maximal metadata (docs/scaling.md, "Sizing
    // the memory limit"): old space 2 × (45 MiB + 36 KiB × 4,000) rounded up, limit = that + 256 MiB.
    assert.equal(
      c.env?.find((e) => e.name === "NODE_OPTIONS"),
      undefined,
    );
    assert.equal(c.resources?.limits?.memory, "640Mi");
    assert.deepEqual(heapLimitsFor(640 * 2 ** 20), { oldSpaceMiB: 384, semiSpaceMiB: 16 });
    // /tmp is the only writable path: an emptyDir, next to the read-only config volume.
    assert.deepEqual(
      c.volumeMounts?.map((m) => [m.mountPath, m.readOnly ?? false]),
      [
        ["/etc/roster", true],
        ["/tmp", false],
      ],
    );
    const tmp = pod.volumes?.find((v) => v.name === "tmp");
    assert.ok(tmp?.emptyDir, "/tmp is an emptyDir");
    assert.equal(pod.volumes?.find((v) => v.name === "config")?.configMap?.name, `${fullname}-config`);
    // Two replicas prefer different nodes.
    assert.ok(pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.length);
  });

  test("heapLimitMiB overrides the derived heap limit through NODE_OPTIONS", async () => {
    const objects = await render({ heapLimitMiB: 1024 }, { release, namespace: ns });
    const c = one<V1Deployment>(objects, "Deployment", fullname).spec!.template.spec!.containers[0]!;
    const options = c.env?.find((e) => e.name === "NODE_OPTIONS")?.value ?? "";
    assert.equal(options, "--max-old-space-size=1024");
    // roster run then keeps Node's flags as they are.
    assert.equal(derivedHeapFlags([], options, 640 * 2 ** 20, 2 ** 40), undefined);
  });

  test("the config file matches the operator's schema and the chart's ports and Lease", async () => {
    const objects = await render({}, { release, namespace: ns });
    const config = configOf(objects);
    assert.equal(config.leaderElection.enabled, true);
    assert.equal(config.leaderElection.namespace, ns);
    assert.equal(config.leaderElection.leaseName, `${fullname}-leader`);
    assert.deepEqual(config.namespaces, []);
    assert.equal(config.metrics.port, 8080);
    assert.equal(config.health.port, 8081);
    assert.equal(config.logLevel, "info");
    // Probing and publishing: the operator's defaults; no Secret reads (no RBAC for them either).
    const defaults = parseConfig("");
    assert.deepEqual(config.probing, defaults.probing);
    assert.equal(config.probing.secrets, false);
    assert.deepEqual(config.publishing, defaults.publishing);
  });

  test("RBAC: exactly the served rules cluster-wide, and only its own Lease namespaced", async () => {
    const objects = await render({}, { release, namespace: ns });
    const cr = one<V1ClusterRole>(objects, "ClusterRole", fullname);
    assert.deepEqual(grants(cr.rules), servedGrants);
    const crb = one<V1ClusterRoleBinding>(objects, "ClusterRoleBinding", fullname);
    assert.deepEqual(crb.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: fullname,
    });
    assert.deepEqual(crb.subjects, [{ kind: "ServiceAccount", name: fullname, namespace: ns }]);

    const le = one<V1Role>(objects, "Role", `${fullname}-leader-election`, ns);
    assert.deepEqual(grants(le.rules, { withNames: true }), [
      "coordination.k8s.io/leases:create",
      `coordination.k8s.io/leases[${fullname}-leader]:get`,
      `coordination.k8s.io/leases[${fullname}-leader]:patch`,
      `coordination.k8s.io/leases[${fullname}-leader]:update`,
    ]);
    const rb = one<V1RoleBinding>(objects, "RoleBinding", `${fullname}-leader-election`, ns);
    assert.deepEqual(rb.subjects, [{ kind: "ServiceAccount", name: fullname, namespace: ns }]);
  });

  test("the metrics Service selects the operator pods; the PDB keeps one replica", async () => {
    const objects = await render({}, { release, namespace: ns });
    const svc = one<V1Service>(objects, "Service", `${fullname}-metrics`);
    const podLabels = one<V1Deployment>(objects, "Deployment").spec!.template.metadata!.labels!;
    for (const [k, v] of Object.entries(svc.spec!.selector!)) assert.equal(podLabels[k], v, `selector ${k}`);
    assert.deepEqual(
      svc.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]),
      [["metrics", 8080, "metrics"]],
    );
    const pdb = one(objects, "PodDisruptionBudget", fullname);
    assert.deepEqual(pdb.spec, {
      maxUnavailable: 1,
      selector: { matchLabels: svc.spec!.selector },
    });
  });
});

test("watchNamespaces: a Role and RoleBinding per namespace, no cluster-wide grant on any namespace's objects", async () => {
  const objects = await render({ watchNamespaces: ["team-a", "team-b"] }, { release, namespace: ns });
  // Only the metrics ClusterRoles (reviews and /metrics are cluster-scoped; they reach no object).
  assert.deepEqual(
    objects.filter((o) => o.kind.startsWith("Cluster")).map((o) => `${o.kind} ${o.metadata.name}`),
    [
      `ClusterRole ${fullname}-metrics-auth`,
      `ClusterRole ${fullname}-metrics-reader`,
      `ClusterRoleBinding ${fullname}-metrics-auth`,
    ],
  );
  const none = await render(
    { watchNamespaces: ["team-a"], metrics: { auth: "none" }, rbac: { create: true } },
    { release, namespace: ns },
  );
  assert.deepEqual(
    none.filter((o) => o.kind.startsWith("Cluster")).map((o) => `${o.kind} ${o.metadata.name}`),
    [`ClusterRole ${fullname}-metrics-reader`],
    "metrics.auth none: no review rights",
  );
  for (const team of ["team-a", "team-b"]) {
    const role = one<V1Role>(objects, "Role", fullname, team);
    assert.deepEqual(grants(role.rules), servedGrants);
    const rb = one<V1RoleBinding>(objects, "RoleBinding", fullname, team);
    assert.deepEqual(rb.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: fullname });
    assert.deepEqual(rb.subjects, [{ kind: "ServiceAccount", name: fullname, namespace: ns }]);
  }
  one(objects, "Role", `${fullname}-leader-election`, ns);
  assert.deepEqual(configOf(objects).namespaces, ["team-a", "team-b"]);
});

test("probeSecrets.enabled: get on Secrets, only where Roster serves", async () => {
  const cluster = await render({ probeSecrets: { enabled: true } }, { release, namespace: ns });
  assert.deepEqual(
    grants(one<V1ClusterRole>(cluster, "ClusterRole", fullname).rules),
    [...servedGrants, ...secretGrants].sort(),
  );
  // The operator is told to read them (probing.secrets), exactly when RBAC lets it.
  assert.equal(configOf(cluster).probing.secrets, true);
  const scoped = await render(
    { probeSecrets: { enabled: true }, watchNamespaces: ["team-a"] },
    { release, namespace: ns },
  );
  assert.equal(configOf(scoped).probing.secrets, true);
  assert.deepEqual(grants(one<V1Role>(scoped, "Role", fullname, "team-a").rules), [
    ...[...servedGrants, ...secretGrants].sort(),
  ]);
  const le = one<V1Role>(scoped, "Role", `${fullname}-leader-election`, ns);
  assert.ok(
    !grants(le.rules).some((g) => g.includes("secrets")),
    "no Secret access in the release namespace",
  );
});

test("sharding.enabled: membership Leases in the release namespace only, and the config says so", async () => {
  const off = await render({}, { release, namespace: ns });
  assert.equal(configOf(off).sharding.enabled, false);
  const objects = await render(
    { sharding: { enabled: true, leaseDuration: "20s" } },
    { release, namespace: ns },
  );
  const config = configOf(objects);
  assert.deepEqual(
    { enabled: config.sharding.enabled, leaseDuration: config.sharding.leaseDuration },
    { enabled: true, leaseDuration: "20s" },
  );
  assert.equal(config.sharding.group, fullname);
  const le = one<V1Role>(objects, "Role", `${fullname}-leader-election`, ns);
  for (const verb of ["get", "list", "watch", "patch", "delete"]) {
    assert.ok(grants(le.rules).includes(`coordination.k8s.io/leases:${verb}`), `${verb} leases`);
  }
  const r = await renderFailure({
    sharding: { enabled: true },
    replicaCount: 1,
    leaderElection: { enabled: false },
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /sharding\.enabled needs leaderElection\.enabled/);
});

test("xds.enabled: the config enables the server, the pods expose the port, a Service selects every replica", async () => {
  const off = await render({}, { release, namespace: ns });
  assert.equal(configOf(off).xds.enabled, false);
  assert.ok(!off.some((o) => o.kind === "Service" && o.metadata?.name === `${fullname}-xds`));
  const objects = await render(
    { xds: { enabled: true, port: 18001, access: [{ nodeIdPrefix: "team-a/", namespaces: ["a"] }] } },
    { release, namespace: ns },
  );
  const config = configOf(objects);
  assert.deepEqual(
    { enabled: config.xds.enabled, port: config.xds.port, access: config.xds.access },
    { enabled: true, port: 18001, access: [{ nodeIdPrefix: "team-a/", namespaces: ["a"] }] },
  );
  const deployment = one<V1Deployment>(objects, "Deployment", fullname, ns);
  const ports = deployment.spec?.template.spec?.containers[0]?.ports ?? [];
  assert.ok(ports.some((p) => p.name === "xds" && p.containerPort === 18001));
  const svc = one<V1Service>(objects, "Service", `${fullname}-xds`, ns);
  assert.equal(svc.spec?.ports?.[0]?.targetPort, "xds");
  assert.equal(svc.spec?.ports?.[0]?.appProtocol, "grpc");
  assert.deepEqual(svc.spec?.selector, deployment.spec?.selector.matchLabels);
});

describe("/metrics protection", () => {
  test("default: auth kubernetes on its own listener, health unauthenticated on 8081, review RBAC, a reader role", async () => {
    const objects = await render({}, { release, namespace: ns });
    const config = configOf(objects);
    assert.deepEqual(config.metrics, { port: 8080, bindAddress: "0.0.0.0", auth: "kubernetes" });
    assert.deepEqual(config.health, { port: 8081, bindAddress: "0.0.0.0" });
    const auth = one<V1ClusterRole>(objects, "ClusterRole", `${fullname}-metrics-auth`);
    assert.deepEqual(grants(auth.rules), [
      "authentication.k8s.io/tokenreviews:create",
      "authorization.k8s.io/subjectaccessreviews:create",
    ]);
    const binding = one<V1ClusterRoleBinding>(objects, "ClusterRoleBinding", `${fullname}-metrics-auth`);
    assert.equal(binding.roleRef.name, `${fullname}-metrics-auth`);
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: fullname, namespace: ns }]);
    const reader = one<V1ClusterRole>(objects, "ClusterRole", `${fullname}-metrics-reader`);
    assert.deepEqual(reader.rules, [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }]);
    assert.ok(
      !objects.some(
        (o) => o.metadata.name === `${fullname}-metrics-reader` && o.kind === "ClusterRoleBinding",
      ),
      "bound to nobody unless metrics.reader.subjects says so",
    );
  });

  test("metrics.reader.subjects are bound to the reader role", async () => {
    const objects = await render(
      {
        metrics: {
          reader: {
            subjects: [
              { kind: "ServiceAccount", name: "prometheus-k8s", namespace: "monitoring" },
              { kind: "ServiceAccount", name: "local-scraper" },
              { kind: "Group", name: "ops" },
            ],
          },
        },
      },
      { release, namespace: ns },
    );
    const b = one<V1ClusterRoleBinding>(objects, "ClusterRoleBinding", `${fullname}-metrics-reader`);
    assert.equal(b.roleRef.name, `${fullname}-metrics-reader`);
    assert.deepEqual(b.subjects, [
      { kind: "ServiceAccount", name: "prometheus-k8s", namespace: "monitoring" },
      { kind: "ServiceAccount", name: "local-scraper", namespace: ns },
      { kind: "Group", name: "ops", apiGroup: "rbac.authorization.k8s.io" },
    ]);
  });

  test("metrics.bindAddress 127.0.0.1 and auth none reach the config; health keeps its own address", async () => {
    const config = configOf(
      await render({ metrics: { auth: "none", bindAddress: "127.0.0.1" } }, { release, namespace: ns }),
    );
    assert.deepEqual(config.metrics, { port: 8080, bindAddress: "127.0.0.1", auth: "none" });
    assert.equal(config.health.bindAddress, "0.0.0.0", "the kubelet still reaches /healthz and /readyz");
  });

  test("metrics.tls.secretName: the Secret is mounted read-only and the config serves HTTPS from it", async () => {
    const objects = await render(
      { metrics: { tls: { secretName: "metrics-cert" } } },
      { release, namespace: ns },
    );
    assert.deepEqual(configOf(objects).metrics.tls, {
      certFile: "/etc/roster/metrics-tls/tls.crt",
      keyFile: "/etc/roster/metrics-tls/tls.key",
    });
    const pod = one<V1Deployment>(objects, "Deployment").spec!.template.spec!;
    assert.equal(pod.volumes?.find((v) => v.name === "metrics-tls")?.secret?.secretName, "metrics-cert");
    assert.deepEqual(
      pod.containers[0]!.volumeMounts?.find((m) => m.name === "metrics-tls"),
      { name: "metrics-tls", mountPath: "/etc/roster/metrics-tls", readOnly: true },
    );
  });

  test("xds.tls: the Secrets are mounted read-only and the config serves mTLS with certificate rules", async () => {
    const access = [
      { clientCertificate: { uri: "spiffe://example.org/ns/a/sa/orders" }, namespaces: ["a"] },
      { nodeIdPrefix: "b/", clientCertificate: { dns: "consumer.b.svc" }, namespaces: ["b"] },
    ];
    const objects = await render(
      { xds: { enabled: true, tls: { secretName: "xds-cert", clientCaSecretName: "xds-ca" }, access } },
      { release, namespace: ns },
    );
    const config = configOf(objects);
    assert.deepEqual(config.xds.tls, {
      certFile: "/etc/roster/xds-tls/tls.crt",
      keyFile: "/etc/roster/xds-tls/tls.key",
      clientCaFile: "/etc/roster/xds-client-ca/ca.crt",
    });
    assert.deepEqual(config.xds.access, access);
    const pod = one<V1Deployment>(objects, "Deployment").spec!.template.spec!;
    assert.equal(pod.volumes?.find((v) => v.name === "xds-tls")?.secret?.secretName, "xds-cert");
    assert.equal(pod.volumes?.find((v) => v.name === "xds-client-ca")?.secret?.secretName, "xds-ca");
    assert.deepEqual(
      pod.containers[0]!.volumeMounts?.filter((m) => m.name.startsWith("xds-")),
      [
        { name: "xds-tls", mountPath: "/etc/roster/xds-tls", readOnly: true },
        { name: "xds-client-ca", mountPath: "/etc/roster/xds-client-ca", readOnly: true },
      ],
    );
  });

  test("TLS Secrets are mounted as directories, never by subPath, so renewed certificates reach the running operator", async () => {
    // The kubelet updates a Secret volume by swapping its `..data` symlink; a
    // subPath mount pins the file it first resolved and never sees a renewal.
    const objects = await render(
      {
        metrics: { tls: { secretName: "metrics-cert" } },
        xds: { enabled: true, tls: { secretName: "xds-cert", clientCaSecretName: "xds-ca" } },
      },
      { release, namespace: ns },
    );
    const pod = one<V1Deployment>(objects, "Deployment").spec!.template.spec!;
    const secretVolumes = (pod.volumes ?? []).filter((v) => v.secret).map((v) => v.name);
    assert.deepEqual(secretVolumes.sort(), ["metrics-tls", "xds-client-ca", "xds-tls"]);
    const mounts = pod.containers[0]!.volumeMounts!.filter((m) => secretVolumes.includes(m.name));
    assert.equal(mounts.length, 3);
    for (const m of mounts) {
      assert.equal(m.subPath, undefined, `${m.name} mounted by subPath`);
      assert.equal(m.subPathExpr, undefined, `${m.name} mounted by subPathExpr`);
    }
  });

  test("xds: a client CA without a server certificate, or an empty access rule, fails naming it", async () => {
    const noCert = await renderFailure({ xds: { enabled: true, tls: { clientCaSecretName: "xds-ca" } } });
    assert.notEqual(noCert.code, 0);
    assert.match(noCert.stderr, /xds\.tls\.clientCaSecretName needs xds\.tls\.secretName/);
    const empty = await renderFailure({ xds: { enabled: true, access: [{ namespaces: ["a"] }] } });
    assert.notEqual(empty.code, 0);
    assert.match(empty.stderr, /xds\/access\/0/);
  });

  test("values.schema.json refuses an unknown metrics.auth", async () => {
    const r = await renderFailure({ metrics: { auth: "basic" } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /metrics\/auth/);
  });
});

describe("ServiceMonitor", () => {
  test("not rendered when the cluster does not serve monitoring.coreos.com/v1", async () => {
    const objects = await render(
      { metrics: { serviceMonitor: { enabled: true } } },
      { release, namespace: ns },
    );
    assert.ok(!objects.some((o) => o.kind === "ServiceMonitor"));
  });

  test("rendered when the API exists, selecting the metrics Service", async () => {
    const objects = await render(
      { metrics: { serviceMonitor: { enabled: true, interval: "15s", labels: { release: "prom" } } } },
      { release, namespace: ns, apiVersions: ["monitoring.coreos.com/v1"] },
    );
    const sm = one(objects, "ServiceMonitor", fullname);
    assert.equal(sm.apiVersion, "monitoring.coreos.com/v1");
    assert.equal(sm.metadata.labels?.release, "prom");
    const spec = sm.spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: { port: string; path: string; interval: string }[];
    };
    const svcLabels = one<V1Service>(objects, "Service", `${fullname}-metrics`).metadata!.labels!;
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) assert.equal(svcLabels[k], v, k);
    const podLabels = one<V1Deployment>(objects, "Deployment").spec!.template.metadata!.labels!;
    assert.notEqual(
      podLabels["app.kubernetes.io/component"],
      "metrics",
      "does not select the pods' own labels",
    );
    assert.deepEqual(spec.endpoints, [
      {
        port: "metrics",
        path: "/metrics",
        interval: "15s",
        scrapeTimeout: "10s",
        bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
      },
    ]);
  });

  test("metrics.auth none: no token; metrics.tls: scheme https with the given tlsConfig", async () => {
    const apiVersions = ["monitoring.coreos.com/v1"];
    const plain = await render(
      { metrics: { auth: "none", serviceMonitor: { enabled: true } } },
      { release, namespace: ns, apiVersions },
    );
    assert.deepEqual((one(plain, "ServiceMonitor").spec as { endpoints: unknown[] }).endpoints, [
      { port: "metrics", path: "/metrics", interval: "30s", scrapeTimeout: "10s" },
    ]);
    const tls = await render(
      {
        metrics: {
          tls: { secretName: "metrics-cert" },
          serviceMonitor: {
            enabled: true,
            tlsConfig: { serverName: "rel-roster-metrics.roster-system.svc" },
          },
        },
      },
      { release, namespace: ns, apiVersions },
    );
    const [endpoint] = (one(tls, "ServiceMonitor").spec as { endpoints: Record<string, unknown>[] })
      .endpoints;
    assert.equal(endpoint!.scheme, "https");
    assert.deepEqual(endpoint!.tlsConfig, { serverName: "rel-roster-metrics.roster-system.svc" });
  });

  test("needs the metrics Service", async () => {
    const r = await renderFailure(
      { metrics: { service: { enabled: false }, serviceMonitor: { enabled: true } } },
      { apiVersions: ["monitoring.coreos.com/v1"] },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /metrics\.serviceMonitor\.enabled needs metrics\.service\.enabled/);
  });
});

test("operator settings from values reach the config file, as the operator parses them", async () => {
  const objects = await render(
    {
      logLevel: "debug",
      leaderElection: {
        enabled: true,
        leaseName: "custom-lease",
        leaseDuration: "30s",
        renewDeadline: "20s",
      },
      concurrency: { default: 8, perController: { serviceinstances: 16 } },
      watch: { inactivityTimeout: "5m", resyncPeriod: "10m" },
      defaultPolicy: {
        healthCheck: { probes: [{ type: "tcp" }], interval: "20s", failureThreshold: 5 },
        loadBalancing: { strategy: "LeastConnections" },
        deregisterAfter: "24h",
      },
      metrics: { port: 9090 },
      health: { port: 9091 },
    },
    { release, namespace: ns },
  );
  const config = configOf(objects);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.leaderElection.leaseName, "custom-lease");
  assert.equal(config.leaderElection.leaseDuration, "30s");
  assert.equal(config.concurrency.default, 8);
  assert.deepEqual(config.concurrency.perController, { serviceinstances: 16 });
  assert.equal(config.watch.resyncPeriod, "10m");
  assert.equal(config.defaultPolicy.healthCheck.interval, "20s");
  assert.equal(config.defaultPolicy.loadBalancing.strategy, "LeastConnections");
  assert.deepEqual([config.metrics.port, config.health.port], [9090, 9091]);
  // The container ports, probes and the leader-election Role follow the same values.
  const c = one<V1Deployment>(objects, "Deployment").spec!.template.spec!.containers[0]!;
  assert.deepEqual(
    c.ports?.map((p) => p.containerPort),
    [9090, 9091],
  );
  const le = one<V1Role>(objects, "Role", `${fullname}-leader-election`);
  assert.ok(
    grants(le.rules, { withNames: true }).includes("coordination.k8s.io/leases[custom-lease]:update"),
  );
});

test("probing and publishing values reach the config file, as the operator parses them", async () => {
  const objects = await render(
    {
      probeSecrets: { enabled: true },
      probing: {
        maxConcurrent: 64,
        maxPerHost: 4,
        destinations: { allow: ["10.0.0.0/8", "fd00::/8"], deny: ["10.0.0.1"], allowLoopback: true },
      },
      publishing: { batchWindow: "100ms", startupHold: "5s" },
    },
    { release, namespace: ns },
  );
  const config = configOf(objects);
  // Fields the values leave out keep the operator's defaults.
  const defaults = parseConfig("");
  assert.deepEqual(config.probing, {
    ...defaults.probing,
    maxConcurrent: 64,
    maxPerHost: 4,
    secrets: true,
    destinations: { allow: ["10.0.0.0/8", "fd00::/8"], deny: ["10.0.0.1"], allowLoopback: true },
  });
  assert.deepEqual(config.publishing, { ...defaults.publishing, batchWindow: "100ms", startupHold: "5s" });

  // Partial sections: the rest keeps the operator's defaults (the deny list included).
  const partial = configOf(
    await render(
      { probing: { destinations: { allowLoopback: true } }, publishing: { startupHold: "0s" } },
      { release, namespace: ns },
    ),
  );
  assert.deepEqual(partial.probing, {
    ...defaults.probing,
    destinations: { ...defaults.probing.destinations, allowLoopback: true },
  });
  assert.deepEqual(partial.publishing, { ...defaults.publishing, startupHold: "0s" });
});

test("a value the chart's schema lets through but the operator refuses fails parseConfig naming it", async () => {
  // The chart checks the shape (a duration); the operator checks the range (0s..10s).
  const objects = await render({ publishing: { batchWindow: "1m" } }, { release, namespace: ns });
  assert.throws(() => configOf(objects), /publishing\.batchWindow: /);
});

test("only start-time settings roll the pods; the rest is hot-reloaded", async () => {
  const base = restartChecksum(await render({}, { release, namespace: ns }));
  for (const live of [
    { logLevel: "debug" },
    { defaultPolicy: { deregisterAfter: "1h" } },
    { concurrency: { default: 2 } },
    { probeSecrets: { enabled: true } },
    { probing: { destinations: { allowLoopback: true, deny: ["10.0.0.0/8"] } } },
    { publishing: { batchWindow: "50ms", startupHold: "5s" } },
  ]) {
    const objects = await render(live, { release, namespace: ns });
    assert.equal(restartChecksum(objects), base, `${JSON.stringify(live)} is applied live`);
  }
  for (const restart of [
    { watchNamespaces: ["team-a"] },
    { leaderElection: { enabled: true, leaseDuration: "20s" } },
    { watch: { resyncPeriod: "1h" } },
    // The probe engine's limits are sized at start.
    { probing: { maxConcurrent: 100 } },
    { probing: { maxPerHost: 4 } },
  ]) {
    const objects = await render(restart, { release, namespace: ns });
    assert.notEqual(restartChecksum(objects), base, `${JSON.stringify(restart)} needs a restart`);
  }
});

test("bad values are rejected with a message naming the value", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ replicaCount: 0 }, /at '\/replicaCount': minimum: got 0, want 1/],
    [{ replicas: 3 }, /additional properties 'replicas' not allowed/],
    [{ logLevel: "loud" }, /at '\/logLevel': value must be one of 'trace'/],
    [{ watchNamespaces: ["Team_A"] }, /at '\/watchNamespaces\/0': 'Team_A' does not match pattern/],
    [{ watchNamespaces: ["a", "a"] }, /at '\/watchNamespaces': items at 0 and 1 are equal/],
    [{ leaderElection: { enabled: true, leaseDuration: "15" } }, /at '\/leaderElection\/leaseDuration'/],
    [{ probeSecrets: { enabled: "yes" } }, /at '\/probeSecrets\/enabled': got string, want boolean/],
    [{ metrics: { port: 70000 } }, /at '\/metrics\/port': maximum: got 70,000, want 65,535/],
    [{ image: { digest: "latest" } }, /at '\/image\/digest'/],
    [{ concurrency: { default: 0 } }, /at '\/concurrency\/default': minimum: got 0, want 1/],
    [{ probing: { maxConcurrent: 0 } }, /at '\/probing\/maxConcurrent': minimum: got 0, want 1/],
    // Secret reads are probeSecrets.enabled (with their RBAC), never probing.secrets alone.
    [{ probing: { secrets: true } }, /at '\/probing': additional properties 'secrets' not allowed/],
    [
      { probing: { destinations: { deny: ["metadata.internal"] } } },
      /at '\/probing\/destinations\/deny\/0': 'metadata.internal' does not match pattern/,
    ],
    [{ probing: { destinations: { allowLoopback: "yes" } } }, /at '\/probing\/destinations\/allowLoopback'/],
    [
      { publishing: { batchWindow: "soon" } },
      /at '\/publishing\/batchWindow': 'soon' does not match pattern/,
    ],
    [{ publishing: { delay: "1s" } }, /at '\/publishing': additional properties 'delay' not allowed/],
    [
      { leaderElection: { enabled: false } },
      /leaderElection\.enabled=false needs replicaCount=1: two replicas without leader election/,
    ],
    [
      { serviceAccount: { create: false } },
      /serviceAccount\.name is required when serviceAccount\.create is false/,
    ],
  ];
  for (const [values, message] of cases) {
    const r = await renderFailure(values);
    assert.notEqual(r.code, 0, `${JSON.stringify(values)} must be rejected`);
    assert.match(r.stderr, message, `${JSON.stringify(values)}`);
  }
});

test("renders for the oldest supported Kubernetes and refuses older ones", async () => {
  const ok = await helm(["template", "rel", chartDir, "--kube-version", "v1.30.0"]);
  assert.equal(ok.code, 0, ok.stderr);
  const old = await helm(["template", "rel", chartDir, "--kube-version", "v1.29.9"]);
  assert.notEqual(old.code, 0);
  assert.match(
    old.stderr,
    /chart requires kubeVersion: >=1\.30\.0-0 which is incompatible with Kubernetes v1\.29\.9/,
  );
});
