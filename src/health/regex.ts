/**
 * Linear-time regular expressions for body matches. A probe's regex is
 * written by users and run against bodies that servers we do not control
 * send, so a backtracking pattern like (a+)+$ must never stall the event
 * loop: V8's experimental linear engine (flag `l`) runs it in linear time.
 * The API already rejects what that engine cannot run (lookaround,
 * backreferences).
 */
import { setFlagsFromString } from "node:v8";

let enabled = false;
const compiled = new Map<string, RegExp>();

/** Compiles `source` for the linear engine (cached); throws on a pattern it cannot run. */
export function linearRegex(source: string): RegExp {
  if (!enabled) {
    setFlagsFromString("--enable-experimental-regexp-engine");
    enabled = true;
  }
  let re = compiled.get(source);
  if (!re) {
    re = new RegExp(source, "l");
    // Bounded: patterns come from specs; drop the oldest beyond a generous limit.
    if (compiled.size >= 4096) compiled.delete(compiled.keys().next().value!);
    compiled.set(source, re);
  }
  return re;
}
