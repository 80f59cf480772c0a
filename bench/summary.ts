/**
 * The suite's summary: a Markdown table per scenario with the ratio of each
 * figure to the committed baseline (`bench/baseline.json`), the peer
 * comparison when `bench/results/peer*.json` exists, and a small SVG plot of
 * publication latency and operator CPU versus instance count; the same
 * figures, the run's wall time and the machine's load go to summary.json.
 *
 * `node bench/summary.ts` rebuilds the summary from bench/results/suite-*.json;
 * `--write-baseline` also replaces bench/baseline.json with those figures.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Figure, resultsDir } from "./report.ts";

export interface ScenarioResult {
  scenario: string;
  instances: number;
  services: number;
  intervalSeconds: number;
  figures: Figure[];
  /** API server requests per second in the window, by "VERB resource[/subresource]" (all clients). */
  requestsPerSecond?: Record<string, number>;
  /** API server writes per verdict transition, by "VERB resource[/subresource]". */
  writesPerTransition?: Record<string, number>;
  /** 1-minute load average at the scenario's start, window start and end. */
  loadAverage?: Record<string, number>;
}

export interface SummaryOptions {
  writeBaseline?: boolean;
  /** The whole run, sandbox start and stop included. */
  wallSeconds?: number;
  loadAverage?: Record<string, number>;
}

interface Baseline {
  at: string;
  machine: { node: string; cpus: number; cpuModel: string; memoryBytes: number };
  scenarios: Record<string, Record<string, number>>;
}

export const baselineFile = resolve(dirname(fileURLToPath(import.meta.url)), "baseline.json");

const fmt = (v: number) =>
  !Number.isFinite(v)
    ? "–"
    : Number.isInteger(v)
      ? String(v)
      : Math.abs(v) >= 100
        ? v.toFixed(0)
        : v.toFixed(3);

function machine(): Baseline["machine"] {
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryBytes: totalmem(),
  };
}

export function writeSummary(results: ScenarioResult[], options: SummaryOptions = {}): void {
  const baseline: Baseline | undefined = existsSync(baselineFile)
    ? (JSON.parse(readFileSync(baselineFile, "utf8")) as Baseline)
    : undefined;
  const m = machine();
  const lines: string[] = [
    "# Roster benchmark summary",
    "",
    `${new Date().toISOString()} · Node ${m.node} · ${m.cpus} × ${m.cpuModel} · ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB${options.wallSeconds ? ` · run ${options.wallSeconds.toFixed(0)} s` : ""}${options.loadAverage ? ` · load average ${loadText(options.loadAverage)}` : ""}`,
    baseline
      ? `Baseline: bench/baseline.json (${baseline.at}, ${baseline.machine.cpus} × ${baseline.machine.cpuModel}). Ratio = now / baseline (for times, CPU, memory, writes and latency, lower is better).`
      : "No bench/baseline.json: no ratios.",
    "",
  ];
  console.log("\n== ratios to bench/baseline.json (now / baseline)");
  for (const r of results) {
    const base = baseline?.scenarios[r.scenario];
    lines.push(
      `## ${r.scenario}`,
      "",
      "| figure | value | target | baseline | ratio |",
      "|---|---|---|---|---|",
    );
    for (const f of r.figures) {
      const b = base?.[f.name];
      const ratio = b === undefined || b === 0 ? Number.NaN : f.value / b;
      lines.push(
        `| ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.target ?? ""} | ${b === undefined ? "–" : fmt(b)} | ${fmt(ratio)} |`,
      );
      if (Number.isFinite(ratio)) console.log(`  ${r.scenario}  ${f.name.padEnd(36)} ${fmt(ratio)}`);
    }
    if (!base) console.log(`  ${r.scenario}: not in the baseline`);
    lines.push("");
    if (r.loadAverage) lines.push(`Load average (1 min): ${loadText(r.loadAverage)}.`, "");
    if (r.requestsPerSecond)
      lines.push(
        `API server requests per second in the window, by verb and resource (all clients): ${perKey(r.requestsPerSecond)}.`,
        "",
      );
    if (r.writesPerTransition)
      lines.push(
        `API server writes per transition, by verb and resource: ${perKey(r.writesPerTransition)}.`,
        "",
      );
  }
  for (const file of existsSync(resultsDir) ? readdirSync(resultsDir) : []) {
    if (!/^peer(-quick|-scale)?\.json$/.test(file)) continue;
    const peer = JSON.parse(readFileSync(resolve(resultsDir, file), "utf8")) as {
      at: string;
      figures: Figure[];
    };
    lines.push(
      `## Peer: Kubernetes' EndpointSlice controller vs Roster (${file}, ${peer.at})`,
      "",
      "Publication path only: Roster's latency starts at its judged threshold-crossing probe, the controller's at the Pod status write (a kubelet's job); Roster's probing is extra work the controller does not do.",
      "",
      "| figure | value |",
      "|---|---|",
      ...peer.figures.map((f) => `| ${f.name} | ${fmt(f.value)} ${f.unit} |`),
      "",
    );
  }
  lines.push("![latency and CPU versus instance count](scaling.svg)", "");
  writeFileSync(resolve(resultsDir, "summary.md"), lines.join("\n"));
  const ratios = (r: ScenarioResult) => {
    const base = baseline?.scenarios[r.scenario];
    const out: Record<string, number> = {};
    for (const f of r.figures) {
      const b = base?.[f.name];
      if (b !== undefined && b !== 0 && Number.isFinite(f.value / b)) out[f.name] = f.value / b;
    }
    return out;
  };
  writeFileSync(
    resolve(resultsDir, "summary.json"),
    `${JSON.stringify({ at: new Date().toISOString(), machine: m, ...options, writeBaseline: undefined, baseline: baseline?.at, scenarios: results.map((r) => ({ ...r, ratios: ratios(r) })) }, null, 2)}\n`,
  );
  writeFileSync(resolve(resultsDir, "scaling.svg"), plot(results));
  console.log(`  summary: ${resolve(resultsDir, "summary.md")}`);
  if (options.writeBaseline) {
    const next: Baseline = {
      at: new Date().toISOString(),
      machine: m,
      scenarios: Object.fromEntries(
        results.map((r) => [r.scenario, Object.fromEntries(r.figures.map((f) => [f.name, f.value]))]),
      ),
    };
    writeFileSync(baselineFile, `${JSON.stringify(next, null, 2)}\n`);
    console.log(`  baseline written: ${baselineFile}`);
  }
}

