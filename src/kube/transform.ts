/**
 * The informer's memory transforms: what a cached object keeps. Every cached
 * object passes through one (by default `defaultTransform`) before it is
 * stored, so the cache of 50,000 instances holds what readers use and
 * shares repeated strings, instead of the API server's bytes as parsed.
 */
import type { KubeObject } from "./object.ts";

export function stripManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata.managedFields) delete obj.metadata.managedFields;
  return obj;
}

export const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * Canonical copies of short strings, so that the values objects share
 * (apiVersion, kind, namespace, condition reasons and messages, timestamps,
 * probe settings...) are stored once however many cached objects hold them:
 * JSON.parse makes a new string for every value. Bounded: two generations of
 * at most `maxEntries` each; a value still in use moves to the new one.
 */
export function stringInterner(maxEntries = 16_384, maxLength = 64): (s: string) => string {
  let current = new Map<string, string>();
  let previous = new Map<string, string>();
  return (s) => {
    if (s.length > maxLength) return s;
    let c = current.get(s);
    if (c !== undefined) return c;
    c = previous.get(s) ?? s;
    if (current.size >= maxEntries) {
      previous = current;
      current = new Map();
    }
    current.set(c, c);
    return c;
  };
}

const sharedInterner = stringInterner();
/** Per-object values: never shared, interning them would only churn the table. */
const uniqueMetadata = new Set(["name", "uid", "resourceVersion", "generateName"]);

/**
 * Canonical copies of small subtrees, so that equal objects and arrays
 * (port lists, expected status ranges, labels, a health check that many
 * instances share, conditions written in the same second) are stored once
 * however many cached objects hold them. Keyed by their JSON (at most
 * `maxJson` characters; key order counts, which only costs sharing).
 * Shared copies are frozen: a reader that changed one would change every
 * object holding it, so it throws instead. Bounded like `stringInterner`.
 */
export function subtreeInterner(maxEntries = 4096, maxJson = 256): SubtreeInterner {
  let current = new Map<string, object>();
  let previous = new Map<string, object>();
  return {
    maxJson,
    share(json, value) {
      let c = current.get(json);
      if (c !== undefined) return c;
      c = previous.get(json) ?? Object.freeze(value);
      if (current.size >= maxEntries) {
        previous = current;
        current = new Map();
      }
      current.set(json, c);
      return c;
    },
  };
}

export interface SubtreeInterner {
  readonly maxJson: number;
  /** The canonical copy of `value`, whose JSON is `json`. */
  share(json: string, value: object): object;
}

const sharedSubtrees = subtreeInterner();

/**
 * Interns the strings below `value` and replaces its small subtrees by
 * shared copies; returns the value's JSON when it is small enough to be
 * shared itself (built from the children's, so each node is serialised once).
 */
function internValues(
  value: object,
  intern: (s: string) => string,
  subtrees: SubtreeInterner | undefined,
  skip?: Set<string>,
): string | undefined {
  const max = subtrees?.maxJson ?? -1;
  let json: string | undefined = max >= 0 ? "" : undefined;
  const add = (part: string | undefined) => {
    if (json === undefined) return;
    if (part === undefined || json.length + part.length > max) json = undefined;
    else json += part;
  };
  const child = (v: unknown, unique: boolean): [unknown, string | undefined] => {
    if (typeof v === "string") {
      const s = unique ? v : intern(v);
      return [s, json === undefined ? undefined : JSON.stringify(s)];
    }
    if (typeof v === "number" || typeof v === "boolean" || v === null) return [v, String(v)];
    if (typeof v === "object") {
      const inner = internValues(v, intern, subtrees);
      if (inner === undefined || subtrees === undefined) return [v, undefined];
      return [subtrees.share(inner, v), inner];
    }
    return [v, undefined]; // undefined, functions: not JSON, never shared
  };
  if (Array.isArray(value)) {
    add("[");
    for (let i = 0; i < value.length; i++) {
      const [v, part] = child(value[i], false);
      value[i] = v;
      add(i > 0 && part !== undefined ? `,${part}` : part);
    }
    add("]");
    return json;
  }
  const o = value as Record<string, unknown>;
  add("{");
  let first = true;
  for (const k in o) {
    const [v, part] = child(o[k], skip?.has(k) ?? false);
    if (v !== o[k]) o[k] = v;
    add(part === undefined ? undefined : `${first ? "" : ","}${JSON.stringify(k)}:${part}`);
    first = false;
  }
  add("}");
  return json;
}

/**
 * Replaces the object's short string values by shared copies, and (with
 * `subtrees`) its small subtrees by shared frozen ones, in place (see
 * `stringInterner`, `subtreeInterner`). The object and its metadata stay
 * its own (they hold its name and uid); labels and the like can be shared.
 */
export function internStrings<T extends KubeObject>(
  obj: T,
  intern = sharedInterner,
  subtrees: SubtreeInterner | undefined = sharedSubtrees,
): T {
  const o = obj as unknown as Record<string, unknown>;
  for (const k in o) {
    const v = o[k];
    if (typeof v === "string") o[k] = intern(v);
    else if (typeof v === "object" && v !== null) {
      const meta = k === "metadata";
      const json = internValues(v, intern, subtrees, meta ? uniqueMetadata : undefined);
      if (json !== undefined && subtrees && !meta) o[k] = subtrees.share(json, v);
    }
  }
  return obj;
}

/**
 * The default transform: drops what no reader of the cache uses and what
 * costs the most memory per object (`managedFields`, and kubectl's
 * last-applied annotation: a second copy of the object as JSON), and shares
 * repeated string values between cached objects (`internStrings`).
 */
export function defaultTransform<T extends KubeObject>(obj: T): T {
  return internStrings(stripUnread(obj));
}

/**
 * Drops `managedFields` and kubectl's last-applied annotation. The metadata
 * (and annotations) are rebuilt without them rather than `delete`d: deleting
 * a property that is not the last one turns a V8 object into a hash table,
 * which made every cached object ~20 % larger.
 */
export function stripUnread<T extends KubeObject>(obj: T): T {
  const meta = obj.metadata;
  const annotations = meta.annotations;
  const lastApplied = annotations?.[lastAppliedAnnotation] !== undefined;
  if (!meta.managedFields && !lastApplied) return obj;
  const { managedFields: _, ...rest } = meta;
  if (lastApplied) {
    const { [lastAppliedAnnotation]: _, ...others } = annotations!;
    if (Object.keys(others).length > 0) rest.annotations = others;
    else delete rest.annotations;
  }
  obj.metadata = rest;
  return obj;
}
