/**
 * The ADS clients of bench/xds.bench.ts in a process of their own, driven
 * over IPC: neither the operator (its own child) nor the bench's probe
 * targets share an event loop with them, so a client that is busy cannot
 * delay a probe answer (and a late probe answer cannot turn into a spurious
 * verdict and one more push).
 *
 * Each client is a real grpc-js ADS stream on a connection of its own (a
 * local subchannel pool: without it grpc-js multiplexes every channel to the
 * same address over one HTTP/2 connection, whose flow control then paces all
 * 100 streams together). A response is timed when its bytes arrive (the
 * deserializer runs on arrival). Decoding: the responses of one version are
 * byte-identical for clients with the same subscription but for the nonce,
 * so each distinct content is decoded once with the real protos and the
 * other clients' copies are compared to it byte for byte (a copy that
 * differs is decoded on its own). Decoding a 1,000-endpoint assignment
 * costs a grpc-js client ~10-20 ms of CPU; 100 of them decoding in one
 * process on 2 cores would measure this machine, not the push (each real
 * client decodes its own copy on its own CPU).
 *
 * Requests: start {port, names, clients} → number of streams; await
 * {address, status, after} → per client the Date.now() at which the address
 * was first seen with that health_status at or after `after`; healthy
 * {addresses} → resolves when every client sees each as HEALTHY; cpu →
 * process.cpuUsage() in µs; stop.
 */
import { type ClientDuplexStream, credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { adsServiceDefinition, TYPE } from "../src/xds/protos.ts";

interface Assignment {
  endpoints?: {
    lb_endpoints?: {
      endpoint?: { address?: { socket_address?: { address?: string } } };
      health_status?: string;
    }[];
  }[];
}
interface Decoded {
  version_info?: string;
  resources?: Assignment[];
}
export type ClientsRequest =
  | { op: "start"; port: number; names: string[]; clients: number }
  | { op: "await"; address: string; status: string; after: number }
  | { op: "healthy"; addresses: string[] }
  | { op: "cpu" }
  | { op: "stop" };

const ads = adsServiceDefinition().StreamAggregatedResources!;
/** Where the nonce (field 5) starts: the content before it is what clients share. */
function contentEnd(b: Buffer): number {
  let at = 0;
  while (at < b.length) {
    const tag = b[at]!;
    if (tag === 0x2a) return at;
    let len = 0;
    let shift = 0;
    let i = at + 1;
    for (;;) {
      const x = b[i++]!;
      len += (x & 0x7f) * 2 ** shift;
      if (x < 0x80) break;
      shift += 7;
    }
    at = i + len;
  }
  return b.length;
}

/** Per client: address -> its health_status and when that was last seen to change. */
const views: Map<string, { status: string; at: number }>[] = [];
const streams: ClientDuplexStream<unknown, unknown>[] = [];
let shared: { content: Buffer; decoded: Decoded } | undefined;
const waiters = new Set<() => void>();

function decode(b: Buffer): Decoded {
  const content = b.subarray(0, contentEnd(b));
  if (shared?.content.equals(content)) return shared.decoded;
  const decoded = ads.responseDeserialize(b) as Decoded;
  shared = { content: Buffer.from(content), decoded };
  return decoded;
}

function onResponse(c: number, b: Buffer): void {
  const at = Date.now();
  const r = decode(b);
  const view = views[c]!;
  for (const cla of r.resources ?? []) {
    for (const locality of cla.endpoints ?? []) {
      for (const lb of locality.lb_endpoints ?? []) {
        const address = lb.endpoint?.address?.socket_address?.address ?? "";
        const status = lb.health_status ?? "UNKNOWN";
        if (view.get(address)?.status !== status) view.set(address, { status, at });
      }
    }
  }
  for (const w of waiters) w();
}

function when(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const w = () => {
      if (!check()) return;
      waiters.delete(w);
      resolve();
    };
    waiters.add(w);
    w();
  });
}

async function handle(req: ClientsRequest): Promise<unknown> {
  switch (req.op) {
    case "start": {
      const Ads = makeGenericClientConstructor(
        { StreamAggregatedResources: { ...ads, responseDeserialize: (b: Buffer) => b } },
        "ADS",
      );
      for (let c = 0; c < req.clients; c++) {
        views.push(new Map());
        const client = new Ads(`127.0.0.1:${req.port}`, credentials.createInsecure(), {
          "grpc.max_receive_message_length": 64 * 1024 * 1024,
          "grpc.use_local_subchannel_pool": 1,
        }) as unknown as { StreamAggregatedResources(): ClientDuplexStream<unknown, Buffer> };
        const call = client.StreamAggregatedResources();
        call.on("data", (b: Buffer) => onResponse(c, b));
        call.on("error", () => {});
        call.write({ node: { id: `bench-${c}` }, type_url: TYPE.endpoints, resource_names: req.names });
        streams.push(call);
      }
      return streams.length;
    }
    case "await": {
      const seen = (v: Map<string, { status: string; at: number }>) => {
        const e = v.get(req.address);
        return e !== undefined && e.status === req.status && e.at >= req.after;
      };
      await when(() => views.every(seen));
      return views.map((v) => v.get(req.address)!.at);
    }
    case "healthy":
      await when(() => views.every((v) => req.addresses.every((a) => v.get(a)?.status === "HEALTHY")));
      return true;
    case "cpu": {
      const u = process.cpuUsage();
      return u.user + u.system;
    }
    case "stop":
      for (const s of streams) s.cancel();
      setImmediate(() => process.exit(0));
      return true;
  }
}

process.on("message", (m: { id: number; req: ClientsRequest }) => {
  handle(m.req).then(
    (value) => process.send!({ id: m.id, value }),
    (err: Error) => process.send!({ id: m.id, error: err.message }),
  );
});
process.send!({ ready: true });
