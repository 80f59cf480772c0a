/**
 * Real xDS clients as child processes: grpc-go (bin/roster-xds-client, built
 * from xds-client/ by `make xds-client`) or @grpc/grpc-js-xds
 * (node-xds-client.ts). Each dials xds:///<service>.<ns> through the
 * operator's xDS server, and each `rpcs()` call sends RPCs and returns how
 * many each backend answered.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import type { TestContext } from "node:test";

export const XDS_CLIENT = new URL("../../bin/roster-xds-client", import.meta.url).pathname;
const NODE_CLIENT = new URL("./node-xds-client.ts", import.meta.url).pathname;

export type XdsClientKind = "grpc-go" | "grpc-js";

export interface RpcResult {
  counts: Record<string, number>;
  errors: Record<string, number>;
}

export interface XdsClient {
  rpcs(n: number, header?: string): Promise<RpcResult>;
  /** What the client wrote on stderr (grpc-go logs), for failure messages. */
  stderr(): string;
}

/** A bootstrap naming the xDS server, as gRPC's GRPC_XDS_BOOTSTRAP_CONFIG takes it. */
export function bootstrap(xdsPort: number, nodeId: string): string {
  return JSON.stringify({
    xds_servers: [
      {
        server_uri: `127.0.0.1:${xdsPort}`,
        channel_creds: [{ type: "insecure" }],
        server_features: ["xds_v3"],
      },
    ],
    // grpc-js-xds refuses a node without a locality.
    node: { id: nodeId, locality: {} },
  });
}

/** Starts the grpc-go client (bin/roster-xds-client) or the @grpc/grpc-js-xds one (node-xds-client.ts). */
export function startXdsClient(
  t: TestContext,
  options: { kind: XdsClientKind; xdsPort: number; target: string; nodeId: string },
): XdsClient {
  if (options.kind === "grpc-go" && !existsSync(XDS_CLIENT)) {
    throw new Error(`${XDS_CLIENT} is missing: run \`make xds-client\``);
  }
  const [cmd, args] =
    options.kind === "grpc-go"
      ? [XDS_CLIENT, ["-target", options.target]]
      : [process.execPath, [NODE_CLIENT, options.target]];
  const child: ChildProcessWithoutNullStreams = spawn(cmd, args, {
    env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap(options.xdsPort, options.nodeId) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000);
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(line));
  let exited: string | undefined;
  child.on("exit", (code, signal) => {
    exited = `roster-xds-client exited (${code ?? signal}): ${stderr.slice(-2000)}`;
    for (const w of waiting.splice(0)) w("");
  });
  t.after(() => {
    child.stdin.end("quit\n");
    child.kill();
  });
  return {
    rpcs(n, header) {
      if (exited) return Promise.reject(new Error(exited));
      return new Promise((resolve, reject) => {
        waiting.push((line) => (line ? resolve(JSON.parse(line) as RpcResult) : reject(new Error(exited))));
        child.stdin.write(`rpcs ${n}${header ? ` ${header}` : ""}\n`);
      });
    },
    stderr: () => stderr,
  };
}
