// `helm install` of Roster's chart on the sandbox node, for real: the image
// built offline (src/dev/image.ts) imported into the node's containerd, the
// chart's default values (image overridden to it, pullPolicy Never), two
// replicas, in a namespace enforcing the restricted Pod Security level. One
// sandbox and one release carry every proof, in order: Ready pods (the
// kubelet's probes), in-cluster config and leader election, probing test
// hosts from the pods, /metrics through the Service, logs and memory through
// the kubelet, a consumer pod through cluster DNS and kube-proxy, the leader
// killed, `helm upgrade` rolling the pods, `helm test`, `helm uninstall`.
// Watchers started from outside record every EndpointSlice and pod change.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request } from "node:https";
import { join, resolve } from "node:path";
import { test } from "node:test";
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import { buildImage as buildRosterImage, IMAGE_REF } from "../../../src/dev/image.ts";
import { repoRoot } from "../../../src/dev/sandbox.ts";
import type { Backend } from "../../../src/dev/testhosts.ts";
import { chartDir, helm, helmOk, valuesFile } from "../../support/chart.ts";
import { eventually } from "../../support/cluster.ts";
import { dataPlaneInstance } from "../../support/dataplane.ts";
import { rosterApi, type SliceWatcher } from "../../support/roster.ts";
import { buildImage, importImage, nodeImages, testNode } from "../node/support.ts";

const RELEASE = "roster";
const ECHO = "roster.local/echo:test";
/** The chart's defaults (values.yaml) this test relies on. */
const LEASE_SECONDS = 15;
const RETRY_SECONDS = 2;

const isReady = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp &&
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** GET on the API server with the kubeconfig's credentials (the admin's), body as text. */
async function apiGet(kc: KubeConfig, path: string): Promise<string> {
  const server = new URL(kc.getCurrentCluster()!.server);
  const opts: import("node:https").RequestOptions = {
    hostname: server.hostname,
    port: server.port,
    path,
    method: "GET",
  };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((done, fail) => {
    const req = request(opts, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () =>
        res.statusCode === 200 ? done(body) : fail(new Error(`GET ${path}: ${res.statusCode} ${body}`)),
      );
    });
    req.on("error", fail);
    req.end();
  });
}

/** GET from the node netns (where kube-proxy's rules are), with a bearer token if given. */
function scrape(netns: string, url: string, token?: string): { code: number; body: string } {
  const out = execFileSync(
    "ip",
    [
      ...["netns", "exec", netns, "curl", "-s", "--max-time", "5", "-w", "\n%{http_code}"],
      ...(token ? ["-H", `Authorization: Bearer ${token}`] : []),
      url,
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  const at = out.lastIndexOf("\n");
  return { code: Number(out.slice(at + 1)), body: out.slice(0, at) };
}

interface PodEvent {
  type: string;
  name: string;
  hash: string;
  ready: boolean;
  deleting: boolean;
}

/** Every change of the release's operator pods, from a watch started now. */
async function watchPods(kc: KubeConfig, namespace: string) {
  const events: PodEvent[] = [];
  const watch = new Watch(kc);
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 10 * 60_000; // private; not 30 s: a quiet pod watch sends nothing for minutes
  const controller = await watch.watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector: `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=roster` },
    (type, p: V1Pod) => {
      if (type === "BOOKMARK" || type === "ERROR") return;
      events.push({
        type,
        name: p.metadata!.name!,
        hash: p.metadata?.labels?.["pod-template-hash"] ?? "",
        ready: type !== "DELETED" && isReady(p),
        deleting: type === "DELETED" || Boolean(p.metadata?.deletionTimestamp),
      });
    },
    () => undefined,
  );
  return { events, stop: () => controller.abort() };
}

/** Pods alive and Ready after each event, replayed from a pod watch's history. */
function replay(events: readonly PodEvent[]) {
  const state = new Map<string, PodEvent>();
  return events.map((e) => {
    if (e.type === "DELETED") state.delete(e.name);
    else state.set(e.name, e);
    const live = [...state.values()].filter((p) => !p.deleting);
    return { event: e, live: live.length, ready: live.filter((p) => p.ready).map((p) => p.name) };
  });
}

