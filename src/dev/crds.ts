/**
 * Installs Roster's CRDs (the committed YAML in crds/) into a cluster with
 * server-side apply and waits until the API server serves them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  ApiextensionsV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { kubeClient } from "../kube/client.ts";
import { repoRoot } from "./sandbox.ts";

export const crdDir = resolve(repoRoot, "crds");

export function readCrds(dir = crdDir): V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => loadAll(readFileSync(join(dir, f), "utf8")) as V1CustomResourceDefinition[])
    .filter((doc) => doc?.kind === "CustomResourceDefinition");
}

export async function installCrds(kc: KubeConfig, crds = readCrds(), timeoutMs = 30_000): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const apply = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
  for (const crd of crds) {
    await api.patchCustomResourceDefinition(
      { name: crd.metadata!.name!, body: crd, fieldManager: "roster-installer", force: true },
      apply,
    );
  }
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    for (;;) {
      const live = await api.readCustomResourceDefinition({ name: crd.metadata!.name! });
      const established = live.status?.conditions?.some(
        (c) => c.type === "Established" && c.status === "True",
      );
      if (established) break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${crd.metadata!.name} not established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Established is not the end: the new resource's storage can still answer
  // 429 "storage is (re)initializing" for a moment. Wait until it lists.
  const client = kubeClient(kc);
  for (const crd of crds) {
    const { group, names, versions } = crd.spec;
    const version = versions.find((v) => v.storage)?.name ?? versions[0]!.name;
    for (;;) {
      try {
        await client.request({
          method: "GET",
          path: `/apis/${group}/${version}/${names.plural}`,
          query: { limit: 1 },
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
