/**
 * The sandbox node for tests: a private sandbox started with --node (kubelet
 * and containerd in the data plane's node namespace), images built here as
 * OCI archives by `roster-sandbox oci-image` and imported with `ctr`, never
 * pulled. Without root or the node's packages a test skips with the reason;
 * under CI=true it fails instead.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TestContext } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { defaultSandboxBinary, repoRoot, type Sandbox, startSandbox } from "../../../src/dev/sandbox.ts";
import { dataPlaneUnsupported, readDataPlane, TestHosts } from "../../../src/dev/testhosts.ts";

/** node.json of a running node (sandbox/node.go). */
export interface NodeInfo {
  name: string;
  pid: number;
  dir: string;
  containerdAddress: string;
  containerdNamespace: string;
  podCIDR: string;
  cgroupRoot: string;
  pauseImage: string;
  clusterDNS: string;
  netns: string;
  nodeIP: string;
  kubeletLog: string;
  containerdLog: string;
  kubeconfig: string;
  apiServer: string;
}

export interface TestNode {
  sandbox: Sandbox;
  kc: KubeConfig;
  node: NodeInfo;
  hosts: TestHosts;
  /** A scratch directory removed at the end. */
  scratch: string;
}

/** Why this machine cannot run the node, or undefined when it can. */
export function nodeUnsupported(): string | undefined {
  const plane = dataPlaneUnsupported();
  if (plane) return plane;
  for (const tool of ["containerd", "ctr", "runc", "nsenter"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `the node needs \`${tool}\` (\`make node-deps\`: containerd, runc, util-linux)`;
    }
  }
  if (!existsSync("/usr/lib/cni/bridge") || !existsSync("/usr/lib/cni/host-local"))
    return "the node needs the CNI plugins in /usr/lib/cni (`make node-deps`: containernetworking-plugins)";
  for (const bin of ["roster-pause", "roster-echo"])
    if (!existsSync(resolve(repoRoot, "bin", bin))) return `bin/${bin} is missing (\`make node-images\`)`;
  return undefined;
}

/**
 * A private sandbox with a node, stopped (and its data removed) when the
 * test ends; undefined when the test was skipped.
 */
export async function testNode(t: TestContext): Promise<TestNode | undefined> {
  const reason = nodeUnsupported();
  if (reason) {
    if (process.env.CI === "true") throw new Error(`CI=true but ${reason}`);
    t.skip(reason);
    return undefined;
  }
  // Short: the containerd socket lives under it (unix socket paths are short).
  const scratch = mkdtempSync("/tmp/rst-node-");
  const sandbox = await startSandbox({ dir: join(scratch, "sb"), node: true, readyTimeoutMs: 300_000 });
  const kc = new KubeConfig();
  kc.loadFromFile(sandbox.kubeconfigPath);
  const node = JSON.parse(readFileSync(sandbox.nodeInfo!, "utf8")) as NodeInfo;
  const plane = readDataPlane(sandbox.kubeconfigPath);
  if (!plane) throw new Error("the node's sandbox runs no data plane");
  const hosts = TestHosts.open(plane);
  t.after(async () => {
    await hosts.close();
    await sandbox.stop();
    rmSync(scratch, { recursive: true, force: true });
    rmSync(`${join(scratch, "sb")}.log`, { force: true });
  });
  return { sandbox, kc, node, hosts, scratch };
}

/**
 * Packs files of this machine as an OCI image archive (one layer, the
 * entrypoint, user and ports given), as `roster-sandbox oci-image` writes it.
 */
export function buildImage(
  out: string,
  {
    ref,
    files,
    entrypoint,
    ports = [],
  }: { ref: string; files: Record<string, string>; entrypoint?: string; ports?: number[] },
): string {
  execFileSync(defaultSandboxBinary, [
    "oci-image",
    `--out=${out}`,
    `--ref=${ref}`,
    ...Object.entries(files).map(([target, source]) => `--file=${source}:${target}`),
    ...(entrypoint ? [`--entrypoint=${entrypoint}`] : []),
    ...ports.map((p) => `--port=${p}`),
  ]);
  return out;
}

/** Imports an image archive (OCI layout or `docker save`) into the node's containerd, where the kubelet finds it. */
export function importImage(node: NodeInfo, archive: string): void {
  execFileSync(
    "ctr",
    [
      "--address",
      node.containerdAddress,
      "--namespace",
      node.containerdNamespace,
      "images",
      "import",
      archive,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
}

/** The image references the node's containerd holds. */
export function nodeImages(node: NodeInfo): string[] {
  const out = execFileSync(
    "ctr",
    [
      "--address",
      node.containerdAddress,
      "--namespace",
      node.containerdNamespace,
      "images",
      "list",
      "--quiet",
    ],
    { encoding: "utf8" },
  );
  return out.split("\n").filter(Boolean);
}
