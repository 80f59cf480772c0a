/**
 * Kubernetes Events (events.k8s.io/v1), recorded the way client-go's new
 * events library does: repeats become a series on one Event instead of a
 * flood of objects.
 *
 * - The first occurrence of an event (same regarding object, type, reason,
 *   action and note) creates an Event.
 * - The first repeat sets `series: { count: 2, lastObservedTime }` right
 *   away; further repeats only bump the count in memory, written at most
 *   every `seriesFlushMs` (default 30 s) and on `flush()`.
 * - A series not seen for `seriesWindowMs` (default 6 min, client-go's) is
 *   closed: the next occurrence starts a new Event.
 * - Similar events (same group, type, reason and action; another object of
 *   the group or another note) are aggregated like client-go's correlator
 *   (src/kube/event-correlator.ts): past 10 within 10 min, they join one
 *   "(combined from similar events)" Event about the group (an instance's
 *   group is its service), whose series counts them.
 * - New Events are rate-limited per regarding object (token bucket, burst 25,
 *   one token per 5 min, like the core/v1 spam filter); dropped ones are
 *   counted in `roster_events_dropped_total`.
 *
 * Guarantees: `event()` never throws and never blocks the caller; writes
 * for one series are serialized (create, then patches in order); API
 * failures are logged and counted, never retried in a loop; memory is
 * bounded (`maxSeries`, least recently seen evicted first) and shrinks back:
 * closed series (not seen for `seriesWindowMs`, written) and rate-limit
 * buckets that have refilled are forgotten as new events come in.
 */
import { randomBytes } from "node:crypto";
import type { Clock, Timer } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import { isNotFound, type KubeClient } from "./client.ts";
import { eventCorrelator } from "./event-correlator.ts";
import { microTime } from "./leader.ts";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import type { RuntimeMetrics } from "./metrics.ts";
import { type KubeObject, resourcePath, resources } from "./object.ts";

export type EventType = "Normal" | "Warning";

export interface EventOptions {
  /** What Roster did or failed to do (default: the reason). */
  action?: string;
  related?: KubeObject;
  /**
   * The group whose similar events are combined (default: the regarding
   * object alone): an instance's service, so that a storm in one service
   * costs a bounded number of Events. `regarding` is what the combined Event
   * is about.
   */
  group?: { key: string; regarding: KubeObject };
}

export interface EventRecorder {
  event(regarding: KubeObject, type: EventType, reason: string, note: string, options?: EventOptions): void;
  /** Series, aggregation records and rate-limit buckets held in memory. */
  readonly size: { series: number; aggregates: number; buckets: number };
  /** Writes pending series counts and waits for every write in flight. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface EventRecorderOptions {
  client: KubeClient;
  /** `roster.dev/operator`. */
  reportingController: string;
  /** This replica (pod name). */
  reportingInstance: string;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  seriesFlushMs?: number;
  seriesWindowMs?: number;
  burst?: number;
  refillMs?: number;
  maxSeries?: number;
  /** Distinct similar events in a group before they are combined (default 10). */
  aggregateMaxEvents?: number;
  aggregateWindowMs?: number;
}

interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
}

interface Series {
  name: string;
  namespace: string;
  count: number;
  /** Count already written. */
  written: number;
  /** Highest count a write has been queued for. */
  queued: number;
  lastObserved: number;
  /** Writes for this series, chained. */
  chain: Promise<void>;
  failed: boolean;
  flushTimer?: Timer;
}

const maxNoteBytes = 1024;

function ref(obj: KubeObject): ObjectReference {
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    uid: obj.metadata.uid,
    resourceVersion: obj.metadata.resourceVersion,
  };
}

function refKey(r: ObjectReference): string {
  return `${r.kind}/${r.namespace ?? ""}/${r.name}/${r.uid ?? ""}`;
}

function truncate(note: string): string {
  if (Buffer.byteLength(note) <= maxNoteBytes) return note;
  let s = note.slice(0, maxNoteBytes);
  while (Buffer.byteLength(s) > maxNoteBytes - 3) s = s.slice(0, -1);
  return `${s}...`;
}

