// A large service (issue 18): its document (about 2 MB) is over
// the real 1,000,000-byte ConfigMap budget, so Roster publishes format 2, a
// head ConfigMap and parts, instead of a stale document. The RosterClient
// sees every endpoint, the policy says Published (not PublishFailed), the
// instances' Ready conditions say "published as ready" (not ConfigMapStale),
// and a change moves head and parts to the next revision together.
//
// Cheap but real: registration-only instances (probe `none`, healthy at
// once), created before the operator starts so that the start-up hold
// publishes them in one go.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PUBLISHED_DATA_KEY, PUBLISHED_MAX_BYTES } from "../../../src/api/published.ts";
import {
  LABEL_PUBLISHED_HEAD,
  PUBLISHED_PART_DATA_KEY,
  type PublishedHead,
} from "../../../src/api/published-parts.ts";
import { RosterClient } from "../../../src/client/client.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  clients,
  condition,
  createInstances,
  createPolicy,
  deleteInstance,
  getConfigMap,
  getPolicy,
} from "../../support/roster.ts";

/**
 * 10,000 registration-only instances publish in about 2 minutes here, but
 * their 10,000 status writes then keep the in-process operator (and this
 * test's event loop) busy for minutes more; ROSTER_SPLIT_INSTANCES=10000
 * runs that size. The default reaches the same ~2 MB, three-part document
 * through metadata (1.2 kB per instance) with 1,500 instances.
 */
const N = Number(process.env.ROSTER_SPLIT_INSTANCES ?? 1500);
const NOTES: Record<string, string> =
  N >= 10_000 ? { build: "2026.12.07-a1b2c3d" } : { build: "b".repeat(600), note: "n".repeat(600) };
const name = (k: number) => `web-${String(k).padStart(5, "0")}`;

test(`a ${N}-instance service is published split across ConfigMaps and read whole by the client`, async (t) => {
  const { kc } = await testCluster();
  const ns = await testNamespace(t, "cm-split");
  await createPolicy(ns, "web", {
    service: "web",
    healthCheck: { probes: [{ type: "none" }], interval: "10s", timeout: "1s" },
  });
  let at = Date.now();
  await createInstances(
    ns,
    Array.from({ length: N }, (_, k) => ({
      name: name(k),
      spec: {
        service: "web",
        address: `2001:db8::2:${(k + 1).toString(16)}`,
        ports: [{ name: "http", port: 8080 }],
        metadata: { team: "checkout", ...NOTES },
      },
    })),
    32,
  );
  t.diagnostic(`${N} instances created in ${Date.now() - at} ms`);
  at = Date.now();
  await startTestOperator(t, { namespaces: [ns] });
  const client = new RosterClient(kc, { namespace: ns });
  t.after(() => client.close());
  await client.ready({ timeoutMs: 30_000 });
  await eventually(
    () => {
      try {
        return client.endpoints("web").length === N ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 120_000, intervalMs: 500, what: `the client to see ${N} ready endpoints` },
  );
  t.diagnostic(`${N} endpoints in the client ${Date.now() - at} ms after the operator started`);

  // What is stored: a format-2 head listing parts, each under the budget.
  const headCm = await getConfigMap(ns, "web-roster");
  const head = JSON.parse(headCm!.data![PUBLISHED_DATA_KEY]!) as PublishedHead;
  assert.equal(head.formatVersion, 2);
  assert.equal(head.endpointCount, N);
  assert.equal(client.service("web").revision, head.revision);
  const { core, custom } = await clients();
  const parts = (
    await core.listNamespacedConfigMap({ namespace: ns, labelSelector: `${LABEL_PUBLISHED_HEAD}=web-roster` })
  ).items;
  assert.deepEqual(parts.map((p) => p.metadata?.name).sort(), head.parts.map((p) => p.name).sort());
  let total = 0;
  for (const p of parts) {
    const bytes = Buffer.byteLength(p.data![PUBLISHED_PART_DATA_KEY]!, "utf8");
    assert.ok(bytes <= PUBLISHED_MAX_BYTES, `${p.metadata?.name}: ${bytes} bytes`);
    total += bytes;
  }
  assert.ok(parts.length >= 2 && total > PUBLISHED_MAX_BYTES);
  t.diagnostic(`revision ${head.revision}: ${parts.length} parts, ${total} bytes in all`);

  // No stale publication anywhere.
  const ready = await eventually(
    async () => {
      const c = condition(await getPolicy(ns, "web"), "Ready");
      return c?.status === "True" && c.reason === "Published" ? c : undefined;
    },
    { timeoutMs: 30_000, what: "policy Ready True Published" },
  );
  assert.doesNotMatch(ready.message ?? "", /stale/);
  // Instance statuses are written after publication (10,000 of them take
  // minutes here): every status written so far says "published as ready",
  // none ConfigMapStale.
  const written = await eventually(
    async () => {
      const list = (await custom.listNamespacedCustomObject({
        group: "roster.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "serviceinstances",
      })) as {
        items: {
          status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
        }[];
      };
      const ready = list.items.flatMap((i) =>
        (i.status?.conditions ?? []).filter((c) => c.type === "Ready" && c.status === "True"),
      );
      return ready.length >= 100 ? ready : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 2000, what: "100 instances Ready True" },
  );
  assert.deepEqual(
    written.filter((c) => c.reason === "ConfigMapStale" || c.message !== "published as ready"),
    [],
  );
  t.diagnostic(`${written.length} instance statuses Ready True, published as ready`);

  // A change: head and parts move to the next revision; the client follows.
  await deleteInstance(ns, name(N - 1));
  await eventually(
    () =>
      client.service("web").revision > head.revision && client.endpoints("web").length === N - 1
        ? true
        : undefined,
    { timeoutMs: 60_000, what: `the client to see ${N - 1} endpoints at the next revision` },
  );
  const after = JSON.parse(
    (await getConfigMap(ns, "web-roster"))!.data![PUBLISHED_DATA_KEY]!,
  ) as PublishedHead;
  assert.equal(after.endpointCount, N - 1);
  assert.equal(client.service("web").revision, after.revision);
});
