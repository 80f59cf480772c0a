// /metrics behind the API server's authentication and authorization
// (`metrics.auth: kubernetes`), against the real sandbox: the manager runs as
// a ServiceAccount holding only the chart's review RBAC (create TokenReviews
// and SubjectAccessReviews), and scrapers present ServiceAccount tokens from
// the TokenRequest API. No token: 401; a token whose account may not get
// /metrics: 403; with the metrics-reader ClusterRole: 200. /healthz and
// /readyz answer without credentials on their own port, and over HTTPS
// (`metrics.tls`) the same rules hold.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { CoreV1Api, type KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { createManager, type ManagerOptions } from "../../../src/kube/manager.ts";
import { serviceAccountKubeConfig } from "../../faults/support.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";
import { testCerts } from "../../support/servers.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-metrics-auth-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

/** A ClusterRole and its binding to `namespace/account`, both deleted after the test. */
async function grant(
  t: TestContext,
  kc: KubeConfig,
  name: string,
  rules: { apiGroups?: string[]; resources?: string[]; nonResourceURLs?: string[]; verbs: string[] }[],
  namespace: string,
  account: string,
): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({ body: { metadata: { name }, rules } });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
      subjects: [{ kind: "ServiceAccount", name: account, namespace }],
    },
  });
  t.after(async () => {
    await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    await rbac.deleteClusterRole({ name }).catch(() => undefined);
  });
}

async function token(kc: KubeConfig, namespace: string, account: string): Promise<string> {
  const r = await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: account,
    namespace,
    body: { spec: { expirationSeconds: 600 } },
  });
  if (!r.status?.token) throw new Error(`no token for ${namespace}/${account}`);
  return r.status.token;
}

interface Setup {
  ns: string;
  reader: string;
  stranger: string;
}

/** The operator's, the reader's and a stranger's ServiceAccounts, with the chart's RBAC for the first two. */
async function setup(t: TestContext, kc: KubeConfig): Promise<Setup & { operatorKc: KubeConfig }> {
  const ns = await testNamespace(t, "metrics-auth");
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of ["roster", "prometheus", "stranger"]) {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  }
  // The chart's rules (charts/roster/templates/rbac.yaml): the operator may create reviews,
  // and roster-metrics-reader grants get on /metrics.
  await grant(
    t,
    kc,
    `${ns}-auth`,
    [
      { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
      { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
    ],
    ns,
    "roster",
  );
  await grant(
    t,
    kc,
    `${ns}-metrics-reader`,
    [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }],
    ns,
    "prometheus",
  );
  return {
    ns,
    reader: await token(kc, ns, "prometheus"),
    stranger: await token(kc, ns, "stranger"),
    operatorKc: await serviceAccountKubeConfig(kc, ns, "roster", 600),
  };
}

async function startManager(t: TestContext, kc: KubeConfig, extra: Partial<ManagerOptions>) {
  const m = createManager({
    kubeConfig: kc,
    healthPort: 0,
    metricsPort: 0,
    bindAddress: "127.0.0.1",
    metricsAuth: "kubernetes",
    ...extra,
  });
  await m.start();
  t.after(() => m.stop());
  return m.ports() as { health: number; metrics: number };
}

/** GET over HTTP(S) with an optional bearer token: status and body. */
function get(
  url: string,
  opts: { token?: string; ca?: string } = {},
): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  if (!url.startsWith("https:")) {
    return fetch(url, { headers }).then(async (r) => ({ status: r.status, body: await r.text() }));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, ca: opts.ca }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("metrics.auth kubernetes: no token 401, no RBAC 403, metrics-reader 200; health needs no token", async (t) => {
  const { kc } = await testCluster();
  const s = await setup(t, kc);
  const ports = await startManager(t, s.operatorKc, {});
  assert.notEqual(ports.health, ports.metrics, "separate listeners");
  const metrics = `http://127.0.0.1:${ports.metrics}/metrics`;

  assert.equal((await get(metrics)).status, 401);
  assert.equal((await get(metrics, { token: "not-a-token" })).status, 401);
  const forbidden = await get(metrics, { token: s.stranger });
  assert.equal(forbidden.status, 403);
  assert.match(forbidden.body, new RegExp(`system:serviceaccount:${s.ns}:stranger`));
  const ok = await get(metrics, { token: s.reader });
  assert.equal(ok.status, 200);
  assert.match(ok.body, /# TYPE rest_client_requests_total counter/);

  for (const path of ["/healthz", "/readyz"]) {
    assert.equal((await get(`http://127.0.0.1:${ports.health}${path}`)).status, 200, path);
  }
  assert.equal(
    (await get(`http://127.0.0.1:${ports.health}/metrics`)).status,
    404,
    "no /metrics on the health port",
  );
});

test("metrics.tls: the same rules over HTTPS", async (t) => {
  const { kc } = await testCluster();
  const s = await setup(t, kc);
  const certs = testCerts();
  const certFile = join(dir, `${s.ns}.crt`);
  const keyFile = join(dir, `${s.ns}.key`);
  writeFileSync(certFile, certs.cert);
  writeFileSync(keyFile, certs.key);
  const ports = await startManager(t, s.operatorKc, { metricsTls: { certFile, keyFile } });
  const metrics = `https://127.0.0.1:${ports.metrics}/metrics`;
  assert.equal((await get(metrics, { ca: certs.ca })).status, 401);
  assert.equal((await get(metrics, { ca: certs.ca, token: s.stranger })).status, 403);
  assert.equal((await get(metrics, { ca: certs.ca, token: s.reader })).status, 200);
  assert.equal((await get(`http://127.0.0.1:${ports.health}/healthz`)).status, 200);
});

test("metrics.auth none: /metrics answers anyone (the operator's default outside the chart)", async (t) => {
  const { kc } = await testCluster();
  const ports = await startManager(t, kc, { metricsAuth: "none" });
  assert.equal((await get(`http://127.0.0.1:${ports.metrics}/metrics`)).status, 200);
});