/** Asserts every event of the watcher's history still had all `healthy` addresses ready. */
function assertNeverUnpublished(w: SliceWatcher, healthy: readonly string[], what: string): void {
  w.stop();
  for (const e of w.events) {
    const missing = healthy.filter((a) => !e.ready.includes(a));
    assert.deepEqual(
      missing,
      [],
      `${what}: ${e.type} ${e.name}@${e.resourceVersion} left ${missing.join(", ")} unpublished (history: ${JSON.stringify(w.events)})`,
    );
  }
}

test("helm install of Roster on the sandbox node: Ready under restricted PSS, in-cluster leader election, probing and publishing, metrics, logs, handover, upgrade, helm test, uninstall", async (t) => {
  const env = await testNode(t);
  if (!env) return;
  const { kc, node, hosts, scratch, sandbox } = env;
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const leases = kc.makeApiClient(CoordinationV1Api);
  const policy = kc.makeApiClient(PolicyV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const roster = rosterApi(kc);
  const kubeconfig = sandbox.kubeconfigPath;

  // Roster's image, built from this checkout with no registry, and the consumer's.
  const built = await buildRosterImage({
    repo: repoRoot,
    layout: join(scratch, "oci"),
    archive: join(scratch, "roster-oci.tar"),
  });
  importImage(node, built.archive!);
  importImage(
    node,
    buildImage(join(scratch, "echo.tar"), {
      ref: ECHO,
      files: { "/echo": resolve(repoRoot, "bin/roster-echo") },
    }),
  );
  assert.ok(nodeImages(node).includes(IMAGE_REF), `${IMAGE_REF} is in the node's containerd`);

  const namespace = `helm-${randomBytes(4).toString("hex")}`;
  await core.createNamespace({
    body: {
      metadata: {
        name: namespace,
        labels: { "roster.dev/test": "true", "pod-security.kubernetes.io/enforce": "restricted" },
      },
    },
  });
  t.after(() => core.deleteNamespace({ name: namespace }).catch(() => undefined));

  // Test hosts: two healthy backends and one failing.
  const backends: Backend[] = [];
  for (const id of ["a", "b", "c"]) backends.push(await (await hosts.host()).start({ id, http: [8080] }));
  backends[2]!.setHealth("failing");
  const healthy = backends
    .slice(0, 2)
    .map((b) => b.host.ipv4)
    .sort();

  const [repository, tag] = [
    IMAGE_REF.slice(0, IMAGE_REF.lastIndexOf(":")),
    IMAGE_REF.slice(IMAGE_REF.lastIndexOf(":") + 1),
  ];
  const values = valuesFile({ image: { repository, tag, pullPolicy: "Never" } });
  const selector = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=roster`;
  const operatorPods = async () =>
    (await core.listNamespacedPod({ namespace, labelSelector: selector })).items.filter(
      (p) => !p.metadata?.deletionTimestamp,
    );

  let sliceWatch: SliceWatcher | undefined;
  let leader = "";

  await t.test("helm install: both pods Ready under restricted Pod Security, read-only root", async () => {
    const started = Date.now();
    await helmOk(["install", RELEASE, chartDir, "-n", namespace, "-f", values], { kubeconfig });
    // The chart installed the CRDs: the instances go in while the pods start.
    for (const b of backends)
      await eventually(
        () =>
          roster.createInstance(
            namespace,
            `web-${b.id}`,
            dataPlaneInstance(b.host, [{ name: "http", port: 8080 }]),
          ),
        { timeoutMs: 30_000, intervalMs: 200, what: "the CRDs served" },
      );
    const pods = await eventually(
      async () => {
        const ps = await operatorPods();
        return ps.length === 2 && ps.every(isReady) ? ps : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 200, what: "both Roster pods Ready" },
    );
    t.diagnostic(
      `install time (helm install → both pods Ready): ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    for (const p of pods) {
      assert.equal(p.spec?.nodeName, node.name);
      const c = p.spec!.containers[0]!;
      assert.equal(c.image, IMAGE_REF);
      assert.equal(c.imagePullPolicy, "Never");
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(c.readinessProbe?.httpGet?.path, "/readyz");
      assert.equal(c.livenessProbe?.httpGet?.path, "/healthz");
      assert.equal(p.status?.containerStatuses?.[0]?.restartCount, 0, `${p.metadata!.name} never restarted`);
    }
  });

  await t.test(
    "in-cluster config: service-account token, one leader probes test hosts and publishes",
    async () => {
      const lease = await eventually(
        async () => {
          const l = await leases.readNamespacedLease({ namespace, name: `${RELEASE}-leader` });
          return l.spec?.holderIdentity ? l : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: "a leader" },
      );
      leader = lease.spec!.holderIdentity!;
      assert.ok(
        (await operatorPods()).some((p) => p.metadata!.name === leader),
        `the leader ${leader} is a pod`,
      );
      // Published from the pod's probes: only the healthy hosts are ready.
      await eventually(
        async () => {
          const slices = await roster.slicesOf(namespace, "web");
          const ready = slices
            .flatMap((s) =>
              (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
            )
            .sort();
          return JSON.stringify(ready) === JSON.stringify(healthy) ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: `web published with ${healthy.join(", ")} ready` },
      );
      sliceWatch = await roster.watchSlices(namespace, "web");
      assert.deepEqual(sliceWatch.initial, healthy);
      // The pods hold no credentials but the projected service-account token
      // the kubelet mounted; the Lease and the status writes above went through it.
      for (const p of await operatorPods()) {
        assert.equal(p.spec?.serviceAccountName, RELEASE);
        const projected = p.spec?.volumes?.find((v) =>
          v.projected?.sources?.some((s) => s.serviceAccountToken),
        );
        assert.ok(projected, `${p.metadata!.name} mounts a projected service-account token`);
      }
    },
  );

  await t.test(
    "the kubelet's probes, /metrics through the Service, logs and memory through the kubelet",
    async () => {
      // The kubelet's own prober metrics: liveness (/healthz) and readiness (/readyz) succeeded for the pods.
      // The liveness probe runs every 10 s after the startup probe passed: wait for its first success.
      await eventually(
        async () => {
          const probes = await apiGet(kc, `/api/v1/nodes/${node.name}/proxy/metrics/probes`);
          return ["Startup", "Liveness", "Readiness"].every((type) =>
            new RegExp(
              `prober_probe_total\\{[^}]*namespace="${namespace}"[^}]*probe_type="${type}"[^}]*result="successful"[^}]*\\} [1-9]`,
            ).test(probes),
          )
            ? true
            : undefined;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 500,
          what: "successful startup, liveness and readiness probes in the kubelet's metrics",
        },
      );
      // metrics.auth is `kubernetes` by default: a scraper's token bound to the
      // chart's metrics-reader ClusterRole, and nothing without one.
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "scraper" } } });
      const binding = `${namespace}-scraper`;
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: binding },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: `${RELEASE}-metrics-reader`,
          },
          subjects: [{ kind: "ServiceAccount", name: "scraper", namespace }],
        },
      });
      t.after(() => rbac.deleteClusterRoleBinding({ name: binding }).catch(() => undefined));
      const token = (
        await core.createNamespacedServiceAccountToken({
          name: "scraper",
          namespace,
          body: { spec: { expirationSeconds: 600 } },
        })
      ).status!.token;
      const svc = await core.readNamespacedService({ namespace, name: `${RELEASE}-metrics` });
      const serviceURL = `http://${svc.spec!.clusterIP}:8080/metrics`;
      assert.equal(scrape(node.netns, serviceURL).code, 401, "no token: 401");
      const metrics = await eventually(
        () => {
          const r = scrape(node.netns, serviceURL, token);
          return r.code === 200 ? r.body : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500, what: "/metrics answering the scraper (RBAC propagated)" },
      );
      // Either replica may answer through the Service: each declares controller-runtime's metrics.
      for (const name of [
        "controller_runtime_reconcile_total",
        "workqueue_depth",
        "leader_election_master_status",
      ])
        assert.match(metrics, new RegExp(`^# TYPE ${name} `, "m"), `/metrics has ${name}`);
      // The leader's own /metrics (its pod IP) counts its reconciles and says it leads.
      const leaderIP = (await core.readNamespacedPod({ namespace, name: leader })).status!.podIP!;
      const leaderMetrics = scrape(node.netns, `http://${leaderIP}:8080/metrics`, token);
      assert.equal(leaderMetrics.code, 200, leaderMetrics.body);
      assert.match(leaderMetrics.body, /^controller_runtime_reconcile_total\{[^}]*\} [1-9]/m);
      assert.match(leaderMetrics.body, /^leader_election_master_status\{[^}]*\} 1$/m);
      await rbac.deleteClusterRoleBinding({ name: binding });

      const log = await core.readNamespacedPodLog({ namespace, name: leader, container: "roster" });
      const lines = log.trim().split("\n");
      const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(
        parsed.every((l) => typeof l.msg === "string" && l.level !== undefined),
        "every log line is structured JSON",
      );
      t.diagnostic(`leader log: ${lines.length} lines, first: ${lines[0]}`);
      const serving = lines.find((l) => l.includes('"serving endpoints"'));
      const pod = await core.readNamespacedPod({ namespace, name: leader });
      t.diagnostic(
        `container started ${pod.status?.containerStatuses?.[0]?.state?.running?.startedAt?.toISOString()}; ${serving}`,
      );

      // The kubelet's stats collection runs on its own period: a pod just
      // started may not have a sample yet.
      const names = (await operatorPods()).map((p) => p.metadata!.name!);
      const memory = await eventually(
        async () => {
          const summary = JSON.parse(await apiGet(kc, `/api/v1/nodes/${node.name}/proxy/stats/summary`)) as {
            pods: { podRef: { name: string; namespace: string }; memory?: { workingSetBytes?: number } }[];
          };
          const bytes = names.map(
            (n) =>
              summary.pods.find((s) => s.podRef.namespace === namespace && s.podRef.name === n)?.memory
                ?.workingSetBytes ?? 0,
          );
          return bytes.every((b) => b > 0) ? bytes : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500, what: "the summary API reporting both pods' memory" },
      );
      names.forEach((n, k) => {
        t.diagnostic(`memory ${n}: ${(memory[k]! / 2 ** 20).toFixed(1)} MiB working set`);
      });
    },
  );

  await t.test(
    "a consumer pod resolves the Roster service by cluster DNS and reaches only healthy hosts",
    async () => {
      const gets = Array.from({ length: 12 }, () => `--get=http://web.${namespace}.svc.cluster.local:8080/`);
      const sc = {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      };
      // First the condition the pod depends on: kube-proxy has programmed the
      // published endpoints (a consumer in the node netns is served by them).
      await eventually(
        async () => {
          const lines = await hosts.consumer({
            name: `web.${namespace}.svc.cluster.local`,
            port: 8080,
            http: true,
            count: 4,
          }).done;
          const served = lines.filter((l) => l.resolved === undefined);
          return served.length === 4 && served.every((l) => l.id === "a" || l.id === "b") ? true : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: "kube-proxy serving the published endpoints" },
      );
      await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name: "consumer" },
          spec: {
            restartPolicy: "Never",
            automountServiceAccountToken: false,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              seccompProfile: { type: "RuntimeDefault" },
            },
            containers: [
              { name: "consumer", image: ECHO, imagePullPolicy: "Never", args: gets, securityContext: sc },
            ],
          },
        },
      });
      const done = await eventually(
        async () => {
          const p = await core.readNamespacedPod({ namespace, name: "consumer" });
          return ["Succeeded", "Failed"].includes(p.status?.phase ?? "") ? p : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: "the consumer pod to finish" },
      );
      const log = await core.readNamespacedPodLog({ namespace, name: "consumer" });
      assert.equal(done.status?.phase, "Succeeded", log);
      const served = log
        .trim()
        .split("\n")
        .map((l) => l.split(" "));
      assert.equal(served.length, 12, log);
      for (const [, status, id, , addr] of served) {
        assert.equal(status, "200", log);
        assert.ok(["a", "b"].includes(id!), `served by a healthy host, not ${id}: ${log}`);
        assert.ok(healthy.includes(addr!), log);
      }
    },
  );

  await t.test(
    "killing the leader pod hands over within the lease duration, nothing unpublished",
    async () => {
      const before = await leases.readNamespacedLease({ namespace, name: `${RELEASE}-leader` });
      await core.deleteNamespacedPod({ namespace, name: leader, gracePeriodSeconds: 0 });
      const after = await eventually(
        async () => {
          const l = await leases.readNamespacedLease({ namespace, name: `${RELEASE}-leader` });
          const holder = l.spec?.holderIdentity;
          return holder && holder !== leader ? l : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: "another pod to take the lease" },
      );
      // From the Lease's own record: the new holder acquired it at most a lease
      // duration after the killed leader's last renewal, plus one retry period
      // (jittered ×1.2) of the standby's polling and a second of API latency.
      const lastRenew = new Date(before.spec!.renewTime!).getTime();
      const acquired = new Date(after.spec!.acquireTime!).getTime();
      const gap = (acquired - lastRenew) / 1000;
      t.diagnostic(
        `handover: ${leader} → ${after.spec!.holderIdentity}, ${gap.toFixed(1)} s after the last renewal`,
      );
      assert.ok(gap <= LEASE_SECONDS + 1.2 * RETRY_SECONDS + 1, `acquired ${gap} s after the last renewal`);
      leader = after.spec!.holderIdentity!;
      await eventually(
        async () => {
          const ps = await operatorPods();
          return ps.length === 2 && ps.every(isReady) ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 250, what: "the replacement pod Ready" },
      );
      // The new leader changes what is published: the failing host recovers.
      backends[2]!.setHealth("healthy");
      await eventually(
        async () => {
          const slices = await roster.slicesOf(namespace, "web");
          const ready = slices.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready));
          return ready.length === 3 ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: "the recovered host published by the new leader" },
      );
      assertNeverUnpublished(sliceWatch!, healthy, "handover");
    },
  );

  await t.test(
    "helm upgrade (a config change) rolls the pods one at a time within the PDB, nothing unpublished",
    async () => {
      const all = backends.map((b) => b.host.ipv4).sort();
      sliceWatch = await roster.watchSlices(namespace, "web");
      assert.deepEqual(sliceWatch.initial, all);
      const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace, name: RELEASE });
      assert.equal(pdb.spec?.maxUnavailable, 1);
      const oldPods = (await operatorPods()).map((p) => p.metadata!.name!);
      const pods = await watchPods(kc, namespace);
      // probing.maxConcurrent is read at start only: the chart's restart checksum changes.
      await helmOk(
        ["upgrade", RELEASE, chartDir, "-n", namespace, "-f", values, "--set", "probing.maxConcurrent=256"],
        { kubeconfig },
      );
      await eventually(
        async () => {
          const ps = await operatorPods();
          return ps.length === 2 && ps.every(isReady) && ps.every((p) => !oldPods.includes(p.metadata!.name!))
            ? true
            : undefined;
        },
        { timeoutMs: 240_000, intervalMs: 250, what: "the rollout to finish" },
      );
      pods.stop();
      const history = replay(pods.events);
      const newPods = [...new Set(pods.events.map((e) => e.name))].filter((n) => !oldPods.includes(n));
      assert.equal(newPods.length, 2, `two new pods: ${JSON.stringify(pods.events)}`);
      // One at a time: the second new pod was created only after the first was Ready.
      const firstReady = pods.events.findIndex((e) => e.name === newPods[0] && e.ready);
      const secondSeen = pods.events.findIndex((e) => e.name === newPods[1]);
      assert.ok(
        firstReady >= 0 && firstReady < secondSeen,
        `new pods one at a time: ${JSON.stringify(pods.events)}`,
      );
      for (const h of history) {
        assert.ok(h.ready.length >= 1, `the PDB's minimum held after ${JSON.stringify(h.event)}`);
        assert.ok(h.live <= 3, `at most one surge pod after ${JSON.stringify(h.event)}`);
      }
      const deployment = await apps.readNamespacedDeployment({ namespace, name: RELEASE });
      assert.equal(deployment.status?.updatedReplicas, 2);
      // The roll kept every healthy endpoint (all three hosts are healthy now).
      await eventually(
        async () => {
          const l = await leases.readNamespacedLease({ namespace, name: `${RELEASE}-leader` });
          return l.spec?.holderIdentity && newPods.includes(l.spec.holderIdentity) ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: "a new pod leading" },
      );
      assertNeverUnpublished(sliceWatch, all, "upgrade");
    },
  );

  await t.test("helm test runs the selftest hook pod and passes", async () => {
    const out = await helmOk(["test", RELEASE, "-n", namespace, "--timeout", "3m"], { kubeconfig });
    assert.match(out, /Phase:\s+Succeeded/, out);
  });

  await t.test(
    "helm uninstall leaves nothing of the release but the CRDs and the Roster objects",
    async () => {
      await helmOk(["uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "2m"], { kubeconfig });
      const label = `app.kubernetes.io/instance=${RELEASE}`;
      await eventually(async () => ((await operatorPods()).length === 0 ? true : undefined), {
        timeoutMs: 120_000,
        intervalMs: 250,
        what: "the operator pods gone",
      });
      const left = async () =>
        [
          ...(await apps.listNamespacedDeployment({ namespace, labelSelector: label })).items,
          ...(await core.listNamespacedService({ namespace, labelSelector: label })).items,
          ...(await core.listNamespacedConfigMap({ namespace, labelSelector: label })).items,
          ...(await core.listNamespacedServiceAccount({ namespace, labelSelector: label })).items,
          ...(await core.listNamespacedPod({ namespace, labelSelector: label })).items,
          ...(await policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector: label })).items,
          ...(await rbac.listClusterRole({ labelSelector: label })).items,
          ...(await rbac.listClusterRoleBinding({ labelSelector: label })).items,
          ...(await rbac.listNamespacedRole({ namespace, labelSelector: label })).items,
          ...(await rbac.listNamespacedRoleBinding({ namespace, labelSelector: label })).items,
        ].map((o) => o.metadata!.name!);
      // Terminating pods go within their grace period.
      await eventually(async () => ((await left()).length === 0 ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 250,
        what: "nothing of the release left",
      });
      // The operator's leader Lease is its own object, not the chart's: the
      // uninstall removes the RBAC while the last leader stops, so its release
      // may be refused and the Lease keeps a holder until it expires; it stays,
      // as docs/helm.md says (a reinstall reuses it).
      const leasesLeft = (await leases.listNamespacedLease({ namespace })).items;
      assert.deepEqual(
        leasesLeft.map((l) => l.metadata!.name),
        [`${RELEASE}-leader`],
      );
      t.diagnostic(`leader Lease left, holder "${leasesLeft[0]?.spec?.holderIdentity ?? ""}"`);
      // Kept, as docs/helm.md says: the CRDs, and with them the instances and what they published.
      await roster.getInstance(namespace, "web-a");
      assert.ok((await roster.slicesOf(namespace, "web")).length > 0);
      await helm(["status", RELEASE, "-n", namespace], { kubeconfig }).then((r) =>
        assert.notEqual(r.code, 0, "the release is gone"),
      );
    },
  );
});
