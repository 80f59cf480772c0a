/**
 * The integration tests' cluster: one real sandbox for the whole test run
 * (started by scripts/with-sandbox.ts, which sets ROSTER_TEST_KUBECONFIG), or,
 * when a test file runs on its own, a private sandbox for this process.
 * Each test gets its own namespace, deleted when the test ends.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { installCrds } from "../../src/dev/crds.ts";
import { startSandbox } from "../../src/dev/sandbox.ts";

export interface TestCluster {
  kc: KubeConfig;
  kubeconfigPath: string;
}

let shared: Promise<TestCluster> | undefined;

export function testCluster(): Promise<TestCluster> {
  shared ??= connect();
  return shared;
}

async function connect(): Promise<TestCluster> {
  let kubeconfigPath = process.env.ROSTER_TEST_KUBECONFIG;
  if (!kubeconfigPath) {
    const dir = mkdtempSync(join(tmpdir(), "roster-test-"));
    const sandbox = await startSandbox({ dir: join(dir, "sandbox") });
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    kubeconfigPath = sandbox.kubeconfigPath;
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    await installCrds(kc);
  }
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return { kc, kubeconfigPath };
}

/** Creates a namespace for this test and deletes it (with its content) afterwards. */
export async function testNamespace(t: TestContext, prefix = "t"): Promise<string> {
  const { kc } = await testCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const name = `${prefix}-${randomBytes(4).toString("hex")}`.slice(0, 63);
  await core.createNamespace({ body: { metadata: { name, labels: { "roster.dev/test": "true" } } } });
  t.after(async () => {
    await core.deleteNamespace({ name }).catch(() => undefined);
  });
  return name;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 10_000, intervalMs = 50, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
