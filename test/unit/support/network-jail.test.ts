// The tests' network jail: loopback connections go through, anything else is refused before a packet
// is sent. Which addresses count as local is a pure decision; the sockets below only ever aim at
// 0.0.0.0 and ::, which Linux delivers to this host, so even a broken jail sends nothing away.
import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import { test } from "node:test";
import { local, networkJail } from "../../support/network-jail.ts";

test("local: loopback and the project's test range only", () => {
  for (const h of [
    "127.0.0.1",
    "127.9.9.9",
    "::1",
    "::ffff:127.0.0.1",
    "localhost",
    "198.18.0.1",
    "198.19.255.1",
  ])
    assert.equal(local(h), true, h);
  for (const h of [
    "0.0.0.0",
    "::",
    "192.0.2.1",
    "10.0.0.1",
    "169.254.169.254",
    "2001:db8::1",
    "fd00::1",
    "example.com",
  ])
    assert.equal(local(h), false, h);
});

function attempt(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test("the network jail lets loopback through and refuses the rest locally", async (t) => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const jail = networkJail();
  t.after(() => jail.release());
  assert.equal(await attempt("127.0.0.1", port), "connected");
  assert.equal(await attempt("0.0.0.0", port), "EACCES");
  assert.equal(await attempt("::", port), "EACCES");
  assert.deepEqual(jail.blocked, [`0.0.0.0:${port}`, `:::${port}`]);
  jail.release();
  assert.equal(await attempt("127.0.0.1", port), "connected", "released");
});
