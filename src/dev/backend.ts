/**
 * A test backend, run by src/dev/testhosts.ts inside a test host's network
 * namespace (`ip netns exec <ns> node backend.ts ...`). It serves:
 * - HTTP on each `--http` port: `/healthz` answers 200 or 503 (the health
 *   state), every other path answers `<id> <port> <local address>` so a
 *   consumer knows which backend and which port served it;
 * - TCP on each `--tcp` port: writes the same line and closes;
 * - gRPC health (grpc.health.v1) on `--grpc`, SERVING or NOT_SERVING.
 * Control lines on stdin: `healthy`, `failing`, `flap <ms>`. It prints one
 * `ready` line once every port listens, and exits when stdin closes.
 */
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { parseArgs } from "node:util";
import {
  Server as GrpcServer,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { healthServiceDefinition, servingStatus } from "../health/grpc-probe.ts";

const { values } = parseArgs({
  options: {
    id: { type: "string" },
    http: { type: "string", multiple: true, default: [] },
    tcp: { type: "string", multiple: true, default: [] },
    grpc: { type: "string" },
  },
});
const id = values.id ?? "backend";
let healthy = true;
let flap: NodeJS.Timeout | undefined;

const line = (port: number, local: string | undefined) =>
  `${id} ${port} ${(local ?? "").replace(/^::ffff:/, "")}\n`;

async function listen(
  server: {
    listen(port: number, host: string, cb: () => void): unknown;
    once(e: "error", cb: (err: Error) => void): unknown;
  },
  port: number,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // "::" accepts IPv4 too (dual-stack socket): one listener per port.
    server.listen(port, "::", resolve);
  });
}

for (const p of values.http) {
  const port = Number(p);
  const server = createHttpServer((req, res) => {
    res.setHeader("connection", "close");
    if (req.url === "/healthz") {
      res.statusCode = healthy ? 200 : 503;
      res.end(healthy ? "ok\n" : "failing\n");
      return;
    }
    res.end(line(port, req.socket.localAddress));
  });
  await listen(server, port);
}
for (const p of values.tcp) {
  const port = Number(p);
  const server = createTcpServer((socket) => socket.end(line(port, socket.localAddress)));
  await listen(server, port);
}
if (values.grpc) {
  const server = new GrpcServer();
  server.addService(healthServiceDefinition, {
    Check(_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<{ status: number }>) {
      callback(null, { status: healthy ? servingStatus.SERVING : servingStatus.NOT_SERVING });
    },
  });
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(`[::]:${values.grpc}`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
}

process.stdin.setEncoding("utf8");
let pending = "";
process.stdin.on("data", (chunk: string) => {
  pending += chunk;
  for (let i = pending.indexOf("\n"); i >= 0; i = pending.indexOf("\n")) {
    const [cmd, arg] = pending.slice(0, i).trim().split(/\s+/);
    pending = pending.slice(i + 1);
    clearInterval(flap);
    if (cmd === "healthy") healthy = true;
    else if (cmd === "failing") healthy = false;
    else if (cmd === "flap") flap = setInterval(() => (healthy = !healthy), Number(arg));
  }
});
process.stdin.on("end", () => process.exit(0));
process.stdout.write("ready\n");
