/**
 * V8 heap limits derived from the container's memory limit: the one place
 * that decides them (docs/scaling.md, "Sizing the memory limit").
 *
 * Inside a container Node sizes its heap from the cgroup limit, to about the
 * limit itself, which leaves no room for native memory (sockets, TLS, malloc,
 * the binary) and lets V8 grow old space far past the live heap before it
 * collects. `roster run` therefore starts V8 with an old-space cap of the
 * limit minus a native reserve and a small young generation, unless
 * NODE_OPTIONS or the command line already set `--max-old-space-size` (the
 * chart's `heapLimitMiB`, an explicit override). V8 fixes its heap limits
 * when it starts, so main.ts re-executes the process once with the flags
 * (`process.execve`: same PID, no parent left behind).
 *
 * Only node:fs here: main.ts decides before it loads anything heavy.
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";

const MiB = 1024 * 1024;

/** Native memory, the young generation and the node binary (RSS peak − old-space cap was 52–173 MiB at 1k–50k). */
export const NATIVE_RESERVE_MIB = 256;
/** Semi-space cap: a larger young generation only delays promotion (docs/scaling.md, Memory). */
export const MAX_SEMI_SPACE_MIB = 16;

export interface HeapLimits {
  /** `--max-old-space-size` */
  oldSpaceMiB: number;
  /** `--max-semi-space-size` */
  semiSpaceMiB: number;
}

/**
 * The limits for a container memory limit: old space gets the limit minus
 * the native reserve, but never less than half of it (small limits); the
 * semi-space 1/32 of the limit, at most 16 MiB.
 */
export function heapLimitsFor(limitBytes: number): HeapLimits {
  const limit = Math.floor(limitBytes / MiB);
  const reserve = Math.min(NATIVE_RESERVE_MIB, Math.floor(limit / 2));
  return {
    oldSpaceMiB: Math.max(16, limit - reserve),
    semiSpaceMiB: Math.max(1, Math.min(MAX_SEMI_SPACE_MIB, Math.floor(limit / 32))),
  };
}

export function heapFlags(l: HeapLimits): string[] {
  return [`--max-old-space-size=${l.oldSpaceMiB}`, `--max-semi-space-size=${l.semiSpaceMiB}`];
}

/** Whether the flags (execArgv, NODE_OPTIONS) already cap old space; V8 accepts `_` for `-`. */
export function setsHeapLimit(flags: string): boolean {
  return /(^|\s)--max[-_]old[-_]space[-_]size\b/.test(flags);
}

/** A cgroup limit file's value in bytes; undefined for none ("max", v1's page-rounded 2^63). */
export function parseLimit(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (!t || t === "max" || !/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n > 0 && n < 2 ** 62 ? n : undefined;
}

/**
 * The memory limit of this process's cgroup, the smallest along its path
 * (a limit on a parent, a pod's cgroup, binds too): cgroup v2 `memory.max`,
 * else v1's `memory.limit_in_bytes` (hybrid hosts mount v2 without the memory
 * controller). `/proc/self/cgroup` names the path; inside a cgroup namespace
 * it is `/`, and a host path that is not mounted falls back to the root.
 * `read` returns a file's text or undefined.
 */
export function cgroupMemoryLimit(read: (path: string) => string | undefined): number | undefined {
  const self = read("/proc/self/cgroup") ?? "";
  const lines = self.split("\n").filter(Boolean);
  const v2 = lines.find((l) => l.startsWith("0::"))?.slice(3);
  const v1 = lines
    .map((l) => l.split(":"))
    .find((f) => f.length >= 3 && f[1]!.split(",").includes("memory"))
    ?.slice(2)
    .join(":");
  const smallest = (root: string, path: string, file: string): number | undefined => {
    let found: number | undefined;
    let any = false;
    const parts = path.split("/").filter(Boolean);
    for (let i = parts.length; i >= 0; i--) {
      const dir = [root, ...parts.slice(0, i)].join("/");
      const text = read(`${dir}/${file}`);
      if (text === undefined) continue;
      any = true;
      const n = parseLimit(text);
      if (n !== undefined && (found === undefined || n < found)) found = n;
    }
    return any ? (found ?? Number.POSITIVE_INFINITY) : undefined;
  };
  const unbounded = (n: number | undefined) => (n === Number.POSITIVE_INFINITY ? undefined : n);
  if (v2 !== undefined) {
    const n = smallest("/sys/fs/cgroup", v2, "memory.max");
    if (n !== undefined) return unbounded(n);
  }
  if (v1 !== undefined) return unbounded(smallest("/sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"));
  return undefined;
}

/**
 * The flags `roster run` re-executes with: none when the flags already cap
 * old space, when there is no cgroup limit, or when the limit is not below
 * the machine's memory (an unconstrained cgroup).
 */
export function derivedHeapFlags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
  limitBytes: number | undefined,
  physicalBytes: number,
): string[] | undefined {
  if (setsHeapLimit(`${execArgv.join(" ")} ${nodeOptions ?? ""}`)) return undefined;
  if (limitBytes === undefined || limitBytes >= physicalBytes) return undefined;
  return heapFlags(heapLimitsFor(limitBytes));
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** `roster run`'s decision for this process. */
export function heapFlagsForThisProcess(): string[] | undefined {
  return derivedHeapFlags(
    process.execArgv,
    process.env.NODE_OPTIONS,
    cgroupMemoryLimit(readText),
    totalmem(),
  );
}
