/**
 * What wakes the operator's event loop (`small.bench.ts --wakeups`):
 * preloaded into the operator child with `--import`, it counts the
 * callbacks the loop runs, by resource type and by where the resource was
 * created (the first frame in `src/` or `node_modules/` that is not the
 * clock's `setTimer`). A timer's callbacks are its wake-ups; a socket's are
 * its reads. Promise callbacks are not counted (they run inside another
 * callback, never on a wake-up of their own).
 *
 * Works with any checkout's `operator-child.ts` (`--trees`): the bench asks
 * over the same IPC channel with `{ wakeups: true }` and gets back
 * `{ wakeups: counts }` (counts since the previous request).
 *
 * Costs a stack trace per created resource: the figures of a run with it are
 * not CPU figures.
 */
import { createHook } from "node:async_hooks";

const site = new Map<number, string>();
let counts = new Map<string, number>();

function creator(type: string): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const lines = (new Error().stack ?? "").split("\n").slice(2);
  Error.stackTraceLimit = limit;
  const frame = lines.find(
    (l) => /\/(src|node_modules)\//.test(l) && !/util\/clock\.ts|bench\/wakeups\.ts/.test(l),
  );
  const where = frame
    ? frame
        .trim()
        .replace(/^at /, "")
        .replace(/file:\/\/\S*\/(src|node_modules)\//, "$1/")
        .replace(/node_modules\/\.pnpm\/[^/]+\/node_modules\//, "node_modules/")
        .replace(/:\d+\)?$/, ")")
    : "(node internals)";
  return `${type} ${where}`;
}

createHook({
  init(id, type) {
    if (type === "PROMISE") return;
    site.set(id, creator(type));
  },
  before(id) {
    const s = site.get(id);
    if (s !== undefined) counts.set(s, (counts.get(s) ?? 0) + 1);
  },
  destroy(id) {
    site.delete(id);
  },
}).enable();

process.on("message", (m: { wakeups?: boolean }) => {
  if (m?.wakeups !== true) return;
  const out = Object.fromEntries(counts);
  counts = new Map();
  process.send?.({ wakeups: out });
});
