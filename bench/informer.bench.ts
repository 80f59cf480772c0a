/**
 * Informer benchmark: time for the cache to sync N ConfigMaps (10,000; 2,000
 * with --quick) and the process RSS after, for Roster's informer and for
 * client-node's plain `makeInformer`, each in its own child process so the
 * memory figures do not mix; then the throughput of a no-op reconciler over
 * every key through Roster's controller (queue, workers, metrics), next to a
 * bare loop over makeInformer's cache as the floor.
 *
 *   node bench/informer.bench.ts [--quick]
 *
 * Starts its own sandbox (bin/roster-sandbox) in a temporary directory.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, KubeConfig, makeInformer } from "@kubernetes/client-node";
import { startSandbox } from "../src/dev/sandbox.ts";
import { kubeClient } from "../src/kube/client.ts";
import { createController } from "../src/kube/controller.ts";
import { createInformer } from "../src/kube/informer.ts";
import { runtimeMetrics } from "../src/kube/metrics.ts";
import { resources } from "../src/kube/object.ts";
import { report, rssMiB } from "./report.ts";

interface ChildResult {
  variant: string;
  objects: number;
  syncMs: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  heapUsedMiB: number;
  reconcile?: { concurrency: number; keys: number; ms: number }[];
}

const gc = (globalThis as { gc?: () => void }).gc;
const settleMemory = async () => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
};

async function child(
  variant: string,
  kubeconfig: string,
  namespace: string,
  expected: number,
): Promise<ChildResult> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  await settleMemory();
  const rssBeforeMiB = rssMiB();
  const t0 = performance.now();
  if (variant === "roster") {
    const client = kubeClient(kc);
    const informer = createInformer({ client, type: resources.configMaps, namespace });
    informer.start();
    await informer.waitForSync();
    const syncMs = performance.now() - t0;
    if (informer.size !== expected)
      throw new Error(`roster cache has ${informer.size}, expected ${expected}`);
    await settleMemory();
    const rssAfterMiB = rssMiB();
    const heapUsedMiB = process.memoryUsage().heapUsed / 2 ** 20;
    const reconcile: ChildResult["reconcile"] = [];
    for (const concurrency of [1, 4]) {
      let done = 0;
      let finish!: () => void;
      const all = new Promise<void>((r) => {
        finish = r;
      });
      const c = createController({
        name: `noop-${concurrency}`,
        primary: informer,
        concurrency,
        metrics: runtimeMetrics({ processMetrics: false }),
        reconcile: () => {
          if (++done === expected) finish();
        },
      });
      const r0 = performance.now();
      await c.start();
      await all;
      reconcile.push({ concurrency, keys: expected, ms: performance.now() - r0 });
      await c.stop();
    }
    await informer.stop();
    return { variant, objects: expected, syncMs, rssBeforeMiB, rssAfterMiB, heapUsedMiB, reconcile };
  }
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer(kc, `/api/v1/namespaces/${namespace}/configmaps`, () =>
    core.listNamespacedConfigMap({ namespace }),
  );
  await informer.start();
  while (informer.list().length < expected) await new Promise((r) => setTimeout(r, 5));
  const syncMs = performance.now() - t0;
  await settleMemory();
  const rssAfterMiB = rssMiB();
  const heapUsedMiB = process.memoryUsage().heapUsed / 2 ** 20;
  // The floor for a reconcile pass: an await per key, no queue.
  const noop = async (_key: string) => {};
  const r0 = performance.now();
  for (const o of informer.list()) await noop(`${o.metadata?.namespace}/${o.metadata?.name}`);
  const loopMs = performance.now() - r0;
  await informer.stop();
  return {
    variant,
    objects: expected,
    syncMs,
    rssBeforeMiB,
    rssAfterMiB,
    heapUsedMiB,
    reconcile: [{ concurrency: 1, keys: expected, ms: loopMs }],
  };
}

function runChild(variant: string, kubeconfig: string, namespace: string, n: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ["--expose-gc", fileURLToPath(import.meta.url), "--child", variant, kubeconfig, namespace, String(n)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    proc.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    proc.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`${variant} child exited ${code}`));
      resolve(JSON.parse(out.trim().split("\n").at(-1)!) as ChildResult);
    });
  });
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const n = quick ? 2_000 : 10_000;
  const rounds = quick ? 1 : 2;
  const dir = mkdtempSync(join(tmpdir(), "roster-bench-informer-"));
  const sandbox = await startSandbox({ dir: join(dir, "sandbox") });
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(sandbox.kubeconfigPath);
    const client = kubeClient(kc);
    const namespace = "bench";
    await client.request({
      method: "POST",
      path: "/api/v1/namespaces",
      body: { metadata: { name: namespace } },
    });
    const c0 = performance.now();
    let next = 0;
    const data = { endpoints: "x".repeat(256), revision: "1" };
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < n) {
          const i = next++;
          await client.request({
            method: "POST",
            path: `/api/v1/namespaces/${namespace}/configmaps`,
            body: { metadata: { name: `cm-${i}`, labels: { app: "bench", shard: String(i % 16) } }, data },
          });
        }
      }),
    );
    const createMs = performance.now() - c0;
    console.log(`created ${n} ConfigMaps in ${(createMs / 1000).toFixed(1)} s`);

    const results: Record<string, ChildResult[]> = { roster: [], makeInformer: [] };
    for (let r = 0; r < rounds; r++) {
      for (const v of ["roster", "makeInformer"] as const) {
        results[v]!.push(await runChild(v, sandbox.kubeconfigPath, namespace, n));
      }
    }
    const best = (v: string, f: (x: ChildResult) => number) => Math.min(...results[v]!.map(f));
    const rosterSync = best("roster", (x) => x.syncMs);
    const plainSync = best("makeInformer", (x) => x.syncMs);
    const rosterRss = best("roster", (x) => x.rssAfterMiB);
    const plainRss = best("makeInformer", (x) => x.rssAfterMiB);
    const rosterDelta = best("roster", (x) => x.rssAfterMiB - x.rssBeforeMiB);
    const plainDelta = best("makeInformer", (x) => x.rssAfterMiB - x.rssBeforeMiB);
    const rate = (v: string, conc: number) =>
      Math.max(
        ...results[v]!.map((x) => {
          const rr = x.reconcile!.find((y) => y.concurrency === conc)!;
          return rr.keys / (rr.ms / 1000);
        }),
      );
    report(
      quick ? "informer-quick" : "informer",
      [
        { name: "objects", value: n, unit: "ConfigMaps" },
        { name: "roster sync time", value: rosterSync, unit: "ms" },
        { name: "makeInformer sync time", value: plainSync, unit: "ms" },
        { name: "sync time ratio (makeInformer / roster)", value: plainSync / rosterSync, unit: "x" },
        { name: "roster RSS after sync", value: rosterRss, unit: "MiB" },
        { name: "makeInformer RSS after sync", value: plainRss, unit: "MiB" },
        { name: "roster RSS growth for the cache", value: rosterDelta, unit: "MiB" },
        { name: "makeInformer RSS growth for the cache", value: plainDelta, unit: "MiB" },
        { name: "RSS growth ratio (makeInformer / roster)", value: plainDelta / rosterDelta, unit: "x" },
        { name: "roster no-op reconcile, 1 worker", value: rate("roster", 1), unit: "keys/s" },
        { name: "roster no-op reconcile, 4 workers", value: rate("roster", 4), unit: "keys/s" },
        { name: "bare loop over makeInformer cache (floor)", value: rate("makeInformer", 1), unit: "keys/s" },
      ],
      { rounds, createMs, results },
    );
  } finally {
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${join(dir, "sandbox")}.log`, { force: true });
  }
}

const i = process.argv.indexOf("--child");
if (i >= 0) {
  const [variant, kubeconfig, namespace, n] = process.argv.slice(i + 1);
  const r = await child(variant!, kubeconfig!, namespace!, Number(n));
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
} else {
  await main();
}
