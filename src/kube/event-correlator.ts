/**
 * The pure decisions behind Event recording, after client-go's event
 * correlator (tools/record/events_cache.go), with time injected:
 *
 * - Aggregation: events of one group (by default their object; for an
 *   instance, its service) with the same type, reason and action that
 *   differ only in object or note are "similar". Once `maxEvents` (10)
 *   distinct similar events were seen with no gap longer than
 *   `aggregateWindowMs` (10 min) between them, each further one joins a
 *   single combined Event about the group instead of creating its own: a
 *   storm of 2,500 transitions in one service is 9 Events plus one whose
 *   series counts the rest.
 * - Spam filter: new Events are rate-limited per regarding object (token
 *   bucket, burst 25, one token per 5 min).
 *
 * Identical repeats (the series of one Event) are the writer's
 * (src/kube/events.ts). Memory is bounded: both tables are LRUs of at most
 * `maxKeys` entries, and entries that no longer change a decision (an
 * aggregate record past its window, a full bucket) are dropped as new events
 * come in.
 */

export interface CorrelatorOptions {
  /** Distinct similar events before they are combined (client-go: 10). */
  maxEvents?: number;
  /** Longest gap between similar events that still counts them together (client-go: 10 min). */
  aggregateWindowMs?: number;
  /** Spam filter burst per object (client-go: 25). */
  burst?: number;
  /** Spam filter: ms per new token (client-go: 5 min). */
  refillMs?: number;
  /** Entries per table (client-go: 4096). */
  maxKeys?: number;
}

export interface SimilarEvent {
  /** The aggregation group: the object's key, or its service's. */
  group: string;
  /** The regarding object's key. */
  object: string;
  type: string;
  reason: string;
  action: string;
  note: string;
  /** The related object's key, if any. */
  related?: string;
}

export interface Aggregation {
  /** The event is one of the group's similar events past `maxEvents`. */
  combined: boolean;
  /** The key that identifies the Event's series. */
  key: string;
}

export interface EventCorrelator {
  /** Where this event goes: its own Event, or the group's combined one. */
  aggregate(e: SimilarEvent, now: number): Aggregation;
  /** Takes a token for a new Event about this object; false: drop it. */
  allow(object: string, now: number): boolean;
  readonly size: { aggregates: number; buckets: number };
}

interface AggregateRecord {
  localKeys: Set<string>;
  last: number;
}

export function eventCorrelator(options: CorrelatorOptions = {}): EventCorrelator {
  const maxEvents = options.maxEvents ?? 10;
  const windowMs = options.aggregateWindowMs ?? 10 * 60_000;
  const burst = options.burst ?? 25;
  const refillMs = options.refillMs ?? 5 * 60_000;
  const maxKeys = options.maxKeys ?? 4096;
  // Maps iterate in insertion order: re-inserting on use keeps them in
  // recency order, so the first entry is the least recently used.
  const aggregates = new Map<string, AggregateRecord>();
  const buckets = new Map<string, { tokens: number; at: number }>();

  function touch<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > maxKeys) map.delete(map.keys().next().value!);
  }

  function expire(now: number): void {
    for (const [key, r] of aggregates) {
      if (now - r.last <= windowMs) break;
      aggregates.delete(key);
    }
    for (const [key, b] of buckets) {
      if (b.tokens + (now - b.at) / refillMs < burst) break;
      buckets.delete(key);
    }
  }

  return {
    aggregate(e, now) {
      expire(now);
      const aggregateKey = JSON.stringify([e.group, e.type, e.reason, e.action]);
      const localKey = JSON.stringify([e.object, e.note, e.related ?? null]);
      const found = aggregates.get(aggregateKey);
      const record =
        found && now - found.last <= windowMs ? found : { localKeys: new Set<string>(), last: now };
      record.localKeys.add(localKey);
      record.last = now;
      touch(aggregates, aggregateKey, record);
      if (record.localKeys.size < maxEvents) {
        return {
          combined: false,
          key: JSON.stringify([e.object, e.type, e.reason, e.action, e.note, e.related ?? null]),
        };
      }
      // Like client-go: the set never grows past maxEvents (any one goes).
      record.localKeys.delete(localKey);
      return { combined: true, key: JSON.stringify(["combined", aggregateKey]) };
    },

    allow(object, now) {
      const b = buckets.get(object) ?? { tokens: burst, at: now };
      b.tokens = Math.min(burst, b.tokens + (now - b.at) / refillMs);
      b.at = now;
      touch(buckets, object, b);
      if (b.tokens < 1) return false;
      b.tokens -= 1;
      return true;
    },

    get size() {
      return { aggregates: aggregates.size, buckets: buckets.size };
    },
  };
}
