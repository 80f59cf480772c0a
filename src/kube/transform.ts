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

function internValues(value: object, intern: (s: string) => string, skip?: Set<string>): void {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v === "string") value[i] = intern(v);
      else if (typeof v === "object" && v !== null) internValues(v, intern);
    }
    return;
  }
  const o = value as Record<string, unknown>;
  for (const k in o) {
    const v = o[k];
    if (typeof v === "string") {
      if (!skip?.has(k)) o[k] = intern(v);
    } else if (typeof v === "object" && v !== null) {
      internValues(v, intern, k === "metadata" && o === value ? uniqueMetadata : undefined);
    }
  }
}

/** Replaces the object's short string values by shared copies (in place; see `stringInterner`). */
export function internStrings<T extends KubeObject>(obj: T, intern = sharedInterner): T {
  internValues(obj, intern);
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
