/**
 * Summarises a V8 .cpuprofile (`bench/small.bench.ts --profile`): self time
 * by category (the first frame on the stack, from the leaf up, that names
 * one), and the top functions by self time.
 *
 *   node bench/cpu-summary.ts /tmp/small.cpuprofile [--top 30]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "30" } },
});
const profile = JSON.parse(readFileSync(positionals[0]!, "utf8")) as Profile;

/** Category of one frame, or undefined to look further up the stack. */
function category(f: Node["callFrame"]): string | undefined {
  const u = f.url;
  const n = f.functionName;
  if (n === "(garbage collector)") return "GC";
  if (n === "(idle)") return "idle";
  if (n === "(program)") return "(program: native, outside JS)";
  if (u.includes("prom-client")) return "metrics (prom-client)";
  if (/src\/kube\/(log|events)\.ts/.test(u) || u.includes("pino")) return "logging/events";
  if (/src\/health\/(http1|http-probe)\.ts/.test(u)) return "HTTP probe code";
  if (/src\/health\/(timer-heap|schedule)\.ts/.test(u)) return "timers/scheduling";
  if (/src\/health\/(verdict|engine|limiter|signal|stall|dns|policy)\.ts/.test(u)) return "probe engine";
  if (/src\/operator\/(verdicts|instance-view|instances|status|publisher|publish-plan)\.ts/.test(u))
    return "operator: verdicts, statuses, publication";
  if (/src\/kube\/(informer|watch|cache|queue|controller)/.test(u) || u.includes("client-node"))
    return "informer/watch, API client";
  if (u.includes("src/")) return `other src (${u.replace(/^.*\/src\//, "")})`;
  if (/node:(net|_http|http|internal\/(net|stream|streams|http))|node:stream|node:dns/.test(u))
    return undefined; // Node's own networking: charged to the caller below
  if (/node:(internal\/)?timers/.test(u)) return "timers/scheduling";
  return undefined;
}

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}

const cats = new Map<string, number>();
const fns = new Map<string, number>();
let busy = 0;
for (const [id, us] of self) {
  const leaf = byId.get(id)!;
  let cat: string | undefined;
  let nodeNet = false;
  for (let cur: number | undefined = id; cur !== undefined && !cat; cur = parent.get(cur)) {
    const f = byId.get(cur)!.callFrame;
    cat = category(f);
    if (!cat && /^node:/.test(f.url) && !/timers/.test(f.url)) nodeNet = true;
  }
  const name = cat ?? (nodeNet ? "Node core (net, streams, HTTP) outside Roster frames" : "other");
  const finalName = cat && nodeNet && cat === "HTTP probe code" ? "HTTP probe code (incl. Node net)" : name;
  cats.set(finalName, (cats.get(finalName) ?? 0) + us);
  if (leaf.callFrame.functionName !== "(idle)") busy += us;
  const f = leaf.callFrame;
  const key = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(node_modules|src)\//, "$1/")}:${f.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
}

const total = profile.endTime - profile.startTime;
console.log(`profile ${(total / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e3).toFixed(0)} ms`);
console.log("\nself time by category (ms, share of busy):");
for (const [k, v] of [...cats].sort((a, b) => b[1] - a[1])) {
  if (k === "idle") continue;
  console.log(`  ${(v / 1e3).toFixed(0).padStart(7)}  ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`);
}
console.log(`\ntop ${values.top} functions by self time (ms):`);
for (const [k, v] of [...fns]
  .filter(([k]) => !k.startsWith("(idle)"))
  .sort((a, b) => b[1] - a[1])
  .slice(0, Number(values.top))) {
  console.log(`  ${(v / 1e3).toFixed(1).padStart(7)}  ${k}`);
}