export function eventRecorder(options: EventRecorderOptions): EventRecorder {
  const { client } = options;
  const clock = options.clock ?? systemClock;
  const log = (options.logger ?? silentLogger()).child({ component: "events" });
  const flushMs = options.seriesFlushMs ?? 30_000;
  const windowMs = options.seriesWindowMs ?? 6 * 60_000;
  const maxSeries = options.maxSeries ?? 4096;
  const series = new Map<string, Series>();
  const correlator = eventCorrelator({
    maxEvents: options.aggregateMaxEvents,
    aggregateWindowMs: options.aggregateWindowMs,
    burst: options.burst,
    refillMs: options.refillMs,
    maxKeys: maxSeries,
  });
  const inFlight = new Set<Promise<void>>();
  let closed = false;

  function track(p: Promise<void>): Promise<void> {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  }

  /**
   * Forgets series that no longer matter, oldest first (the map is kept in
   * recency order): closed by the window with their count written (or failed).
   */
  function expire(now: number): void {
    for (const [key, s] of series) {
      if (now - s.lastObserved < windowMs || (!s.failed && s.written < s.count)) break;
      s.flushTimer?.cancel();
      series.delete(key);
    }
  }

  function writeCount(s: Series): void {
    s.flushTimer?.cancel();
    s.flushTimer = undefined;
    if (s.failed || s.count <= 1 || s.count === s.queued) return;
    const count = s.count;
    s.queued = count;
    const lastObserved = s.lastObserved;
    s.chain = track(
      s.chain.then(async () => {
        if (s.failed) return;
        try {
          await client.request({
            method: "PATCH",
            path: resourcePath(resources.events, { namespace: s.namespace, name: s.name }),
            contentType: "application/merge-patch+json",
            body: { series: { count, lastObservedTime: microTime(lastObserved) } },
          });
          s.written = Math.max(s.written, count);
        } catch (err) {
          if (isNotFound(err)) s.failed = true;
          options.metrics?.eventsDropped.inc({ reason: "error" });
          log.warn({ err: String(err), event: s.name }, "updating an event series failed");
        }
      }),
    );
  }

  const recorder: EventRecorder = {
    event(regarding, type, reason, note, opts = {}) {
      if (closed) return;
      try {
        const now = clock.now();
        expire(now);
        const action = opts.action ?? reason;
        const text = truncate(note);
        const r = ref(regarding);
        const objKey = refKey(r);
        const { combined, key } = correlator.aggregate(
          {
            group: opts.group?.key ?? objKey,
            object: objKey,
            type,
            reason,
            action,
            note: text,
            related: opts.related ? refKey(ref(opts.related)) : undefined,
          },
          now,
        );
        // A combined Event is about the group and says which event started it.
        const about = combined && opts.group ? ref(opts.group.regarding) : r;
        const aboutKey = refKey(about);
        const shown = combined ? truncate(`(combined from similar events): ${r.name}: ${text}`) : text;
        const existing = series.get(key);
        if (existing && !existing.failed && now - existing.lastObserved < windowMs) {
          existing.count++;
          existing.lastObserved = now;
          series.delete(key);
          series.set(key, existing);
          if (existing.count === 2) writeCount(existing);
          else existing.flushTimer ??= clock.setTimer(() => writeCount(existing), flushMs);
          return;
        }
        if (existing) {
          existing.flushTimer?.cancel();
          series.delete(key);
        }
        if (!correlator.allow(aboutKey, now)) {
          options.metrics?.eventsDropped.inc({ reason: "rate_limited" });
          return;
        }
        const namespace = about.namespace || "default";
        const name = `${about.name}.${now.toString(16)}${randomBytes(3).toString("hex")}`;
        const s: Series = {
          name,
          namespace,
          count: 1,
          written: 0,
          queued: 1,
          lastObserved: now,
          chain: Promise.resolve(),
          failed: false,
        };
        const body = {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { name, namespace },
          eventTime: microTime(now),
          reportingController: options.reportingController,
          reportingInstance: options.reportingInstance,
          action,
          reason,
          type,
          note: shown,
          regarding: about,
          related: opts.related ? ref(opts.related) : undefined,
        };
        s.chain = track(
          client
            .request({ method: "POST", path: resourcePath(resources.events, { namespace }), body })
            .then(() => {
              s.written = Math.max(s.written, 1);
            })
            .catch((err: unknown) => {
              s.failed = true;
              options.metrics?.eventsDropped.inc({ reason: "error" });
              log.warn({ err: String(err), reason }, "recording an event failed");
            }),
        );
        series.set(key, s);
        while (series.size > maxSeries) {
          const oldest = series.keys().next().value!;
          series.get(oldest)?.flushTimer?.cancel();
          series.delete(oldest);
        }
      } catch (err) {
        log.warn({ err: String(err) }, "event not recorded");
      }
    },

    get size() {
      return { series: series.size, ...correlator.size };
    },

    async flush() {
      for (const s of series.values()) writeCount(s);
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },

    async close() {
      await recorder.flush();
      closed = true;
      for (const s of series.values()) s.flushTimer?.cancel();
    },
  };
  return recorder;
}
