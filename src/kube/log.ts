/**
 * Structured logs (pino), one JSON object per line.
 *
 * Conventions: controllers log with `controller`, reconciles add `key` and
 * `reconcileId` (a fresh id per reconcile, like controller-runtime's
 * reconcileID), informers log with `resource`.
 *
 * Guarantees:
 * - `setLogLevel(root, level)` changes the level of the root logger and of
 *   every child created from it so far (pino children otherwise keep the
 *   level they were born with), so a config reload takes effect everywhere.
 */
import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";

export type { Logger } from "pino";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

const children = new WeakMap<Logger, Set<WeakRef<Logger>>>();

export function createLogger(
  options: { level?: LogLevel; name?: string } = {},
  destination?: DestinationStream,
): Logger {
  const family = new Set<WeakRef<Logger>>();
  let sweepAt = 1024;
  const opts: LoggerOptions = {
    level: options.level ?? "info",
    base: options.name ? { name: options.name } : {},
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    onChild: (child) => {
      family.add(new WeakRef(child));
      // Per-reconcile children come and go: sweep dead refs, amortized.
      if (family.size > sweepAt) {
        for (const ref of family) if (!ref.deref()) family.delete(ref);
        sweepAt = Math.max(1024, family.size * 2);
      }
    },
  };
  const root = destination ? pino(opts, destination) : pino(opts);
  children.set(root, family);
  return root;
}

export function setLogLevel(root: Logger, level: LogLevel): void {
  root.level = level;
  for (const ref of children.get(root) ?? []) {
    const child = ref.deref();
    if (child) child.level = level;
  }
}

/** A logger that drops everything, for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