const loadText = (l: Record<string, number>) =>
  Object.entries(l)
    .map(([k, v]) => `${v.toFixed(2)} (${k})`)
    .join(", ");

const perKey = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(", ");

/** Two panels (slice latency p99, operator CPU) against instances, one line per interval; log x. */
function plot(results: ScenarioResult[]): string {
  const W = 360;
  const H = 220;
  const pad = { l: 56, r: 16, t: 28, b: 40 };
  const value = (r: ScenarioResult, name: string) =>
    r.figures.find((f) => f.name === name)?.value ?? Number.NaN;
  const panels = [
    { title: "slice publication latency p99 (ms)", metric: "publication latency slice p99" },
    { title: "operator CPU, steady (cores)", metric: "operator CPU, steady" },
  ];
  const intervals = [...new Set(results.map((r) => r.intervalSeconds))].sort((a, b) => b - a);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
  const xs = results.map((r) => r.instances);
  const xMin = Math.log10(Math.min(...xs, 1000) / 1.5);
  const xMax = Math.log10(Math.max(...xs, 10_000) * 1.5);
  const parts: string[] = [];
  panels.forEach((panel, p) => {
    const ox = p * W;
    const ys = results.map((r) => value(r, panel.metric)).filter(Number.isFinite);
    const yMax = Math.max(...ys, 1e-9) * 1.15;
    const X = (n: number) => ox + pad.l + ((Math.log10(n) - xMin) / (xMax - xMin)) * (W - pad.l - pad.r);
    const Y = (v: number) => pad.t + (1 - v / yMax) * (H - pad.t - pad.b);
    parts.push(
      `<text x="${ox + W / 2}" y="16" text-anchor="middle" font-size="12">${panel.title}</text>`,
      `<line x1="${ox + pad.l}" y1="${H - pad.b}" x2="${ox + W - pad.r}" y2="${H - pad.b}" stroke="#333"/>`,
      `<line x1="${ox + pad.l}" y1="${pad.t}" x2="${ox + pad.l}" y2="${H - pad.b}" stroke="#333"/>`,
    );
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4;
      parts.push(
        `<text x="${ox + pad.l - 4}" y="${Y(v) + 4}" text-anchor="end" font-size="10">${fmt(Number(v.toPrecision(2)))}</text>`,
        `<line x1="${ox + pad.l}" y1="${Y(v)}" x2="${ox + W - pad.r}" y2="${Y(v)}" stroke="#eee"/>`,
      );
    }
    for (const n of [1000, 10_000, 50_000]) {
      if (Math.log10(n) < xMin || Math.log10(n) > xMax) continue;
      parts.push(
        `<text x="${X(n)}" y="${H - pad.b + 14}" text-anchor="middle" font-size="10">${n / 1000}k</text>`,
      );
    }
    parts.push(
      `<text x="${ox + (W + pad.l) / 2}" y="${H - 8}" text-anchor="middle" font-size="10">instances</text>`,
    );
    intervals.forEach((interval, c) => {
      const pts = results
        .filter((r) => r.intervalSeconds === interval)
        .sort((a, b) => a.instances - b.instances)
        .map((r) => [X(r.instances), Y(value(r, panel.metric))] as const)
        .filter(([, y]) => Number.isFinite(y));
      const color = colors[c % colors.length];
      if (pts.length > 1)
        parts.push(
          `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}"/>`,
        );
      for (const [x, y] of pts)
        parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`);
      if (p === 0)
        parts.push(
          `<text x="${ox + W - pad.r - 4}" y="${pad.t + 12 + c * 14}" text-anchor="end" font-size="10" fill="${color}">interval ${interval}s</text>`,
        );
    });
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join("\n")}\n</svg>\n`;
}

/** Rebuilds the summary from the suite's JSON reports. */
function fromReports(): ScenarioResult[] {
  return readdirSync(resultsDir)
    .filter((f) => f.startsWith("suite-") && f.endsWith(".json"))
    .map((f) => {
      const r = JSON.parse(readFileSync(resolve(resultsDir, f), "utf8")) as {
        name: string;
        figures: Figure[];
        details?: {
          apiserverRequestsPerSecond?: Record<string, number>;
          apiserverWritesPerTransition?: Record<string, number>;
          loadAverage?: Record<string, number>;
        };
      };
      const get = (n: string) => r.figures.find((x) => x.name === n)?.value ?? Number.NaN;
      return {
        scenario: r.name.replace(/^suite-/, ""),
        instances: get("instances"),
        services: get("services"),
        intervalSeconds: get("interval"),
        figures: r.figures,
        requestsPerSecond: r.details?.apiserverRequestsPerSecond,
        writesPerTransition: r.details?.apiserverWritesPerTransition,
        loadAverage: r.details?.loadAverage,
      };
    })
    .sort((a, b) => a.instances - b.instances || b.intervalSeconds - a.intervalSeconds);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeSummary(fromReports(), { writeBaseline: process.argv.includes("--write-baseline") });
}
