/**
 * The CRDs in crds/ against a real API server: every example is accepted,
 * every manifest of the invalid corpus is rejected with a message that names
 * the offending field (the same corpus zod rejects in the unit tests), the
 * server applies the same defaults as zod, and kubectl gets short names,
 * categories and printer columns.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ApiException,
  ApiextensionsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  setHeaderOptions,
} from "@kubernetes/client-node";
import {
  DiscoveryPolicyResource,
  GROUP,
  type ResourceType,
  ServiceInstanceResource,
  VERSION,
  validateRosterObject,
} from "../../../src/api/index.ts";
import { examples, invalidCorpus } from "../../fixtures/invalid/corpus.ts";
import { boundaryMutations } from "../../fixtures/invalid/mutations.ts";
import { testCluster, testNamespace } from "../../support/cluster.ts";

type Manifest = Record<string, unknown> & { kind?: unknown; metadata?: { name?: string } };

function resourceOf(m: Manifest): ResourceType {
  if (m.kind === "ServiceInstance") return ServiceInstanceResource;
  if (m.kind === "DiscoveryPolicy") return DiscoveryPolicyResource;
  throw new Error(`unexpected kind ${String(m.kind)}`);
}

async function create(kc: KubeConfig, namespace: string, body: Manifest, dryRun = false): Promise<Manifest> {
  const r = resourceOf(body);
  return (await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: r.plural,
    body,
    fieldValidation: "Strict",
    ...(dryRun ? { dryRun: "All" } : {}),
  })) as Manifest;
}

/** The API server's Status for a failed request: HTTP code and message. */
function rejection(err: unknown): { code: number; message: string } {
  if (!(err instanceof ApiException)) throw err;
  const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
  let message = body;
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? body;
  } catch {
    // not a Status object: keep the raw body
  }
  return { code: err.code, message };
}

