/**
 * A real Dovecot IMAP server for tests, the demo and benchmarks: started from a fresh temp
 * directory on free ports, validating XOAUTH2 tokens against the identity stand-in.
 *
 * Timings measured here: ready 35-60 ms after spawn; SIGKILL of the process group ~5 ms (a
 * graceful stop takes ~2.5 s because the master lingers, so we never ask nicely).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createServer } from "node:net";
import { connect } from "node:tls";
import { promisify } from "node:util";
import { renderDovecotConfig, renderOAuth2Config, type DovecotAccounts } from "./dovecot-config.js";
import { findFreePorts } from "./free-port.js";

const run = promisify(execFile);

// Debian puts dovecot in /usr/sbin, which is not on a normal user's PATH.
const DOVECOT = existsSync("/usr/sbin/dovecot") ? "/usr/sbin/dovecot" : "dovecot";
const DOVEADM = "doveadm";
const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 10;
const PORT_RELEASE_TIMEOUT_MS = 5_000;

export interface DovecotOptions {
  /** Where to keep config, mail and logs. Default: a fresh temp dir (a reused dir with a stale
   *  anvil-auth-penalty socket makes start take 5 s). */
  readonly dir?: string;
  readonly introspectionUrl: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** Appended to dovecot.conf, e.g. higher process limits for 1,000 mailboxes (npm run bench). */
  readonly extraConfig?: string;
}

export interface Dovecot {
  readonly host: "127.0.0.1";
  /** Implicit TLS (imaps), like outlook.office365.com:993. */
  readonly port: number;
  /** Plain IMAP (STARTTLS possible); for protocol-level tests only. */
  readonly plainPort: number;
  readonly dir: string;
  readonly logFile: string;
  /** Deliver a message into a user's folder (default INBOX) with `doveadm save`. */
  deliver(user: string, raw: Buffer | string, folder?: string): Promise<void>;
  createFolder(user: string, folder: string): Promise<void>;
  /** Deletes the folder with its messages and sub-folders. */
  deleteFolder(user: string, folder: string): Promise<void>;
  /** Disconnects every IMAP session of the user (`doveadm kick`), as a server that drops a client. */
  kick(user: string): Promise<void>;
  /** kill -9 the process group (connections drop like a crashed server). */
  stop(): Promise<void>;
  /** Start again on the same dir and ports (for restart tests). */
  start(): Promise<void>;
  /** stop() and remove the directory. */
  close(): Promise<void>;
}

