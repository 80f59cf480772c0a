/**
 * Real PostgreSQL and Redis servers from Debian's packages, started on
 * loopback by the tests (random free ports, data in a temporary directory,
 * removed afterwards). PostgreSQL refuses to run as root: as root the servers
 * run as the `postgres` user (runuser). Outside CI a missing package skips the
 * test (`make db-deps` installs them); with CI=true it fails.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PG_BIN = "/usr/lib/postgresql/15/bin";
export const REDIS_SERVER = "/usr/bin/redis-server";

/** Why the database tests cannot run here, or undefined. */
export function databasesMissing(): string | undefined {
  if (!existsSync(`${PG_BIN}/initdb`)) return `PostgreSQL 15 is not installed (${PG_BIN}); run make db-deps`;
  if (!existsSync(REDIS_SERVER)) return "redis-server is not installed; run make db-deps";
  if (process.getuid?.() === 0) {
    try {
      execFileSync("id", ["postgres"], { stdio: "ignore" });
    } catch {
      return "running as root without a postgres user";
    }
  }
  return undefined;
}

/** The skip option of a database test: never skips under CI=true (the test then fails on the missing piece). */
export function skipWithoutDatabases(): string | false {
  const missing = databasesMissing();
  return missing && process.env.CI !== "true" ? missing : false;
}

export async function freeTcpPort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

const asRoot = process.getuid?.() === 0;
const pgUser = () => Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
const pgGroup = () => Number(execFileSync("id", ["-g", "postgres"]).toString().trim());

/** Runs a PostgreSQL tool, as the postgres user when we are root. */
function pgTool(tool: string, args: string[]): string {
  const [cmd, argv] = asRoot
    ? ["runuser", ["-u", "postgres", "--", `${PG_BIN}/${tool}`, ...args]]
    : [`${PG_BIN}/${tool}`, args];
  return execFileSync(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], cwd: "/" }).toString();
}

function ownedTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (asRoot) chownSync(dir, pgUser(), pgGroup());
  chmodSync(dir, 0o700);
  return dir;
}

export interface PgServer {
  port: number;
  dataDir: string;
  /** Promotes a replica to primary (pg_ctl promote, waits until done). */
  promote(): void;
  /** Stops the server (fast shutdown, waits). */
  stop(): void;
}

const stopped = new Set<() => void>();
process.once("exit", () => {
  for (const stop of stopped) stop();
});

function pgServer(dataDir: string, host: string, port: number, root: string): PgServer {
  const log = join(root, `pg-${port}.log`);
  pgTool("pg_ctl", [
    "-D",
    dataDir,
    "-l",
    log,
    "-w",
    "-o",
    `-c listen_addresses=${host} -c port=${port} -c unix_socket_directories=${root} -c fsync=off`,
    "start",
  ]);
  let running = true;
  const stop = () => {
    if (!running) return;
    running = false;
    stopped.delete(stop);
    pgTool("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "stop"]);
  };
  stopped.add(stop);
  return {
    port,
    dataDir,
    promote: () => void pgTool("pg_ctl", ["-D", dataDir, "-w", "promote"]),
    stop,
  };
}

/**
 * A PostgreSQL primary on 127.0.0.1 with password authentication for user
 * `probe` (password `secret`), and optionally a streaming replica of it
 * (pg_basebackup -R).
 */
export async function postgresCluster(
  t: { after: (fn: () => void) => void },
  { replica = false, primaryHost = "127.0.0.1", replicaHost = "127.0.0.1" } = {},
): Promise<{ primary: PgServer; replica?: PgServer; user: string; password: string }> {
  const root = ownedTempDir("roster-pg-");
  const pw = join(root, "pw");
  writeFileSync(pw, "secret\n");
  if (asRoot) chownSync(pw, pgUser(), pgGroup());
  const primaryDir = join(root, "primary");
  pgTool("initdb", ["-D", primaryDir, "-U", "probe", `--pwfile=${pw}`, "-A", "scram-sha-256", "--no-sync"]);
  writeFileSync(
    join(primaryDir, "pg_hba.conf"),
    "host all all 127.0.0.0/8 scram-sha-256\nhost replication all 127.0.0.0/8 scram-sha-256\nlocal all all scram-sha-256\n",
  );
  const primary = pgServer(primaryDir, primaryHost, await freeTcpPort(primaryHost), root);
  t.after(() => primary.stop());
  let standby: PgServer | undefined;
  if (replica) {
    const replicaDir = join(root, "replica");
    const pgpass = join(root, "pgpass");
    writeFileSync(pgpass, `${primaryHost}:${primary.port}:*:probe:secret\n`, { mode: 0o600 });
    if (asRoot) chownSync(pgpass, pgUser(), pgGroup());
    const env = asRoot ? ["env", `PGPASSFILE=${pgpass}`] : [];
    const args = [
      "-D",
      replicaDir,
      "-h",
      primaryHost,
      "-p",
      String(primary.port),
      "-U",
      "probe",
      "-R",
      "-X",
      "stream",
    ];
    if (asRoot)
      execFileSync("runuser", ["-u", "postgres", "--", ...env, `${PG_BIN}/pg_basebackup`, ...args], {
        cwd: "/",
      });
    else execFileSync(`${PG_BIN}/pg_basebackup`, args, { env: { ...process.env, PGPASSFILE: pgpass } });
    standby = pgServer(replicaDir, replicaHost, await freeTcpPort(replicaHost), root);
    t.after(() => standby!.stop());
  }
  // After hooks run in the order they were added: the servers stop before their data goes.
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return { primary, ...(standby ? { replica: standby } : {}), user: "probe", password: "secret" };
}

export interface RedisServer {
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** A redis-server on 127.0.0.1 (no persistence), with `requirepass` when a password is given. */
export async function redisServer(
  t: { after: (fn: () => void | Promise<void>) => void },
  {
    password,
    replicaOf,
    host = "127.0.0.1",
  }: { password?: string; replicaOf?: { host: string; port: number }; host?: string } = {},
): Promise<RedisServer> {
  const port = await freeTcpPort(host);
  const args = ["--port", String(port), "--bind", host, "--save", "", "--appendonly", "no"];
  if (password) args.push("--requirepass", password, "--masterauth", password);
  if (replicaOf) args.push("--replicaof", replicaOf.host, String(replicaOf.port));
  const dir = mkdtempSync(join(tmpdir(), "roster-redis-"));
  args.push("--dir", dir);
  const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const onData = () => {
      if (/Ready to accept connections/.test(output)) {
        child.stdout.off("data", onData);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    await exited;
  };
  t.after(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { port, process: child, stop };
}
