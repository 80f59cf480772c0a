/**
 * The write gate on the real API server (issue 18): a slice write queued
 * behind a storm of status writes is seen by the API server right after the
 * one write already in flight. Ordered by the resourceVersions the server
 * assigned (etcd revisions), never by durations.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { kubeClient } from "../../../src/kube/client.ts";
import { gatedClient, writeGate } from "../../../src/kube/writegate.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";

type Obj = { metadata: { resourceVersion: string } };

test("a slice write queued behind 40 status writes reaches the API server before all but the first", async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "prio");
  const raw = kubeClient(kc);
  await raw.request({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/services`,
    body: { metadata: { name: "web" }, spec: { ports: [{ port: 80 }] } },
  });
  const gate = writeGate({ limit: 1 });
  const client = gatedClient(raw, gate);
  const statuses = Array.from({ length: 40 }, (_, i) =>
    client.request<Obj>({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/services/web/status`,
      contentType: "application/merge-patch+json",
      body: {
        status: {
          conditions: [
            {
              type: "Storm",
              status: "True",
              reason: "Write",
              message: `write ${i}`,
              lastTransitionTime: "2026-01-01T00:00:00Z",
            },
          ],
        },
      },
    }),
  );
  const slice = client.request<Obj>({
    method: "POST",
    path: `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
    body: {
      metadata: { name: "web-1", labels: { "kubernetes.io/service-name": "web" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["198.18.0.1"] }],
      ports: [{ port: 80 }],
    },
  });
  assert.deepEqual(gate.stats().queued, { publication: 1, configmap: 0, status: 39, event: 0 });
  const [sliceRv, ...statusRvs] = (await Promise.all([slice, ...statuses])).map((o) =>
    Number(o.metadata.resourceVersion),
  );
  assert.ok(sliceRv! > statusRvs[0]!, "the status write already in flight goes first");
  for (const rv of statusRvs.slice(1)) assert.ok(sliceRv! < rv, `slice ${sliceRv} before status ${rv}`);
  assert.deepEqual(gate.stats().started, { publication: 1, configmap: 0, status: 40, event: 0 });
});
