/**
 * Real probe targets on loopback: HTTP servers whose health endpoint can be
 * switched between healthy and failing, one per 127.0.0.N address so that
 * several instances can share a port number.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";

export interface HttpTarget {
  host: string;
  port: number;
  healthy: boolean;
  /** Health-endpoint requests served so far. */
  hits: number;
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

/** Starts `count` HTTP targets on 127.0.0.1..N, all on one port; `/healthz` answers 200 or 503. */
export async function httpTargets(t: TestContext, count: number): Promise<HttpTarget[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: Server[] = [];
    const targets: HttpTarget[] = [];
    let port = 0;
    try {
      for (let i = 0; i < count; i++) {
        const target: HttpTarget = { host: `127.0.0.${i + 1}`, port, healthy: true, hits: 0 };
        const server = createServer((req, res) => {
          if (req.url === "/healthz") target.hits++;
          res.statusCode = target.healthy ? 200 : 503;
          res.end(target.healthy ? "ok" : "failing");
        });
        servers.push(server);
        port = await listen(server, target.host, port);
        target.port = port;
        targets.push(target);
      }
      t.after(() => closeAll(servers));
      return targets;
    } catch {
      await closeAll(servers);
    }
  }
  throw new Error("could not find a free port on 127.0.0.1..N");
}

function closeAll(servers: Server[]): Promise<unknown> {
  return Promise.all(
    servers.map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
}
