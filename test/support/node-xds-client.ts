/**
 * The Node twin of bin/roster-xds-client: a real @grpc/grpc-js-xds client
 * (its own process, since the xDS bootstrap is per process) speaking the same
 * stdin/stdout protocol: `rpcs N [HEADER=VALUE]` answers one JSON line
 * {"counts": {"<peer>": n}, "errors": {"<code>": n}}.
 *
 *   GRPC_XDS_BOOTSTRAP_CONFIG='{...}' node test/support/node-xds-client.ts xds:///echo.ns
 */
import { createInterface } from "node:readline";
import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import { register } from "@grpc/grpc-js-xds";
import {
  decodeResponse,
  encodeRequest,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../src/health/grpc-probe.ts";
import { CLIENT_SERVICE } from "./grpc-backends.ts";

register();
const target = process.argv[2];
if (!target) {
  console.error("usage: node-xds-client.ts xds:///<service>.<namespace>");
  process.exit(2);
}
const client = new Client(target, credentials.createInsecure());
const codeName = (code: number) => Object.entries(status).find(([, v]) => v === code)?.[0] ?? String(code);

function check(header: string[] | undefined): Promise<{ peer?: string; code?: number }> {
  const md = new Metadata();
  if (header?.length === 2) md.set(header[0]!, header[1]!);
  return new Promise((resolve) => {
    const call = client.makeUnaryRequest<HealthCheckRequest, HealthCheckResponse>(
      "/grpc.health.v1.Health/Check",
      encodeRequest,
      decodeResponse,
      { service: CLIENT_SERVICE },
      md,
      { deadline: Date.now() + 2000 },
      (err) => {
        if (err) console.error(err.details);
        resolve(err ? { code: err.code } : { peer: call.getPeer() });
      },
    );
  });
}

for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, n, header] = line.trim().split(/\s+/);
  if (cmd === "quit") break;
  if (cmd !== "rpcs") continue;
  const counts: Record<string, number> = {};
  const errors: Record<string, number> = {};
  for (let i = 0; i < Number(n); i++) {
    const r = await check(header?.split("="));
    if (r.peer) counts[r.peer] = (counts[r.peer] ?? 0) + 1;
    else {
      const name = codeName(r.code ?? -1);
      errors[name] = (errors[name] ?? 0) + 1;
    }
  }
  process.stdout.write(`${JSON.stringify({ counts, errors })}\n`);
}
client.close();
process.exit(0);
