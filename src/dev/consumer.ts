/**
 * A consumer, run by src/dev/testhosts.ts inside the node namespace
 * (`ip netns exec <node> node consumer.ts ...`): it resolves a name through
 * the namespace's resolver (CoreDNS) and opens new TCP connections to the
 * address it got (a ClusterIP: kube-proxy's rules pick the backend), each
 * sending one HTTP request (`--http`) or just reading (TCP backends). One
 * JSON line per connection on stdout: `{"t":<ms>,"id":..,"port":..,"addr":..}`
 * or `{"t":<ms>,"err":"ECONNREFUSED"}`. `--count N` stops after N connections
 * (0: until stdin closes); `--resolve-each` resolves again before each one
 * (a failed lookup prints `{"t":<ms>,"dnsErr":"ENOTFOUND"}` and reuses the last address).
 */
import { lookup } from "node:dns/promises";
import { connect } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    name: { type: "string" },
    port: { type: "string" },
    family: { type: "string", default: "4" },
    http: { type: "boolean", default: false },
    count: { type: "string", default: "0" },
    concurrency: { type: "string", default: "4" },
    "interval-ms": { type: "string", default: "0" },
    "timeout-ms": { type: "string", default: "1000" },
    "resolve-each": { type: "boolean", default: false },
  },
});
const port = Number(values.port);
const family = Number(values.family) as 4 | 6;
const count = Number(values.count);
const interval = Number(values["interval-ms"]);
const timeout = Number(values["timeout-ms"]);
let started = 0;
let stopped = false;
process.stdin.on("end", () => (stopped = true)).resume();

const emit = (o: object) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
const resolveName = async () => (await lookup(values.name!, { family })).address;

let address = await resolveName();
emit({ resolved: address });

function once(host: string): Promise<void> {
  return new Promise((done) => {
    let data = "";
    const socket = connect({ host, port, timeout });
    const finish = (o: object) => {
      socket.destroy();
      emit(o);
      done();
    };
    socket.setEncoding("utf8");
    socket.on("connect", () => {
      if (values.http) socket.write(`GET / HTTP/1.1\r\nhost: ${values.name}\r\nconnection: close\r\n\r\n`);
    });
    socket.on("data", (chunk: string) => (data += chunk));
    socket.on("end", () => {
      const body = values.http ? data.slice(data.indexOf("\r\n\r\n") + 4) : data;
      const [id, p, addr] = body.trim().split(" ");
      finish(id ? { id, port: Number(p), addr } : { err: "EMPTY" });
    });
    socket.on("timeout", () => finish({ err: "ETIMEDOUT" }));
    socket.on("error", (err: NodeJS.ErrnoException) => finish({ err: err.code ?? err.message }));
  });
}

async function worker(): Promise<void> {
  while (!stopped && (count === 0 || started < count)) {
    started++;
    if (values["resolve-each"]) {
      // A failed lookup is reported (an empty answer is what a consumer
      // must never see) and the last address is used.
      address = await resolveName().catch((err: NodeJS.ErrnoException) => {
        emit({ dnsErr: err.code ?? err.message });
        return address;
      });
    }
    await once(address);
    if (interval > 0) await new Promise((r) => setTimeout(r, interval));
  }
}
await Promise.all(Array.from({ length: Number(values.concurrency) }, worker));
process.exit(0);
