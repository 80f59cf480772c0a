/**
 * The consistent-hash key of an HTTP request, as the published policy names
 * it (`loadBalancing.consistentHash.key`): a header, a cookie, a query
 * parameter or the source IP. `Caller` keys come from the application itself.
 */
import type { HashKey } from "../api/published.ts";

/** What the key extractor reads; Node's `http.IncomingMessage` fits. */
export interface RequestLike {
  headers?: Readonly<Record<string, string | readonly string[] | undefined>>;
  url?: string | undefined;
  socket?: { remoteAddress?: string | undefined } | undefined;
  /** Takes precedence over `socket.remoteAddress` (e.g. the client address behind a proxy). */
  remoteAddress?: string | undefined;
}

function header(req: RequestLike, name: string): string | undefined {
  const v = req.headers?.[name.toLowerCase()];
  if (v === undefined) return undefined;
  return typeof v === "string" ? v : v.join(",");
}

/** The key for this request, or undefined when the request does not carry it. */
export function requestHashKey(key: HashKey, req: RequestLike): string | undefined {
  switch (key.source) {
    case "Caller":
      return undefined;
    case "Header":
      return header(req, key.name!);
    case "Cookie": {
      const cookies = header(req, "cookie");
      if (!cookies) return undefined;
      for (const part of cookies.split(/;\s*/)) {
        const eq = part.indexOf("=");
        if (eq > 0 && part.slice(0, eq).trim() === key.name) return part.slice(eq + 1).trim();
      }
      return undefined;
    }
    case "QueryParameter": {
      if (!req.url) return undefined;
      const q = req.url.indexOf("?");
      if (q < 0) return undefined;
      return new URLSearchParams(req.url.slice(q + 1)).get(key.name!) ?? undefined;
    }
    case "SourceIP":
      return req.remoteAddress ?? req.socket?.remoteAddress;
  }
}
