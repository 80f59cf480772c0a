/**
 * Authentication and authorization of `/metrics` scrapes through the API
 * server, as controller-runtime's `filters.WithAuthenticationAndAuthorization`
 * does (kube-rbac-proxy's model): the scrape's bearer token is checked with a
 * TokenReview, and the user it names must be allowed `get` on the
 * non-resource URL `/metrics` (a SubjectAccessReview), e.g. through the
 * chart's ClusterRole `roster-metrics-reader`.
 *
 * Guarantees:
 * - No token, or one the API server does not authenticate: 401. An
 *   authenticated user without the permission: 403. Allowed: undefined (serve).
 * - A failed review (API server unreachable, Roster lacking the RBAC to
 *   create reviews) answers 500 and is not cached: an outage never turns
 *   into a cached denial or a cached grant.
 * - Decisions are cached by a SHA-256 of the token (the token itself is not
 *   kept) for a short time: authenticated users and grants for `allowTtlMs`,
 *   failures and denials for `denyTtlMs`, so a Prometheus scraping every few
 *   seconds costs two reviews a minute, and an RBAC change applies within a
 *   minute. The cache holds at most `maxEntries` tokens (oldest evicted), so
 *   a flood of made-up tokens cannot grow memory; concurrent scrapes with the
 *   same token share one review.
 */
import { createHash } from "node:crypto";
import type { Clock } from "../util/clock.ts";
import type { KubeClient } from "./client.ts";

export type MetricsAuthMode = "none" | "kubernetes";

export interface Denial {
  status: 401 | 403 | 500;
  message: string;
}

/** undefined: the request may read /metrics. */
export type MetricsAuthorizer = (authorization: string | undefined) => Promise<Denial | undefined>;

export interface KubernetesAuthOptions {
  client: KubeClient;
  clock: Clock;
  /** The non-resource URL the SubjectAccessReview asks about (default `/metrics`). */
  path?: string;
  allowTtlMs?: number;
  denyTtlMs?: number;
  maxEntries?: number;
}

interface TokenReview {
  status?: {
    authenticated?: boolean;
    error?: string;
    user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  };
}

interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string };
}

/** A cached decision: undefined (allowed) or the denial, until `until`. */
interface Entry {
  until: number;
  decision: Denial | undefined;
}

export function kubernetesMetricsAuthorizer(o: KubernetesAuthOptions): MetricsAuthorizer {
  const path = o.path ?? "/metrics";
  const allowTtl = o.allowTtlMs ?? 60_000;
  const denyTtl = o.denyTtlMs ?? 10_000;
  const max = o.maxEntries ?? 1024;
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Denial | undefined>>();

  async function review(token: string): Promise<{ decision: Denial | undefined; cache: boolean }> {
    let tr: TokenReview;
    let sar: SubjectAccessReview;
    try {
      tr = await o.client.request<TokenReview>({
        method: "POST",
        path: "/apis/authentication.k8s.io/v1/tokenreviews",
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
      });
      if (!tr.status?.authenticated || !tr.status.user?.username) {
        return { decision: { status: 401, message: "Unauthorized" }, cache: true };
      }
      const user = tr.status.user;
      sar = await o.client.request<SubjectAccessReview>({
        method: "POST",
        path: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            nonResourceAttributes: { path, verb: "get" },
          },
        },
      });
      if (!sar.status?.allowed) {
        return {
          decision: { status: 403, message: `Forbidden (user=${user.username}, verb=get, path=${path})` },
          cache: true,
        };
      }
      return { decision: undefined, cache: true };
    } catch (err) {
      return {
        decision: { status: 500, message: `cannot review the scrape's token: ${String(err)}` },
        cache: false,
      };
    }
  }

  return async (authorization) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) return { status: 401, message: "Unauthorized" };
    const key = createHash("sha256").update(m[1]!).digest("base64");
    const now = o.clock.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.decision;
    if (hit) cache.delete(key);
    let pending = inflight.get(key);
    if (!pending) {
      pending = review(m[1]!).then((r) => {
        inflight.delete(key);
        if (r.cache) {
          cache.set(key, { until: o.clock.now() + (r.decision ? denyTtl : allowTtl), decision: r.decision });
          // Map order is insertion order: the first key is the oldest entry.
          while (cache.size > max) cache.delete(cache.keys().next().value!);
        }
        return r.decision;
      });
      inflight.set(key, pending);
    }
    return pending;
  };
}
