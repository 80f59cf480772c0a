/**
 * Test hosts on the sandbox's data plane (see sandbox/dataplane.go): network
 * namespaces attached to the data plane's fabric bridge, at real addresses
 * of its 198.18.0.0/15 block (and its fd52:5354::/32 ULA block), running
 * src/dev/backend.ts; and consumers in the node namespace (src/dev/consumer.ts)
 * that resolve Services through CoreDNS and connect through kube-proxy.
 * Used by tests, benchmarks and the demo.
 *
 * Names carry this process's pid (`rst-<pid>-h<i>`, veth `t<pid>x<i>`); hosts
 * are removed by `close()`, on process exit, and otherwise (a crash) reaped
 * by the next data plane or `TestHosts.open` whose pid check finds us gone.
 * Address slots are claimed with exclusive files in the data plane's
 * directory, so several processes can share one data plane.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import type { Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { repoRoot } from "./sandbox.ts";

export interface DataPlane {
  runId: string;
  pid: number;
  fabric: string;
  bridge: string;
  node: string;
  nodeName: string;
  zone: string;
  block: number;
  subnet4: string;
  subnet6: string;
  host4: string;
  host6: string;
  node4: string;
  node6: string;
  dns: string;
  serviceCIDRs: string[];
  kubeconfig: string;
  /** Directory of dataplane.json. */
  dir: string;
}

/** The data plane of the sandbox whose kubeconfig this is, if it runs one. */
export function readDataPlane(kubeconfigPath: string): DataPlane | undefined {
  const path = join(dirname(kubeconfigPath), "dataplane", "dataplane.json");
  if (!existsSync(path)) return undefined;
  const info = JSON.parse(readFileSync(path, "utf8")) as Omit<DataPlane, "dir">;
  return isAlive(info.pid) ? { ...info, dir: dirname(path) } : undefined;
}

const dataPlaneReady = /^roster-dataplane ready in [\d.]+s: info=(\S+)/;

/**
 * Starts a data plane for a running sandbox as its own process (what the
 * sandbox's --data-plane does as its child). Its own process survives an
 * API server restart: kube-proxy keeps its rules and reconnects.
 */
export async function startDataPlane(
  kubeconfigPath: string,
  { binary = resolve(repoRoot, "bin/roster-sandbox"), zone = "zone-a" } = {},
): Promise<{ plane: DataPlane; stop(): Promise<void> }> {
  const dir = join(dirname(kubeconfigPath), "dataplane");
  const child = spawn(
    binary,
    ["dataplane", `--kubeconfig=${kubeconfigPath}`, `--dir=${dir}`, `--zone=${zone}`, "--exit-with-parent"],
    // Its own process group, so that a terminal's Ctrl-C does not remove
    // the routes to the test hosts while the operator still probes them:
    // a connection opened then would leave by the host's default route.
    // The caller stops it last; --exit-with-parent covers a crash.
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  // SIGTERM: the data plane removes its namespaces before it exits.
  const killOnExit = () => child.kill("SIGTERM");
  process.on("exit", killOnExit);
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  await new Promise<void>((done, fail) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (dataPlaneReady.test(line)) done();
    });
    child.once("exit", (code, signal) =>
      fail(
        new Error(
          `data plane exited (${signal ?? code}) before ready: ${stderr.trim()} (log: ${dir}/dataplane.log)`,
        ),
      ),
    );
  });
  unrefChild(child);
  const plane = readDataPlane(kubeconfigPath);
  if (!plane) throw new Error(`data plane ready but ${dir}/dataplane.json is missing`);
  return {
    plane,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.ref();
      child.kill("SIGTERM");
      await exited;
      process.off("exit", killOnExit);
    },
  };
}

