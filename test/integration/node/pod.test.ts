// The sandbox as a one-node cluster: kube-scheduler binds, and a kubelet and
// containerd in the data plane's node namespace run, a real pod from an
// image built here (no registry), under the restricted Pod Security level, Ready through its
// readiness probe; a consumer in the node namespace reaches it through its
// ClusterIP Service (kube-proxy) and through its name (CoreDNS); a client
// pod reaches it by name and the API server with its service-account token.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { repoRoot } from "../../../src/dev/sandbox.ts";
import type { ConsumerLine } from "../../../src/dev/testhosts.ts";
import { eventually } from "../../support/cluster.ts";
import { buildImage, importImage, nodeImages, testNode } from "./support.ts";

const IMAGE = "roster.local/echo:test";

function inCIDR(ip: string, cidr: string): boolean {
  const toInt = (a: string) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
  const [base, bits] = cidr.split("/");
  const mask = 2 ** (32 - Number(bits));
  return Math.floor(toInt(ip) / mask) === Math.floor(toInt(base!) / mask);
}

test("a pod from a locally built image runs Ready on the sandbox node, is served through its Service and CoreDNS, and pods reach Services and the API server in-cluster", async (t) => {
  const env = await testNode(t);
  if (!env) return;
  const { kc, node, hosts, scratch } = env;
  const core = kc.makeApiClient(CoreV1Api);

  const registered = await core.readNode({ name: node.name });
  assert.equal(registered.status?.nodeInfo?.kubeletVersion?.startsWith("v1.36."), true);
  assert.match(registered.status?.nodeInfo?.containerRuntimeVersion ?? "", /^containerd:\/\//);
  assert.equal(
    registered.status?.conditions?.find((c) => c.type === "Ready")?.reason,
    "KubeletReady",
    "the kubelet, not the data plane, reports the node Ready",
  );

  // The workload image: a static Go HTTP server packed here, imported with ctr.
  const archive = buildImage(join(scratch, "echo.tar"), {
    ref: IMAGE,
    files: { "/echo": resolve(repoRoot, "bin/roster-echo") },
    ports: [8080],
  });
  importImage(node, archive);
  assert.ok(nodeImages(node).includes(IMAGE), `${IMAGE} is in the node's containerd`);
  assert.ok(nodeImages(node).includes(node.pauseImage), "the pause image was imported at start");

  const namespace = `node-${randomBytes(4).toString("hex")}`;
  await core.createNamespace({
    body: {
      metadata: {
        name: namespace,
        labels: { "roster.dev/test": "true", "pod-security.kubernetes.io/enforce": "restricted" },
      },
    },
  });
  t.after(() => core.deleteNamespace({ name: namespace }).catch(() => undefined));

  // No nodeName: kube-scheduler binds it.
  const pod: V1Pod = {
    metadata: { name: "echo", labels: { app: "echo" } },
    spec: {
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: "echo",
          image: IMAGE,
          imagePullPolicy: "Never",
          ports: [{ name: "http", containerPort: 8080 }],
          env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }],
          readinessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 1 },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          },
        },
      ],
    },
  };
  await core.createNamespacedPod({ namespace, body: pod });
  const ready = await eventually(
    async () => {
      const p = await core.readNamespacedPod({ namespace, name: "echo" });
      const isReady = p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
      return isReady ? p : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250, what: "the pod to be Running and Ready" },
  );
  assert.equal(ready.status?.phase, "Running");
  assert.equal(ready.spec?.nodeName, node.name, "the scheduler bound the pod to the node");
  const podIP = ready.status!.podIP!;
  assert.ok(inCIDR(podIP, node.podCIDR), `pod IP ${podIP} is in the node's pod range ${node.podCIDR}`);

  const service = await core.createNamespacedService({
    namespace,
    body: {
      metadata: { name: "echo" },
      spec: { selector: { app: "echo" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
    },
  });
  const clusterIP = service.spec!.clusterIP!;

  // Each connection says which pod served it on which address.
  const servedByPod = (lines: readonly ConsumerLine[]) =>
    lines.filter((l) => l.resolved === undefined).every((l) => l.id === "echo" && l.addr === podIP);
  for (const name of [clusterIP, `echo.${namespace}.svc.cluster.local`]) {
    const lines = await eventually(
      async () => {
        const got = await hosts.consumer({ name, port: 80, http: true, count: 4, concurrency: 2 }).done;
        return servedByPod(got) ? got : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `connections to ${name} served by the pod` },
    );
    assert.equal(lines.filter((l) => l.id === "echo").length, 4);
    if (name !== clusterIP) assert.equal(lines[0]?.resolved, clusterIP, "CoreDNS answers the ClusterIP");
  }

  // From inside the cluster: a client pod resolves the Service with the
  // cluster DNS the kubelet configured and reaches the pod through
  // kube-proxy, and reaches the API server the way in-cluster clients do
  // (KUBERNETES_SERVICE_HOST, the service-account CA and token).
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: "client" },
      spec: {
        restartPolicy: "Never",
        securityContext: pod.spec!.securityContext!,
        containers: [
          {
            name: "client",
            image: IMAGE,
            imagePullPolicy: "Never",
            args: [
              "--get=http://echo/",
              `--get=https://\${KUBERNETES_SERVICE_HOST}:\${KUBERNETES_SERVICE_PORT}/api/v1/namespaces/${namespace}/pods`,
            ],
            securityContext: pod.spec!.containers[0]!.securityContext!,
          },
        ],
      },
    },
  });
  await eventually(
    async () => {
      const p = await core.readNamespacedPod({ namespace, name: "client" });
      return ["Succeeded", "Failed"].includes(p.status?.phase ?? "") ? p : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: "the client pod to finish" },
  );
  // Through the API server and the kubelet, as `kubectl logs` reads them.
  const log = await core.readNamespacedPodLog({ namespace, name: "client" });
  const [viaService, viaAPI] = log.trim().split("\n");
  assert.equal(viaService, `http://echo/ 200 echo 8080 ${podIP}`, log);
  assert.match(viaAPI ?? "", /^https:\/\/198\.19\.0\.1:443\/\S+ 403 /, log);
  assert.match(
    viaAPI ?? "",
    new RegExp(`system:serviceaccount:${namespace}:default`),
    "the API server authenticated the pod's token",
  );
});
