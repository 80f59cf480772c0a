/**
 * Runs a command against one fresh sandbox: starts the control plane,
 * installs the CRDs, runs the command with ROSTER_TEST_KUBECONFIG (and
 * KUBECONFIG) pointing at it, then stops the sandbox and removes its data.
 * Exits with the command's exit code.
 *
 *   node scripts/with-sandbox.ts -- node --test 'test/integration/**\/*.test.ts'
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { installCrds } from "../src/dev/crds.ts";
import { repoRoot, startSandbox } from "../src/dev/sandbox.ts";
import { dataPlaneUnsupported } from "../src/dev/testhosts.ts";

const sep = process.argv.indexOf("--");
const command = sep >= 0 ? process.argv.slice(sep + 1) : [];
if (command.length === 0) {
  console.error("usage: node scripts/with-sandbox.ts -- <command> [args...]");
  process.exit(2);
}

const dir = resolve(repoRoot, ".sandbox", `test-${process.pid}`);
rmSync(dir, { recursive: true, force: true });
const started = Date.now();
// The data plane (kube-proxy + CoreDNS in a node namespace) when the machine
// allows it; tests that need it skip with this reason otherwise (never under CI).
const unsupported = dataPlaneUnsupported();
if (unsupported) console.log(`no data plane: ${unsupported}`);
const sandbox = await startSandbox({ dir, dataPlane: !unsupported });
const kc = new KubeConfig();
kc.loadFromFile(sandbox.kubeconfigPath);
await installCrds(kc);
console.log(
  `sandbox ready in ${sandbox.startSeconds.toFixed(1)}s (CRDs installed after ${((Date.now() - started) / 1000).toFixed(1)}s): ${sandbox.server}`,
);

const child = spawn(command[0]!, command.slice(1), {
  stdio: "inherit",
  env: { ...process.env, ROSTER_TEST_KUBECONFIG: sandbox.kubeconfigPath, KUBECONFIG: sandbox.kubeconfigPath },
});
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => child.kill(sig));
const code = await new Promise<number>((done) => child.on("exit", (c, s) => done(c ?? (s ? 128 : 1))));
await sandbox.stop();
rmSync(dir, { recursive: true, force: true });
rmSync(`${dir}.log`, { force: true });
process.exit(code);
