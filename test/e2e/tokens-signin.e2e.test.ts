/**
 * Sign-in end to end, as an operator lives it: the daemon and `mailfetchd login/logout` as
 * separate processes, on the real Dovecot and the identity stand-in over HTTPS.
 *
 * A device-code-only queue waits in needs-sign-in; login attempts that are declined, expire or
 * are blocked by Conditional Access fail with their fix; an approved login is picked up by the
 * running daemon; a revoked sign-in puts the queue back in needs-sign-in without hammering the
 * endpoint, until the next login; logout takes effect in the running daemon. Beside it, a
 * shared mailbox is fetched through its delegate. Then nothing secret may be found anywhere.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StateDatabase } from "../../src/store/sqlite/database.js";
import { openSqliteStore, type SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import type { QueueStatusStore } from "../../src/store/ports.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";
import { runCli, userCodeIn, type CommandResult } from "../../tools/testbed/helpers/tokens-cli.js";

const DESK = { name: "desk", address: "desk@example.test", password: "desk-Pa55word!" };
const SHARED = { name: "support", address: "support@example.test" };
const DELEGATE = { username: "alex@example.test", password: "alex-Pa55word!" };
const POLL_MS = 1_000;

let bed: TestBed;
let configFile: string;
let stateDir: string;
let outDir: string;
let daemon: DaemonProcess;
let state: SqliteStateStore;
let db: StateDatabase;
let status: QueueStatusStore;
const cliOutputs: CommandResult[] = [];

beforeAll(async () => {
  bed = await startTestBed({ accessTokenLifetimeSeconds: 2, deviceCodeIntervalSeconds: 0.05 });
  bed.identity.addUser({ username: DESK.address, password: DESK.password });
  bed.identity.addUser({ username: DELEGATE.username, password: DELEGATE.password, mailboxes: [SHARED.address] });
  stateDir = path.join(bed.dir, "state");
  outDir = path.join(bed.dir, "out");
  configFile = bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: `${POLL_MS / 1000}s`,
    queues: [
      // No password: this queue can only be signed in with `mailfetchd login`.
      { name: DESK.name, address: DESK.address, handlers: [{ type: "directory", path: outDir }] },
      {
        name: SHARED.name,
        address: SHARED.address,
        signInUser: DELEGATE.username,
        password: DELEGATE.password,
        handlers: [{ type: "directory", path: outDir }],
      },
    ],
  });
  daemon = new DaemonProcess(configFile);
  daemon.start();
  await daemon.waitFor("the state database", () => existsSync(path.join(stateDir, "state.sqlite")));
  state = openSqliteStore(stateDir);
  db = state.db;
  status = state.queueStatus;
});

afterAll(async () => {
  await daemon?.stop("SIGKILL");
  await state?.close();
  await bed?.close();
});

function delivered(queue: string): number {
  const dir = path.join(outDir, queue);
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.startsWith(".")).length : 0;
}

function message(n: number, to: string): string {
  return `From: customer${n}@example.test\r\nTo: ${to}\r\nSubject: request ${n}\r\nMessage-ID: <request-${n}-${to}>\r\nDate: Mon, 6 Jan 2025 10:00:0${n % 10} +0000\r\n\r\nPlease help (${n}).\r\n`;
}

async function stateOf(queue: string): Promise<string | undefined> {
  return (await status.get(queue))?.state;
}

/** `mailfetchd login desk`, answering the device code prompt the way the test says. */
async function login(answer: (userCode: string) => void): Promise<CommandResult> {
  let answered = false;
  const result = await runCli(["login", DESK.name, "--config", configFile], {
    onOutput: (stdout) => {
      const code = userCodeIn(stdout);
      if (code && !answered) {
        answered = true;
        answer(code);
      }
    },
  });
  cliOutputs.push(result);
  return result;
}

function tokenRequestsFor(user: string): number {
  return bed.identity.tokenRequests.filter((r) => r.username === user).length;
}

