/**
 * Starts and stops the local control plane (`bin/roster-sandbox`) from
 * TypeScript: the test harness, `make run` and `roster dev` all use this.
 *
 * Guarantees: `startSandbox` resolves only once the apiserver answers /readyz
 * and the admin kubeconfig is written; `stop()` is idempotent and waits for
 * the process to exit; the sandbox never outlives this Node process (it is
 * started with --exit-with-parent and killed on `exit`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import type { Socket } from "node:net";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const defaultSandboxBinary = resolve(repoRoot, "bin/roster-sandbox");

export interface SandboxOptions {
  /** Data directory; reusing one keeps etcd data, certificates and ports. */
  dir: string;
  binary?: string;
  /** kube-controller-manager controllers; default: garbage collector and namespace controller. */
  controllers?: string[];
  /** Extra kube-apiserver flags, e.g. `--etcd-compaction-interval=10s`. */
  apiserverArgs?: string[];
  /** Where component logs go (default: `<dir>.log`). */
  logFile?: string;
  readyTimeoutMs?: number;
  /**
   * Also run the data plane (sandbox/dataplane.go): a node network namespace
   * with kube-proxy (nftables) and CoreDNS. Needs root, `ip` and `nft`.
   */
  dataPlane?: boolean;
  /**
   * Also run a node (sandbox/node.go; implies `dataPlane`): containerd and a
   * kubelet in the node namespace, so pods run. Needs root, containerd, runc
   * and containernetworking-plugins (`make node-deps`), and bin/roster-pause.
   */
  node?: boolean;
  /** With `node`: OCI or Docker image archives imported into the node's containerd before ready. */
  nodeImages?: string[];
}

export interface Sandbox {
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly pid: number;
  /** Seconds from process start to /readyz, as the sandbox reported it. */
  readonly startSeconds: number;
  /** dataplane.json of the data plane, when started with `dataPlane`. */
  readonly dataPlaneInfo?: string;
  /** node.json of the node, when started with `node`. */
  readonly nodeInfo?: string;
  stop(): Promise<void>;
}

const readyLine =
  /^roster-sandbox ready in ([\d.]+)s: server=(\S+) kubeconfig=(\S+)(?: dataplane=(\S+))?(?: node=(\S+))?$/;

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const binary = options.binary ?? defaultSandboxBinary;
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: build it with \`make sandbox\``);
  }
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const logFile = options.logFile ?? `${dir}.log`;
  const args = ["--dir", dir, "--log-file", logFile, "--exit-with-parent"];
  if (options.controllers) args.push(`--controllers=${options.controllers.join(",")}`);
  for (const a of options.apiserverArgs ?? []) args.push(`--apiserver-arg=${a}`);
  if (options.dataPlane) args.push("--data-plane");
  if (options.node) args.push("--node");
  for (const image of options.nodeImages ?? []) args.push(`--node-image=${resolve(image)}`);

  // Its own process group: a terminal's Ctrl-C reaches only this process,
  // which stops what uses the API server first (--exit-with-parent still
  // ends the sandbox if this process dies).
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const exited = new Promise<void>((done) => child.once("exit", () => done()));

  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });

  const ready = await new Promise<RegExpExecArray>((done, fail) => {
    const timer = setTimeout(
      () =>
        fail(new Error(`sandbox not ready after ${options.readyTimeoutMs ?? 120_000} ms; logs: ${logFile}`)),
      options.readyTimeoutMs ?? 120_000,
    );
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = readyLine.exec(line);
      if (m) {
        clearTimeout(timer);
        done(m);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`sandbox exited (${signal ?? code}) before ready: ${stderr.trim()} (logs: ${logFile})`));
    });
  }).catch(async (err: unknown) => {
    await stopProcess(child, exited);
    process.off("exit", killOnExit);
    throw err;
  });

  // Do not keep the event loop alive for the sandbox: a test file that
  // started a private one must still exit, and the exit hook kills it.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as Socket | null)?.unref();

  let stopping: Promise<void> | undefined;
  return {
    dir,
    server: ready[2]!,
    kubeconfigPath: ready[3]!,
    startSeconds: Number(ready[1]),
    ...(ready[4] ? { dataPlaneInfo: ready[4] } : {}),
    ...(ready[5] ? { nodeInfo: ready[5] } : {}),
    pid: child.pid!,
    stop() {
      stopping ??= stopProcess(child, exited).finally(() => process.off("exit", killOnExit));
      return stopping;
    },
  };
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.ref(); // keep this process alive until the sandbox has exited
  child.kill("SIGTERM");
  const timeout = new Promise<"timeout">((done) => setTimeout(() => done("timeout"), 20_000).unref());
  if ((await Promise.race([exited, timeout])) === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}