describe("admission of Roster objects", () => {
  test("the CRDs have short names, the roster category and printer columns", async () => {
    const { kc } = await testCluster();
    const api = kc.makeApiClient(ApiextensionsV1Api);
    const si = await api.readCustomResourceDefinition({ name: "serviceinstances.roster.dev" });
    const dp = await api.readCustomResourceDefinition({ name: "discoverypolicies.roster.dev" });
    assert.deepEqual(si.spec.names.shortNames, ["si"]);
    assert.deepEqual(dp.spec.names.shortNames, ["dp"]);
    assert.deepEqual(si.spec.names.categories, ["roster"]);
    assert.deepEqual(dp.spec.names.categories, ["roster"]);
    const columns = (v: typeof si) =>
      v.spec.versions[0]!.additionalPrinterColumns!.map((c) => c.name.toUpperCase());
    for (const c of ["SERVICE", "ADDRESS", "PORTS", "HEALTHY", "AGE"]) assert.ok(columns(si).includes(c), c);
    for (const c of ["SERVICE", "STRATEGY", "HEALTHY", "TOTAL", "PANIC", "AGE"])
      assert.ok(columns(dp).includes(c), c);
    assert.ok(si.spec.versions[0]!.subresources?.status, "status subresource");
    for (const crd of [si, dp]) {
      const established = crd.status?.conditions?.find((c) => c.type === "Established");
      assert.equal(established?.status, "True", `${crd.metadata?.name} is not established`);
    }
  });

  test("every example is accepted, and the server's defaults agree with zod's", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "api-examples");
    for (const { file, manifest } of examples()) {
      const m = manifest as Manifest;
      const name = `${file} ${String(m.kind)}/${m.metadata?.name}`;
      let stored: Manifest;
      try {
        stored = await create(kc, ns, m);
      } catch (err) {
        assert.fail(`${name} was rejected: ${rejection(err).message}`);
      }
      // Parsing what the server stored (its defaults applied) gives the same spec as parsing the manifest.
      const fromServer = validateRosterObject(stored);
      const fromManifest = validateRosterObject(manifest);
      assert.ok(fromServer.ok && fromManifest.ok, name);
      assert.deepEqual(fromServer.value.spec, fromManifest.value.spec, `${name}: defaults differ`);
    }
  });

  test("the server applies defaults", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "api-defaults");
    const si = await create(kc, ns, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "ServiceInstance",
      metadata: { name: "bare" },
      spec: { service: "web", address: "10.0.0.1", ports: [{ name: "http", port: 80 }] },
    });
    const spec = si.spec as { weight: number; drain: boolean; ports: { protocol: string }[] };
    assert.equal(spec.weight, 100);
    assert.equal(spec.drain, false);
    assert.equal(spec.ports[0]!.protocol, "TCP");

    const dp = await create(kc, ns, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "DiscoveryPolicy",
      metadata: { name: "web" },
      spec: { service: "web", healthCheck: {}, loadBalancing: {}, publish: {} },
    });
    assert.deepEqual(dp.spec, {
      service: "web",
      healthCheck: {
        probes: [{ type: "tcp" }],
        combine: "all",
        interval: "10s",
        timeout: "1s",
        initialDelay: "0s",
        failureThreshold: 3,
        successThreshold: 1,
        jitter: 10,
      },
      loadBalancing: { strategy: "RoundRobin" },
      publish: {
        service: true,
        endpointSlices: true,
        configMap: { enabled: true },
        maxEndpointsPerSlice: 100,
        panicThreshold: 0,
        headless: false,
        degradedWeightPercent: 50,
      },
    });
  });

  test("the table kubectl prints uses the printer columns", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "api-table");
    await create(kc, ns, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "ServiceInstance",
      metadata: { name: "db-1" },
      spec: { service: "db", address: "db-1.example.com", ports: [{ name: "pg", port: 5432 }], zone: "z1" },
    });
    const table = (await kc
      .makeApiClient(CustomObjectsApi)
      .listNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: ns, plural: ServiceInstanceResource.plural },
        setHeaderOptions("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"),
      )) as { kind: string; columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    assert.equal(table.kind, "Table");
    const names = table.columnDefinitions.map((c) => c.name);
    assert.deepEqual(names.slice(0, 3), ["Name", "Service", "Address"]);
    const row = table.rows[0]!.cells;
    assert.equal(row[names.indexOf("Service")], "db");
    assert.equal(row[names.indexOf("Address")], "db-1.example.com");
    assert.equal(row[names.indexOf("Zone")], "z1");
    assert.equal(row[names.indexOf("Weight")], 100);
  });

  test("every invalid manifest is rejected with a message naming the field", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "api-invalid");
    const corpus = invalidCorpus();
    assert.ok(corpus.length >= 25);
    const failures: string[] = [];
    for (const c of corpus) {
      try {
        await create(kc, ns, c.manifest as Manifest, true);
        failures.push(`${c.file}: accepted, but ${c.why}`);
      } catch (err) {
        const { code, message } = rejection(err);
        if (code !== 422 && code !== 400) failures.push(`${c.file}: HTTP ${code}: ${message}`);
        else if (!message.includes(c.field))
          failures.push(`${c.file}: message does not name ${c.field}: ${message}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  test("zod and the API server agree on boundary values of every field", async (t) => {
    const { kc } = await testCluster();
    const ns = await testNamespace(t, "api-agree");
    const mutations = boundaryMutations();
    const disagreements: string[] = [];
    let accepted = 0;
    for (const [i, m] of mutations.entries()) {
      const body = { ...m.manifest, metadata: { name: `m-${i}` } } as Manifest;
      const zod = validateRosterObject(body);
      let server = "accepted";
      try {
        await create(kc, ns, body, true);
        accepted++;
      } catch (err) {
        server = rejection(err).message;
      }
      if (zod.ok !== (server === "accepted")) {
        const zodSays = zod.ok ? "accepted" : zod.errors.map((e) => `${e.path}: ${e.message}`).join("; ");
        disagreements.push(`${m.description}\n    zod: ${zodSays}\n    server: ${server}`);
      }
    }
    // Both verdicts must occur, or the mutations test nothing.
    assert.ok(
      accepted > 50 && accepted < mutations.length - 50,
      `${accepted} of ${mutations.length} accepted`,
    );
    assert.deepEqual(disagreements, []);
  });
});