/** Why this machine cannot run the data plane, or undefined when it can. */
export function dataPlaneUnsupported(): string | undefined {
  if (process.platform !== "linux") return "the data plane needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "the data plane needs root (network namespaces, nftables)";
  for (const tool of ["ip", "nft"]) {
    try {
      execFileSync(tool, ["-V"], { stdio: "ignore" });
    } catch {
      return `the data plane needs \`${tool}\` (Debian packages iproute2 and nftables)`;
    }
  }
  if (!existsSync(resolve(repoRoot, "bin/roster-coredns")))
    return "bin/roster-coredns is missing (`make coredns`)";
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Deletes namespaces and /etc/netns entries of runs whose process is gone. */
export function reapStaleHosts(): void {
  const dead = (name: string) => {
    const m = /^rst-(\d+)-/.exec(name);
    return m !== null && !isAlive(Number(m[1]));
  };
  for (const line of ip("netns", "list").split("\n")) {
    const name = line.split(" ")[0];
    if (name && dead(name)) {
      try {
        ip("netns", "del", name);
      } catch {
        // Gone meanwhile.
      }
    }
  }
}

export type BackendHealth = "healthy" | "failing";

export interface BackendOptions {
  id: string;
  http?: number[];
  tcp?: number[];
  grpc?: number;
}

export interface Backend {
  readonly id: string;
  readonly host: TestHost;
  /** Switch what /healthz (and gRPC health) answer; the data path keeps serving. */
  setHealth(health: BackendHealth): void;
  /** Toggle health every `ms`. */
  flap(ms: number): void;
  /** SIGKILL: new connections to it are refused by its host's kernel. */
  kill(): Promise<void>;
  /** Start it again after kill(), same ports. */
  restart(): Promise<void>;
}

export interface TestHost {
  readonly ns: string;
  readonly ipv4: string;
  readonly ipv6: string;
  start(options: BackendOptions): Promise<Backend>;
}

export interface ConsumerLine {
  t: number;
  id?: string;
  port?: number;
  addr?: string;
  err?: string;
  resolved?: string;
  /** With resolveEach: the lookup before a connection failed (the last address was used). */
  dnsErr?: string;
}

export interface ConsumerOptions {
  /** DNS name (resolved by CoreDNS in the node namespace) or address. */
  name: string;
  port: number;
  family?: 4 | 6;
  http?: boolean;
  /** Connections to open; 0 runs until stop(). */
  count?: number;
  concurrency?: number;
  intervalMs?: number;
  resolveEach?: boolean;
  /**
   * Called with each line instead of keeping it in `lines` (a consumer that
   * runs for hours, like the demo's, keeps nothing).
   */
  onLine?: (line: ConsumerLine) => void;
}

export interface Consumer {
  /** Every line so far (resolution first, then one per connection). */
  readonly lines: ConsumerLine[];
  /** Resolves with all lines once the consumer exits. */
  readonly done: Promise<ConsumerLine[]>;
  stop(): Promise<ConsumerLine[]>;
}

const node = process.execPath;

export class TestHosts {
  readonly plane: DataPlane;
  private readonly slots: string;
  private readonly hosts: { ns: string; slot: string }[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly cleanup = () => this.closeSync();

  private constructor(plane: DataPlane) {
    this.plane = plane;
    this.slots = join(plane.dir, "hosts");
    mkdirSync(this.slots, { recursive: true });
    process.on("exit", this.cleanup);
  }

  static open(plane: DataPlane): TestHosts {
    reapStaleHosts();
    const hosts = new TestHosts(plane);
    // Free address slots of owners that are gone.
    for (const slot of readdirSync(hosts.slots)) {
      const owner = Number(readFileSync(join(hosts.slots, slot), "utf8"));
      if (!isAlive(owner)) rmSync(join(hosts.slots, slot), { force: true });
    }
    return hosts;
  }

  private claimSlot(): number {
    for (let i = 10; i < 1000; i++) {
      try {
        const fd = openSync(join(this.slots, String(i)), "wx");
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return i;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    throw new Error("no free test host address in the data plane's block");
  }

  /** A new namespace on the fabric with one IPv4 and one IPv6 address. */
  async host(): Promise<TestHost> {
    const slot = this.claimSlot();
    const { plane } = this;
    const ns = `rst-${process.pid}-h${slot}`;
    const veth = `t${process.pid}x${slot}`;
    const ipv4 = `198.18.${plane.block * 4 + Math.floor(slot / 256)}.${slot % 256}`;
    // Canonical form (what the API server and sockets print): fd52:5354::a for block 0.
    const ipv6 = new URL(
      `http://[fd52:5354:0:${plane.block.toString(16)}::${slot.toString(16)}]`,
    ).hostname.slice(1, -1);
    this.hosts.push({ ns, slot: join(this.slots, String(slot)) });
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", plane.fabric, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ip("-n", plane.fabric, "link", "set", veth, "master", plane.bridge, "up");
    // The MAC follows from the address: a slot reused by a later host keeps
    // the neighbour entries the host and the node cached for it valid.
    const mac = `02:52:53:${hex2(plane.block)}:${hex2(slot >> 8)}:${hex2(slot & 255)}`;
    ip("-n", ns, "link", "set", "eth0", "address", mac);
    ip("-n", ns, "addr", "add", `${ipv4}/22`, "dev", "eth0");
    ip("-n", ns, "addr", "add", `${ipv6}/64`, "dev", "eth0", "nodad");
    ip("-n", ns, "link", "set", "eth0", "up");
    const host: TestHost = { ns, ipv4, ipv6, start: (options) => this.backend(host, options) };
    return host;
  }

  private async backend(host: TestHost, options: BackendOptions): Promise<Backend> {
    const args = [
      "netns",
      "exec",
      host.ns,
      node,
      resolve(repoRoot, "src/dev/backend.ts"),
      `--id=${options.id}`,
      ...(options.http ?? []).map((p) => `--http=${p}`),
      ...(options.tcp ?? []).map((p) => `--tcp=${p}`),
      ...(options.grpc ? [`--grpc=${options.grpc}`] : []),
    ];
    let child: ChildProcess = await this.spawnReady(args);
    const send = (line: string) => child.stdin?.write(`${line}\n`);
    return {
      id: options.id,
      host,
      setHealth: (health) => send(health),
      flap: (ms) => send(`flap ${ms}`),
      kill: async () => {
        const exited = new Promise((done) => child.once("exit", done));
        child.kill("SIGKILL");
        await exited;
      },
      restart: async () => {
        child = await this.spawnReady(args);
      },
    };
  }

  private spawnReady(args: string[]): Promise<ChildProcess> {
    const child = spawn("ip", args, { stdio: ["pipe", "pipe", "inherit"] });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return new Promise((done, fail) => {
      const rl = createInterface({ input: child.stdout! });
      rl.once("line", () => {
        rl.close();
        unrefChild(child);
        done(child);
      });
      child.once("exit", (code, signal) =>
        fail(new Error(`backend exited (${signal ?? code}) before ready`)),
      );
    });
  }

  /** Runs a consumer in the node namespace; see src/dev/consumer.ts. */
  consumer(options: ConsumerOptions): Consumer {
    const args = [
      "netns",
      "exec",
      this.plane.node,
      node,
      resolve(repoRoot, "src/dev/consumer.ts"),
      `--name=${options.name}`,
      `--port=${options.port}`,
      `--family=${options.family ?? 4}`,
      `--count=${options.count ?? 0}`,
      `--concurrency=${options.concurrency ?? 4}`,
      `--interval-ms=${options.intervalMs ?? 0}`,
      ...(options.http ? ["--http"] : []),
      ...(options.resolveEach ? ["--resolve-each"] : []),
    ];
    const child = spawn("ip", args, { stdio: ["pipe", "pipe", "pipe"] });
    this.children.add(child);
    const lines: ConsumerLine[] = [];
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    const rl: Interface = createInterface({ input: child.stdout! });
    const onLine = options.onLine ?? ((l: ConsumerLine) => lines.push(l));
    rl.on("line", (l) => onLine(JSON.parse(l) as ConsumerLine));
    const done = new Promise<ConsumerLine[]>((ok, fail) =>
      child.once("exit", (code) => {
        this.children.delete(child);
        if (code === 0) ok(lines);
        else fail(new Error(`consumer exited with ${code}: ${stderr.trim()}`));
      }),
    );
    done.catch(() => undefined);
    return {
      lines,
      done,
      stop: () => {
        child.stdin?.end();
        return done;
      },
    };
  }

  /**
   * Every A and AAAA record of a name, asked from the node namespace's
   * resolver (CoreDNS) by a fresh process, so no resolver cache answers.
   * A name that does not exist (or has no record of a family) gives [].
   */
  async resolveAll(name: string): Promise<{ A: string[]; AAAA: string[] }> {
    const script = `
      const dns = require("node:dns").promises;
      const all = (p) => p.catch((e) => (e.code === "ENOTFOUND" || e.code === "ENODATA" ? [] : Promise.reject(e)));
      Promise.all([all(dns.resolve4(process.argv[1])), all(dns.resolve6(process.argv[1]))]).then(
        ([A, AAAA]) => console.log(JSON.stringify({ A: A.sort(), AAAA: AAAA.sort() })),
        (e) => { console.error(e.code ?? e.message); process.exit(1); },
      );`;
    const out = await new Promise<string>((done, fail) => {
      const child = spawn("ip", ["netns", "exec", this.plane.node, node, "-e", script, name], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
      child.once("exit", (code) =>
        code === 0 ? done(stdout) : fail(new Error(`resolving ${name}: ${stderr.trim()}`)),
      );
    });
    return JSON.parse(out) as { A: string[]; AAAA: string[] };
  }

  /** Stops every backend and consumer and deletes this process's hosts. */
  async close(): Promise<void> {
    const exits = [...this.children].map((c) => {
      c.ref(); // keep this process alive until they are gone
      return new Promise((done) => c.once("exit", done));
    });
    this.closeSync();
    await Promise.all(exits);
  }

  private closeSync(): void {
    for (const child of this.children) child.kill("SIGKILL");
    for (const { ns, slot } of this.hosts.splice(0)) {
      try {
        ip("netns", "del", ns);
      } catch {
        // Already gone.
      }
      rmSync(slot, { force: true });
    }
    process.off("exit", this.cleanup);
  }
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const s of [child.stdout, child.stderr, child.stdin]) (s as Socket | null)?.unref?.();
}
