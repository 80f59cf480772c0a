/**
 * Shared output for benchmarks: print figures as a table and write a JSON
 * report to bench/results/<name>.json. Targets are recorded next to the
 * figures, never asserted: a benchmark reports, the reader judges.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** Optional goal, e.g. "< 50" — reported, not enforced. */
  target?: string;
}

export const resultsDir = resolve(dirname(fileURLToPath(import.meta.url)), "results");

export function report(name: string, figures: Figure[], details: Record<string, unknown> = {}): void {
  const width = Math.max(...figures.map((f) => f.name.length));
  console.log(`\n== ${name}`);
  for (const f of figures) {
    const value = Number.isInteger(f.value) ? String(f.value) : f.value.toFixed(3);
    console.log(`  ${f.name.padEnd(width)}  ${value} ${f.unit}${f.target ? `  (target ${f.target})` : ""}`);
  }
  mkdirSync(resultsDir, { recursive: true });
  const file = resolve(resultsDir, `${name}.json`);
  const machine = { node: process.version, cpus: cpus().length, memoryBytes: totalmem() };
  writeFileSync(
    file,
    `${JSON.stringify({ name, at: new Date().toISOString(), machine, figures, details }, null, 2)}\n`,
  );
  console.log(`  report: ${file}`);
}

/** Resident set size in MiB. */
export function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
