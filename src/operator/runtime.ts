/**
 * The runtime store: what the probe-target controller learned about each
 * instance this replica owns besides its verdict (why it cannot be probed,
 * the probe host override, the resolved addresses, the health check in
 * force). The probe-target controller is its only writer; the instance view
 * reads it. Readers never wait on the writer's memory: a change notifies the
 * subscribers (which enqueue the status writer and the publisher), and a
 * reader that finds a runtime for an older generation than the object it
 * looks at does nothing until that notification comes.
 */
import type { EffectiveHealthCheck } from "../api/index.ts";
import { deepEqual } from "../util/equal.ts";

/** Why an instance cannot be probed or published at all (invalid spec, refused, conflict). */
export interface Blocker {
  reason: string;
  message: string;
}

/**
 * Reasons a Blocker records (Ready=False): the instance cannot be probed at
 * all. A replica publishing an instance another replica probes reads them
 * from its status.
 */
export const blockerReasons: ReadonlySet<string> = new Set([
  "InvalidSpec",
  "InvalidHealthCheck",
  "SecretNotFound",
  "SecretForbidden",
  "ConfigMapNotFound",
  "AddressNotPermitted",
]);

/** What the status writer and the publisher need to know about an owned instance besides its verdict. */
export interface InstanceRuntime {
  /** metadata.generation this runtime was computed for. */
  generation: number | undefined;
  /** Set when the instance must not be probed or published (invalid, missing Secret...). */
  blocker?: Blocker;
  /** The probe host, when it is not the instance address. */
  hostOverride?: string;
  /** With a host override: what the instance address resolved to (published at the overall verdict). */
  resolved?: string[];
  deregisterAfterMs?: number;
  /** The health check it is probed with, for status.effectiveHealthCheck. */
  healthCheck?: EffectiveHealthCheck;
}

export interface RuntimeStore {
  get(key: string): InstanceRuntime | undefined;
  /** Stores the runtime; subscribers hear of it when it differs from the one stored. */
  set(key: string, runtime: InstanceRuntime): void;
  delete(key: string): void;
  /** Forgets everything, silently (on stop, or when losing leadership). */
  clear(): void;
  subscribe(listener: (key: string) => void): () => void;
  /** When this process started probing (the first runtime since start or clear). */
  probingSince(): number | undefined;
  /** Marks the start of probing, once. */
  probing(now: number): void;
}

export function runtimeStore(): RuntimeStore {
  const runtimes = new Map<string, InstanceRuntime>();
  const listeners = new Set<(key: string) => void>();
  let since: number | undefined;
  const notify = (key: string) => {
    for (const l of listeners) l(key);
  };
  return {
    get: (key) => runtimes.get(key),
    set(key, runtime) {
      if (deepEqual(runtimes.get(key), runtime)) return;
      runtimes.set(key, runtime);
      notify(key);
    },
    delete(key) {
      if (runtimes.delete(key)) notify(key);
    },
    clear() {
      since = undefined;
      runtimes.clear();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    probingSince: () => since,
    probing(now) {
      since ??= now;
    },
  };
}
