/**
 * Summarises a V8 heap snapshot (`.heapsnapshot`) by constructor: count and
 * self size of every node type/name, largest first, like the "Summary" view
 * of Chrome DevTools without retained sizes.
 *
 *   node --max-old-space-size=8192 bench/heap-summary.ts <file> [top=40]
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error("usage: heap-summary.ts <file> [top]");
const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0];
const width = fields.length;
const iType = fields.indexOf("type");
const iName = fields.indexOf("name");
const iSize = fields.indexOf("self_size");
const groups = new Map<string, { count: number; bytes: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]!]!;
  const name = snap.strings[snap.nodes[i + iName]!]!;
  const size = snap.nodes[i + iSize]!;
  // Strings and code are grouped by type; objects by constructor name.
  const key =
    type === "object" || type === "closure" || type === "native" ? `${type} ${name.slice(0, 60)}` : type;
  const g = groups.get(key) ?? { count: 0, bytes: 0 };
  g.count++;
  g.bytes += size;
  total += size;
  groups.set(key, g);
}
const top = [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(topArg ?? 40));
console.log(`total self size ${(total / 2 ** 20).toFixed(1)} MiB`);
for (const [k, g] of top) {
  console.log(`${(g.bytes / 2 ** 20).toFixed(2).padStart(9)} MiB ${String(g.count).padStart(9)}  ${k}`);
}
