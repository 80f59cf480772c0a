/**
 * Runs the `roster` CLI as users do: a child process `node src/cli/main.ts`,
 * with the project's Node 24 first on PATH and an explicit environment (the
 * test runner's KUBECONFIG is removed, so each test says which cluster the
 * CLI sees).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import type { TestContext } from "node:test";
import { repoRoot } from "../../src/dev/sandbox.ts";

export const mainTs = resolve(repoRoot, "src/cli/main.ts");
const nodeBin = resolve(repoRoot, "node_modules/.bin");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The CLI's environment: ours without KUBECONFIG, Node 24 first on PATH, then `env` (undefined removes). */
export function cliEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env, PATH: `${nodeBin}:${process.env.PATH ?? ""}` };
  delete out.KUBECONFIG;
  delete out.ROSTER_TEST_KUBECONFIG;
  delete out.NODE_TEST_CONTEXT; // the test runner's; a child node must not think it is a test
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

export interface RosterProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the output so far once stdout matches `re`; rejects if the process exits first or on timeout. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<string>;
  readonly exited: Promise<CliResult>;
}

/**
 * Starts `roster <args>`; the process is killed (SIGKILL, with its process
 * group when `detached`) when the test ends if it is still running.
 */
export function startRoster(
  t: TestContext | undefined,
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; detached?: boolean } = {},
): RosterProcess {
  const proc = spawn("node", [mainTs, ...args], {
    env: cliEnv(options.env),
    cwd: options.cwd ?? repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  proc.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const w of waiters) w();
  });
  proc.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<CliResult>((done) => {
    proc.once("close", (code, signal) => {
      for (const w of waiters) w();
      done({ code, signal, stdout, stderr });
    });
  });
  t?.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        if (options.detached) process.kill(-proc.pid!, "SIGKILL");
        else proc.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
  return {
    proc,
    pid: proc.pid!,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitForOutput(re, timeoutMs) {
      return new Promise<string>((done, fail) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          fail(
            new Error(
              `no output matching ${re} after ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          if (re.test(stdout)) {
            clearTimeout(timer);
            waiters.delete(check);
            done(stdout);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            fail(
              new Error(
                `exited (${proc.exitCode ?? proc.signalCode}) before ${re}; stdout:\n${stdout}\nstderr:\n${stderr}`,
              ),
            );
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Runs `roster <args>` to completion (killed after `timeoutMs`). */
export async function roster(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const p = startRoster(undefined, args, options);
  const timer = setTimeout(() => p.proc.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for a process to exit, failing (and killing it) after `timeoutMs`. */
export async function exitsWithin(p: RosterProcess, timeoutMs: number): Promise<CliResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => {
      p.proc.kill("SIGKILL");
      fail(
        new Error(
          `still running ${timeoutMs} ms after the signal; stdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port on `host` that nothing listens on (bound, then released). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** Command lines (NUL-separated args joined by spaces) of running processes that mention `needle`. */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    const args = cmdline.split("\0").filter(Boolean).join(" ");
    if (args.includes(needle)) found.push(`${entry}: ${args}`);
  }
  return found;
}
