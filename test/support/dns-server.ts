/**
 * A tiny authoritative DNS server over UDP on loopback, for tests that need
 * to control what a name resolves to (and change it while the operator
 * runs). It answers the queries c-ares (node:dns `Resolver`) sends: one
 * question, class IN, type A or AAAA, possibly with an EDNS OPT record in the
 * additional section (ignored: the answer is plain RFC 1035 and small).
 *
 * Names in `records` get their A (IPv4) or AAAA (IPv6) addresses, or an empty
 * NOERROR answer (NODATA) when they have none of that type; other names get
 * NXDOMAIN. Other opcodes get NOTIMP, malformed questions FORMERR.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import { isIP } from "node:net";
import type { TestContext } from "node:test";

export interface TestDnsServer {
  /** `127.0.0.1:port`, for `probing.dnsServers`. */
  readonly address: string;
  /** Name (lowercase, no trailing dot) to addresses; change it at any time. */
  readonly records: Map<string, string[]>;
  /** Questions received, as `name TYPE` (e.g. `api.test A`), in order. */
  readonly queries: string[];
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const RCODE = { noError: 0, formErr: 1, nxDomain: 3, notImp: 4 } as const;

interface Question {
  name: string;
  type: number;
  qclass: number;
  /** Offset just past the question (QNAME, QTYPE, QCLASS). */
  end: number;
}

/** The single question at offset 12, or undefined if it is malformed. */
function readQuestion(msg: Buffer): Question | undefined {
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    off++;
    if (len === 0) break;
    // Compression pointers (0xC0) and the reserved label types are not used in questions.
    if (len > 63 || off + len > msg.length) return undefined;
    labels.push(msg.toString("latin1", off, off + len));
    off += len;
  }
  if (off + 4 > msg.length) return undefined;
  return {
    name: labels.join(".").toLowerCase(),
    type: msg.readUInt16BE(off),
    qclass: msg.readUInt16BE(off + 2),
    end: off + 4,
  };
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  // Expand :: and write the eight 16-bit groups (no embedded IPv4 forms: tests do not need them).
  const [head = "", tail] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

/** The response to one query message, or undefined to drop it (not even a header). */
export function answer(msg: Buffer, records: ReadonlyMap<string, readonly string[]>): Buffer | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  const opcode = (flags >> 11) & 0xf;
  const rd = flags & 0x0100;
  const reply = (rcode: number, question?: Buffer, answers: Buffer[] = []): Buffer => {
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    // QR, the query's opcode, AA (we are the authority for our names), RD echoed, no recursion.
    header.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | rd | rcode, 2);
    header.writeUInt16BE(question ? 1 : 0, 4);
    header.writeUInt16BE(answers.length, 6);
    return Buffer.concat([header, ...(question ? [question] : []), ...answers]);
  };
  if (opcode !== 0) return reply(RCODE.notImp);
  if (msg.readUInt16BE(4) !== 1) return reply(RCODE.formErr);
  const q = readQuestion(msg);
  if (!q) return reply(RCODE.formErr);
  // The question is echoed byte for byte (keeps the query's letter case).
  const question = msg.subarray(12, q.end);
  const addresses = records.get(q.name.replace(/\.$/, ""));
  if (!addresses) return reply(RCODE.nxDomain, question);
  const family = q.type === TYPE_A ? 4 : q.type === TYPE_AAAA ? 6 : 0;
  if (q.qclass !== CLASS_IN || family === 0) return reply(RCODE.noError, question);
  const answers = addresses
    .filter((a) => isIP(a) === family)
    .map((a) => {
      const rdata = ipBytes(a);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(q.type, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(1, 6); // TTL 1 s
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
  return reply(RCODE.noError, question, answers);
}

/** Starts the server on 127.0.0.1 (a free port); closed when the test ends. */
export async function startDnsServer(
  t: TestContext,
  records: Record<string, string[]> = {},
): Promise<TestDnsServer> {
  const socket = createSocket("udp4");
  const names = new Map(Object.entries(records));
  const queries: string[] = [];
  socket.on("message", (msg: Buffer, from: RemoteInfo) => {
    const q = msg.length >= 12 ? readQuestion(msg) : undefined;
    if (q) queries.push(`${q.name} ${q.type === TYPE_A ? "A" : q.type === TYPE_AAAA ? "AAAA" : q.type}`);
    const res = answer(msg, names);
    if (res) socket.send(res, from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { address: `127.0.0.1:${socket.address().port}`, records: names, queries };
}