describe("signing queues in while the daemon runs", () => {
  it("a queue with no sign-in waits in needs-sign-in and names the command; the shared mailbox is fetched through its delegate", async () => {
    await bed.dovecot.deliver(SHARED.address, message(1, SHARED.address));
    await daemon.waitFor("desk in needs-sign-in", async () => (await stateOf(DESK.name)) === "needs-sign-in");
    await daemon.waitFor("the shared mailbox's message", () => delivered(SHARED.name) === 1);

    expect((await status.get(DESK.name))?.lastError).toMatchObject({ code: "IDENTITY_NEEDS_SIGN_IN", fix: expect.stringContaining("mailfetchd login desk") });
    const signIns = bed.identity.tokenRequests.filter((r) => r.grantType === "password");
    expect(signIns.map((r) => r.username)).toEqual([DELEGATE.username]);
  });

  it("login fails clearly when the sign-in is declined, when the code expires, or when Conditional Access blocks it", async () => {
    const declined = await login((code) => bed.identity.declineDeviceCode(code));
    expect(declined.code).toBe(1);
    expect(declined.stdout).toMatch(/To sign in, use a web browser to open the page https:\/\/\S+\/devicelogin and enter the code [A-Z2-9]{9}/);
    expect(declined.stderr).toMatch(
      /^mailfetchd: Queue desk: the sign-in was declined on the device login page \(AADSTS65004\)\. Fix: Run `mailfetchd login desk` again/,
    );

    const expired = await login((code) => bed.identity.expireDeviceCode(code));
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/the device code expired before the sign-in was completed \(AADSTS70019\)\. Fix: Run `mailfetchd login desk` again/);

    bed.identity.failNext(53003, { grant: "device_code" });
    const blocked = await login((code) => bed.identity.approveDeviceCode(code, DESK.address));
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/blocked by a Conditional Access policy \(AADSTS53003\)\. Fix: Ask the tenant admin/);

    expect(await stateOf(DESK.name)).toBe("needs-sign-in");
  });

  it("an approved login is picked up by the running daemon within seconds, without a restart", async () => {
    await bed.dovecot.deliver(DESK.address, message(2, DESK.address));
    await bed.dovecot.deliver(DESK.address, message(3, DESK.address));

    const approved = await login((code) => bed.identity.approveDeviceCode(code, DESK.address));

    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain(`Signed in as ${DESK.address}.`);
    await daemon.waitFor("desk's two messages", () => delivered(DESK.name) === 2, 20_000);
    await daemon.waitFor("desk ok", async () => (await stateOf(DESK.name)) === "ok");
    // (Whether the sign-in watcher or the next poll noticed the new sign-in first depends on
    // timing; either way the queue fetched without a restart, which is what is asserted.)
    // Back on its interval, not on a long retry delay: new mail arrives within a few polls.
    await bed.dovecot.deliver(DESK.address, message(4, DESK.address));
    await daemon.waitFor("desk's third message", () => delivered(DESK.name) === 3, 20 * POLL_MS);
  });

  it("a revoked sign-in puts the queue in needs-sign-in, where it sends no more requests; the next login revives it", async () => {
    bed.identity.revokeRefreshTokens(DESK.address);
    await daemon.waitFor("desk in needs-sign-in", async () => (await stateOf(DESK.name)) === "needs-sign-in");
    const error = (await status.get(DESK.name))?.lastError;
    expect(error).toMatchObject({ code: "IDENTITY_SIGN_IN_EXPIRED", message: expect.stringContaining("AADSTS50173") });
    expect(error?.fix).toContain("mailfetchd login desk");
    // Logged once, as an error (the log is written asynchronously: it may trail the status row).
    await daemon.waitFor("the error line", () => daemon.lines.some((l) => l.level === 50 && l.queue === DESK.name && l.code === "IDENTITY_SIGN_IN_EXPIRED"));

    const requests = tokenRequestsFor(DESK.address);
    await new Promise((resolve) => setTimeout(resolve, 5 * POLL_MS)); // five poll intervals
    expect(tokenRequestsFor(DESK.address)).toBe(requests);
    expect(await stateOf(DESK.name)).toBe("needs-sign-in");

    await bed.dovecot.deliver(DESK.address, message(5, DESK.address));
    expect((await login((code) => bed.identity.approveDeviceCode(code, DESK.address))).code).toBe(0);
    await daemon.waitFor("desk's fourth message", () => delivered(DESK.name) === 4, 20_000);
    expect(await stateOf(DESK.name)).toBe("ok");
  });

  it("logout removes the sign-in, and the running daemon stops using it", async () => {
    const result = await runCli(["logout", DESK.name, "--config", configFile]);
    cliOutputs.push(result);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Removed the stored sign-in of queue desk.");

    await daemon.waitFor("desk in needs-sign-in after logout", async () => (await status.get(DESK.name))?.lastError?.code === "IDENTITY_NEEDS_SIGN_IN", 40_000);
    expect(await stateOf(DESK.name)).toBe("needs-sign-in");
    expect(db.prepare("SELECT count(*) AS n FROM token_cache WHERE queue = ?").get(DESK.name)).toEqual({ n: 0 });
    expect(await stateOf(SHARED.name)).toBe("ok");
  });

  it("leaves no token, password or device code in any log line, command output, the database or the spool", async () => {
    expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    const secrets = [...bed.identity.secretsIssued];
    expect(secrets.length).toBeGreaterThan(20);
    const printed = [daemon.rawOutput.join(""), ...cliOutputs.map((r) => r.stdout + r.stderr)].join("\n");
    expect(secrets.filter((secret) => printed.includes(secret)).map((s) => s.slice(0, 6))).toEqual([]);
    expect(scanForSecrets([...listFiles(stateDir), ...listFiles(outDir)], secrets)).toEqual([]);
  });
});