export async function startDovecot(options: DovecotOptions): Promise<Dovecot> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "mailfetchd-dovecot-")));
  const [tlsPort, plainPort] = (await findFreePorts(2)) as [number, number];
  const accounts = await dovecotAccounts();
  const configFile = join(dir, "dovecot.conf");
  const oauth2ConfigFile = join(dir, "dovecot-oauth2.conf.ext");

  await prepareDirectory(dir, accounts);
  await writeFile(oauth2ConfigFile, renderOAuth2Config(options.introspectionUrl));
  await writeFile(
    configFile,
    renderDovecotConfig({
      dir,
      // Unique per run: Dovecot tools find their instance by name, and two test files run at once.
      instanceName: `mailfetchd-test-${randomBytes(4).toString("hex")}`,
      plainPort,
      tlsPort,
      certFile: options.certFile,
      keyFile: options.keyFile,
      oauth2ConfigFile,
      accounts,
    }) + (options.extraConfig ?? ""),
  );

  const server = new DovecotProcess(dir, configFile, tlsPort, [tlsPort, plainPort]);
  try {
    await server.start();
  } catch (error) {
    // The error carries the log lines; a temp dir we made ourselves would only pile up.
    if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    host: "127.0.0.1",
    port: tlsPort,
    plainPort,
    dir,
    logFile: server.logFile,
    deliver: (user, raw, folder = "INBOX") => save(configFile, user, folder, typeof raw === "string" ? Buffer.from(raw) : raw),
    createFolder: (user, folder) => doveadm(configFile, ["mailbox", "create", "-u", user, folder]),
    deleteFolder: (user, folder) => doveadm(configFile, ["mailbox", "delete", "-u", user, "-r", "-s", folder]),
    kick: (user) => doveadm(configFile, ["kick", user]),
    stop: () => server.stop(),
    start: () => server.start(),
    close: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One Dovecot master and its children, all in one process group so one signal ends them all. */
class DovecotProcess {
  readonly logFile: string;
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private readonly killOnExit = () => this.killGroup();

  constructor(
    private readonly dir: string,
    private readonly configFile: string,
    private readonly tlsPort: number,
    private readonly ports: number[],
  ) {
    this.logFile = join(dir, "dovecot.log");
  }

  async start(): Promise<void> {
    if (this.child) return;
    // A stale master.pid or anvil socket from a killed run blocks or slows the next start.
    await rm(join(this.dir, "run"), { recursive: true, force: true });
    // Errors before Dovecot opens its log (a bad config line) only go to stderr.
    const stderrFile = join(this.dir, "dovecot.stderr");
    const stderr = await open(stderrFile, "a");
    const child = spawn(DOVECOT, ["-F", "-c", this.configFile], {
      detached: true,
      stdio: ["ignore", stderr.fd, stderr.fd],
    });
    let spawnError: Error | undefined;
    child.once("error", (error) => {
      spawnError = error; // e.g. ENOENT: dovecot-imapd/dovecot-core not installed
    });
    await stderr.close();
    child.unref();
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    void this.exited.then(() => {
      if (this.child === child) this.child = undefined;
    });
    // A test runner that exits (or a failed test that skips close()) must not leave Dovecot behind.
    process.on("exit", this.killOnExit);

    try {
      await this.waitUntilReady(child, () => spawnError);
    } catch (error) {
      await this.stop();
      const log = await readTail(this.logFile);
      const early = await readTail(stderrFile);
      throw new Error(`Dovecot did not start: ${(error as Error).message}\n${early}${log}`, { cause: error });
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    process.removeListener("exit", this.killOnExit);
    if (!child || child.pid === undefined) return;
    // Unref'd at spawn so a forgotten server never keeps a process alive; while we wait for it
    // to die it must hold the event loop, or a caller's `await stop()` would never return.
    child.ref();
    this.killGroup();
    await this.exited;
    this.child = undefined;
    await waitForPortsReleased(this.ports);
  }

  private killGroup(): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  private async waitUntilReady(child: ChildProcess, spawnError: () => Error | undefined): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      const failedToSpawn = spawnError();
      if (failedToSpawn) throw new Error(`cannot run ${DOVECOT}: ${failedToSpawn.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`dovecot exited (code ${child.exitCode}, signal ${child.signalCode})`);
      }
      try {
        await readBanner(this.tlsPort);
        return;
      } catch (error) {
        lastError = error;
        await sleep(READY_POLL_MS);
      }
    }
    throw new Error(`no "* OK" banner on port ${this.tlsPort} within ${READY_TIMEOUT_MS} ms: ${String(lastError)}`);
  }
}

/** Connects with TLS and resolves once the server greets with "* OK". */
function readBanner(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // Only a readiness probe: certificate checks are the clients' business, with the test CA.
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
    let received = "";
    const done = (error?: Error) => {
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.setTimeout(1_000, () => done(new Error("banner timeout")));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (received.startsWith("* OK")) done();
      else if (received.includes("\r\n")) done(new Error(`unexpected greeting: ${received.trim()}`));
    });
    socket.on("error", done);
    socket.on("close", () => done(new Error("closed before the greeting")));
  });
}

/**
 * `doveadm save`, tried again when Dovecot reports that the folder was deleted under it: right
 * after a folder is deleted and created again, a session that still had the old one open can
 * make the first save's commit fail. Nothing was saved then, so trying again saves it once.
 */
async function save(configFile: string, user: string, folder: string, raw: Buffer): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await doveadm(configFile, ["save", "-u", user, "-m", folder], raw);
    } catch (error) {
      if (attempt >= 5 || !/deleted under us/i.test(String((error as Error).message))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

async function doveadm(configFile: string, args: string[], input?: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(DOVEADM, ["-c", configFile, ...args], { timeout: 30_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`doveadm ${args.join(" ")} failed: ${stderr.trim() || error.message}`, { cause: error }));
      else resolve();
    });
    child.stdin?.end(input);
  });
}

/**
 * As root, Dovecot needs its own service users and a non-root uid for mail; as anyone else it
 * can only run everything as that user (and only on ports above 1024, which ours are).
 */
async function dovecotAccounts(): Promise<DovecotAccounts> {
  if (process.getuid?.() === 0) {
    const [uid, gid] = await Promise.all([idOf(["-u", "nobody"]), idOf(["-g", "nobody"])]);
    return { internalUser: "dovecot", internalGroup: "dovecot", loginUser: "dovenull", mailUid: uid, mailGid: gid };
  }
  const me = userInfo();
  const { stdout: group } = await run("id", ["-gn"]);
  return { internalUser: me.username, internalGroup: group.trim(), loginUser: me.username, mailUid: me.uid, mailGid: me.gid };
}

async function idOf(args: string[]): Promise<number> {
  const { stdout } = await run("id", args);
  return Number(stdout.trim());
}

async function prepareDirectory(dir: string, accounts: DovecotAccounts): Promise<void> {
  await mkdir(dir, { recursive: true });
  const mailDir = join(dir, "mail");
  await mkdir(mailDir, { recursive: true });
  await mkdir(join(dir, "state"), { recursive: true });
  if (process.getuid?.() === 0) {
    // The mail processes (uid nobody) must reach DIR/mail through a temp dir that mkdtemp made 0700.
    await chmod(dir, 0o755);
    await chown(mailDir, accounts.mailUid, accounts.mailGid);
    await letOthersTraverse(dirname(resolve(dir)));
  }
}

/**
 * A caller's dir often sits in its own mkdtemp dir (0700), which uid nobody cannot pass
 * through. Inside the temp dir we open such parents for traversal only (o+x, no listing);
 * elsewhere we refuse to touch permissions and say why.
 */
async function letOthersTraverse(directory: string): Promise<void> {
  const temp = resolve(tmpdir());
  for (let current = directory; current !== dirname(current); current = dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & 0o001) !== 0) continue;
    if (!current.startsWith(`${temp}/`)) {
      throw new Error(
        `Dovecot's mail processes run as nobody and cannot pass through ${current} (mode ${(mode & 0o777).toString(8)}); choose a dir under ${temp}`,
      );
    }
    await chmod(current, (mode & 0o7777) | 0o001);
  }
}

/**
 * Waits until nothing listens on the ports any more. Waiting for the process group to vanish
 * instead takes ~1.7 s here: the killed children linger as zombies until PID 1 reaps them,
 * though they released their sockets at once.
 */
async function waitForPortsReleased(ports: number[]): Promise<void> {
  const deadline = Date.now() + PORT_RELEASE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if ((await Promise.all(ports.map(canListen))).every(Boolean)) return;
    await sleep(5);
  }
  throw new Error(`ports ${ports.join(", ")} still in use ${PORT_RELEASE_TIMEOUT_MS} ms after SIGKILL`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function readTail(file: string): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.split("\n").slice(-20).join("\n");
  } catch {
    return "";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
