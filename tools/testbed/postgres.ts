/**
 * A real PostgreSQL for tests and benchmarks: a fresh cluster (initdb) in a temp directory,
 * on a free loopback port and a Unix socket in that directory, stopped and removed by close().
 *
 * PostgreSQL refuses to run as root: as root, the cluster belongs to Debian's `postgres` user
 * and every server binary runs through `runuser`. The binaries come from
 * /usr/lib/postgresql/<newest version>/bin (Debian's `postgresql` package), or from PATH.
 * The role has a password (scram-sha-256 over TCP) so tests see a URL with a secret in it,
 * as operators write them, and can check it never reaches a message.
 *
 * fsync is off: a test cluster never outlives a power cut, and on a shared 2-core machine
 * every commit's flush slowed the suites; crash tests kill our daemon, not PostgreSQL.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { findFreePorts } from "./free-port.js";

const run = promisify(execFile);
const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 50;
export const TEST_ROLE = "mailfetchd";

export interface Postgres {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly dir: string;
  readonly password: string;
  /** postgres://mailfetchd:<password>@127.0.0.1:<port>/<database> (default database: mailfetchd). */
  url(database?: string): string;
  /** A new, empty database; returns its URL. Tests isolate themselves in one each. */
  createDatabase(name?: string): Promise<string>;
  /** Runs SQL as the cluster's superuser on a database (default mailfetchd). */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[], database?: string): Promise<T[]>;
  /** Stops the server at once (connections drop as in an outage); start() brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** The directory of PostgreSQL's server binaries: the newest version Debian installed, else PATH. */
export function postgresBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+(\.\d+)?$/.test(name) && existsSync(join(root, name, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], "bin");
}

export async function startPostgres(): Promise<Postgres> {
  const binDir = postgresBinDir();
  const bin = (name: string) => (binDir ? join(binDir, name) : name);
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? await systemUser("postgres") : undefined;
  // As root, the server's user runs every binary; `runuser` comes with util-linux.
  const command = (name: string, args: string[]): [string, string[]] => (owner ? ["runuser", ["-u", "postgres", "--", bin(name), ...args]] : [bin(name), args]);

  const dir = await mkdtemp(join(tmpdir(), "mailfetchd-postgres-"));
  const dataDir = join(dir, "data");
  const password = randomBytes(12).toString("hex");
  const [port] = (await findFreePorts(1)) as [number];
  await chmod(dir, 0o700);
  await writeFile(join(dir, "pwfile"), `${password}\n`, { mode: 0o600 });
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await chown(join(dir, "pwfile"), owner.uid, owner.gid);
  }
  await mkdir(dataDir, { mode: 0o700 });
  if (owner) await chown(dataDir, owner.uid, owner.gid);
  await run(
    ...command("initdb", [
      "-D",
      dataDir,
      "-U",
      TEST_ROLE,
      `--pwfile=${join(dir, "pwfile")}`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
    ]),
    {
      maxBuffer: 4 * 1024 * 1024,
    },
  );
  await rm(join(dir, "pwfile"));

  let server: ChildProcess | undefined;
  const serverArgs = [
    "-D",
    dataDir,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "fsync=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "max_connections=200",
  ];

  const url = (database = TEST_ROLE) => `postgres://${TEST_ROLE}:${password}@127.0.0.1:${port}/${database}`;
  // The superuser over the Unix socket (trust): works while a test changes the role's password.
  const superClient = (database = TEST_ROLE) => new pg.Client({ host: dir, port, user: TEST_ROLE, database });

  const query = async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = [], database?: string): Promise<T[]> => {
    const client = superClient(database);
    await client.connect();
    try {
      return (await client.query<T>(sql, values)).rows;
    } finally {
      await client.end();
    }
  };

  const start = async (): Promise<void> => {
    const [file, args] = command("postgres", serverArgs);
    // Its own process group: a test runner killed hard does not leave the postmaster to a shell.
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    server = child;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${stderr}`);
      try {
        await query("SELECT 1", [], "postgres");
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections within ${READY_TIMEOUT_MS} ms: ${stderr}`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
      }
    }
  };

  const stop = async (): Promise<void> => {
    const child = server;
    server = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // SIGQUIT to the postmaster: immediate shutdown, every backend gone, like a crash.
    const pid = postmasterPid(dataDir);
    if (pid !== undefined) process.kill(pid, "SIGQUIT");
    else child.kill("SIGQUIT");
    await exited;
  };

  await start();
  await query(`CREATE DATABASE ${TEST_ROLE}`, [], "postgres");
  // Leftover servers of a test process that died hard: the postmaster goes with its parent.
  const onExit = () => {
    const pid = postmasterPid(dataDir);
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGQUIT");
      } catch {
        // already gone
      }
    }
  };
  process.once("exit", onExit);

  return {
    host: "127.0.0.1",
    port,
    dir,
    password,
    url,
    query,
    async createDatabase(name = `db_${randomBytes(4).toString("hex")}`) {
      await query(`CREATE DATABASE "${name}"`, [], "postgres");
      return url(name);
    },
    stop,
    start,
    async close() {
      process.off("exit", onExit);
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function systemUser(name: string): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run("getent", ["passwd", name]).catch(() => ({ stdout: "" }));
  const fields = stdout.trim().split(":");
  if (fields.length < 4)
    throw new Error(
      `running as root, the PostgreSQL test bed needs the system user '${name}' (Debian's postgresql package creates it): bash scripts/ensure-test-bed.sh --suite`,
    );
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
