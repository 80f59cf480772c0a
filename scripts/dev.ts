/**
 * `make run`: a local control plane with Roster's CRDs and the examples.
 * Stops everything it started on Ctrl-C.
 */
import { resolve } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { installCrds } from "../src/dev/crds.ts";
import { repoRoot, startSandbox } from "../src/dev/sandbox.ts";

const sandbox = await startSandbox({ dir: resolve(repoRoot, ".sandbox/dev") });
const kc = new KubeConfig();
kc.loadFromFile(sandbox.kubeconfigPath);
await installCrds(kc);
console.log(`Local control plane ready in ${sandbox.startSeconds.toFixed(1)}s at ${sandbox.server}`);
console.log(`  export KUBECONFIG=${sandbox.kubeconfigPath}`);
console.log("The operator is not wired in yet. Press Ctrl-C to stop.");
await new Promise<void>((done) => {
  process.once("SIGINT", done);
  process.once("SIGTERM", done);
});
await sandbox.stop();
