/**
 * Real probe targets on loopback: HTTP servers whose health endpoint can be
 * switched between healthy and failing, one per 127.0.0.N address so that
 * several instances can share a port number.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";

export interface HttpTarget {
  host: string;
  port: number;
  healthy: boolean;
  /** Health-endpoint requests served so far. */
  hits: number;
  /** Headers of the last health-endpoint request. */
  lastHeaders?: IncomingHttpHeaders;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function healthServer(target: HttpTarget): Server {
  return createServer((req, res) => {
    if (req.url === "/healthz") {
      target.hits++;
      target.lastHeaders = req.headers;
    }
    res.statusCode = target.healthy ? 200 : 503;
    res.end(target.healthy ? "ok" : "failing");
  });
}

/**
 * Starts one HTTP target per host, all on one port (the first free one for
 * all of them); `/healthz` answers 200 or 503. Each target has its own state.
 */
export async function httpTargetsOn(t: TestContext, hosts: readonly string[]): Promise<HttpTarget[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: Server[] = [];
    const targets: HttpTarget[] = [];
    let port = 0;
    try {
      for (const host of hosts) {
        const target: HttpTarget = { host, port, healthy: true, hits: 0 };
        const server = healthServer(target);
        servers.push(server);
        port = await listen(server, host, port);
        target.port = port;
        targets.push(target);
      }
      t.after(() => closeAll(servers));
      return targets;
    } catch {
      await closeAll(servers);
    }
  }
  throw new Error(`could not find a port free on ${hosts.join(", ")}`);
}

/** Starts `count` HTTP targets on 127.0.0.1..N, all on one port; `/healthz` answers 200 or 503. */
export function httpTargets(t: TestContext, count: number, first = 1): Promise<HttpTarget[]> {
  return httpTargetsOn(
    t,
    Array.from({ length: count }, (_, i) => `127.0.0.${i + first}`),
  );
}

/** Sets every target healthy or failing. */
export function setHealthy(targets: readonly HttpTarget[], healthy: boolean): void {
  for (const target of targets) target.healthy = healthy;
}

function closeAll(servers: Server[]): Promise<unknown> {
  return Promise.all(
    servers.map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
}
