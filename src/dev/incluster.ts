/**
 * The in-cluster operator of `roster dev --in-cluster`: Roster's chart
 * installed by Helm (bin/helm) on the sandbox's node, running the image built
 * offline (src/dev/image.ts) that the sandbox imported into the node's
 * containerd. The values are the in-process demo operator's configuration,
 * translated: serve only the demo namespace, probe only the test hosts'
 * ranges, four concurrent reconciles.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { KubeClient } from "../kube/index.ts";
import { isAlreadyExists } from "../kube/index.ts";
import { buildImage, gitCommit, IMAGE_REF } from "./image.ts";
import { repoRoot } from "./sandbox.ts";

export const helmBinary = resolve(repoRoot, "bin/helm");
export const chartDir = resolve(repoRoot, "charts/roster");
/** Where `make image-offline` writes the archive; `roster dev --in-cluster` writes the same. */
export const imageArchive = resolve(repoRoot, ".cache/image/roster-oci.tar");

/**
 * The offline image in .cache/image: reused when this command built it from
 * the current, clean commit (a stamp beside it records the commit and the
 * archive's size and mtime, so an archive rewritten since, e.g. by `make
 * image-offline`, is not taken for it); rebuilt otherwise.
 */
export async function buildDemoImage(): Promise<{ archive: string; reused: boolean }> {
  const stampFile = `${imageArchive}.stamp`;
  const commit = gitCommit(repoRoot);
  const stamp = (): string => {
    const st = statSync(imageArchive);
    return JSON.stringify({ commit, size: st.size, mtimeMs: st.mtimeMs });
  };
  if (commit && !commit.endsWith("-dirty") && existsSync(imageArchive) && existsSync(stampFile)) {
    if (readFileSync(stampFile, "utf8") === stamp()) return { archive: imageArchive, reused: true };
  }
  await buildImage({ repo: repoRoot, layout: resolve(repoRoot, ".cache/image/oci"), archive: imageArchive });
  writeFileSync(stampFile, stamp());
  return { archive: imageArchive, reused: false };
}

/** The chart values for the demo's operator (the in-process demo's config in dev.ts). */
export function demoChartValues(demoNamespace: string, allow: readonly string[]): Record<string, unknown> {
  const at = IMAGE_REF.lastIndexOf(":");
  return {
    image: { repository: IMAGE_REF.slice(0, at), tag: IMAGE_REF.slice(at + 1), pullPolicy: "Never" },
    watchNamespaces: [demoNamespace],
    probing: { destinations: { allow: [...allow] } },
    concurrency: { default: 4 },
  };
}

export interface InClusterOperator {
  release: string;
  namespace: string;
  /** The operator pods, all Ready. */
  pods: string[];
  /** `helm uninstall` (idempotent). */
  stop(): Promise<void>;
}

/** Runs bin/helm with a private Helm home (never the user's repositories or plugins). */
function helm(args: string[], kubeconfig: string, home: string): Promise<string> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    HELM_CACHE_HOME: join(home, "cache"),
    HELM_CONFIG_HOME: join(home, "config"),
    HELM_DATA_HOME: join(home, "data"),
    KUBECONFIG: kubeconfig,
  };
  return new Promise((done, fail) => {
    // A timeout: on Ctrl-C the sandbox may already be stopping, and Helm would retry.
    execFile(
      helmBinary,
      args,
      { env, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) =>
        err ? fail(new Error(`helm ${args[0]} failed: ${stderr.trim() || err.message}`)) : done(stdout),
    );
  });
}

interface PodList {
  items: {
    metadata: { name: string; deletionTimestamp?: string };
    status?: { conditions?: { type: string; status: string }[] };
  }[];
}

/** `helm install`s the chart in `namespace` (created if missing) and waits until every operator pod is Ready. */
export async function installInCluster(
  client: KubeClient,
  opts: {
    kubeconfig: string;
    values: Record<string, unknown>;
    release?: string;
    namespace?: string;
    readyTimeoutMs?: number;
  },
): Promise<InClusterOperator> {
  const release = opts.release ?? "roster";
  const namespace = opts.namespace ?? "roster-system";
  const home = mkdtempSync(join(tmpdir(), "roster-dev-helm-"));
  const valuesFile = join(home, "values.yaml");
  writeFileSync(valuesFile, JSON.stringify(opts.values)); // JSON is YAML
  await client
    .request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name: namespace } } })
    .catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err;
    });
  await helm(["install", release, chartDir, "-n", namespace, "-f", valuesFile], opts.kubeconfig, home);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= helm(["uninstall", release, "-n", namespace, "--wait"], opts.kubeconfig, home)
      .then(() => undefined)
      .catch(() => undefined) // the sandbox stop removes the node and the pods anyway
      .finally(() => rmSync(home, { recursive: true, force: true }));
    return stopping;
  };
  const replicas = Number((opts.values.replicaCount as number | undefined) ?? 2);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 300_000);
  const selector = `app.kubernetes.io/instance=${release},app.kubernetes.io/name=roster`;
  try {
    for (;;) {
      const list = await client.request<PodList>({
        method: "GET",
        path: `/api/v1/namespaces/${namespace}/pods`,
        query: { labelSelector: selector },
      });
      const live = list.items.filter((p) => !p.metadata.deletionTimestamp);
      const ready = live.filter((p) =>
        p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      );
      if (live.length === replicas && ready.length === replicas)
        return { release, namespace, pods: ready.map((p) => p.metadata.name).sort(), stop };
      if (Date.now() > deadline)
        throw new Error(
          `the operator pods were not Ready in time (${ready.length}/${replicas}); see kubectl describe pods -n ${namespace}`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
