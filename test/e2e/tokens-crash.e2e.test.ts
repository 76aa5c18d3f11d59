/**
 * The sign-in survives what a process can suffer, end to end on the daemon as a process:
 *
 * - kill -9 right after a refresh: the stand-in rejects a redeemed refresh token (AADSTS70000),
 *   so if the rotated one were not on disk before the new access token was used, the restarted
 *   daemon would land in needs-sign-in. The queue has no password to hide that behind.
 * - key rotation: a new key line above the old one; the daemon reads the cache sealed with the
 *   old key and re-seals it with the new one at its next write, after which the old key can go.
 *   A key file without the cache's key is an error that says so, never a plaintext fallback.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import type { StateDatabase } from "../../src/store/sqlite/database.js";
import { openSqliteStore, type SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import { writeNewKeyFile } from "../../src/state/secret-box.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";
import { runCli, userCodeIn } from "../../tools/testbed/helpers/tokens-cli.js";

const DESK = { name: "desk", address: "desk@example.test", password: "desk-Pa55word!" };
const CRASHES = 2;

let bed: TestBed;
let configFile: string;
let keyFile: string;
let stateDir: string;
let outDir: string;
let state: SqliteStateStore;
let db: StateDatabase;
const daemons: DaemonProcess[] = [];
let mailNumber = 0;

beforeAll(async () => {
  bed = await startTestBed({ accessTokenLifetimeSeconds: 2, deviceCodeIntervalSeconds: 0.05 });
  bed.identity.addUser({ username: DESK.address, password: DESK.password });
  stateDir = path.join(bed.dir, "state");
  outDir = path.join(bed.dir, "out");
  configFile = bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: "1s",
    queues: [{ name: DESK.name, address: DESK.address, handlers: [{ type: "directory", path: outDir }] }],
  });
  keyFile = loadConfig(configFile).keyFile;
  // Signed in by device code only: a lost refresh token cannot be covered up by a password.
  const login = await runCli(["login", DESK.name, "--config", configFile], {
    onOutput: (stdout) => {
      const code = userCodeIn(stdout);
      if (code && !bed.identity.tokenRequests.some((r) => r.grantType === "device_code" && r.outcome === 200)) {
        try {
          bed.identity.approveDeviceCode(code, DESK.address);
        } catch {
          // Already approved on an earlier chunk of output.
        }
      }
    },
  });
  expect(login.code, login.stderr).toBe(0);
  state = openSqliteStore(stateDir);
  db = state.db;
});

afterAll(async () => {
  await Promise.allSettled(daemons.map((d) => d.stop("SIGKILL")));
  await state?.close();
  await bed?.close();
});

function startDaemon(): DaemonProcess {
  const daemon = new DaemonProcess(configFile);
  daemons.push(daemon);
  daemon.start();
  return daemon;
}

function delivered(): number {
  try {
    return listFiles(path.join(outDir, DESK.name)).filter((file) => file.endsWith("message.eml")).length;
  } catch {
    return 0;
  }
}

async function deliverMail(): Promise<void> {
  const n = ++mailNumber;
  await bed.dovecot.deliver(
    DESK.address,
    `From: c${n}@example.test\r\nTo: ${DESK.address}\r\nSubject: case ${n}\r\nMessage-ID: <case-${n}@example.test>\r\n\r\nbody ${n}\r\n`,
  );
}

/** Waits for the last mail; a lost sign-in ends the wait at once, with the reason. */
async function deliveredOrSignInLost(daemon: DaemonProcess, what: string): Promise<void> {
  await daemon.waitFor(what, () => delivered() === mailNumber || refreshes(400) > 0);
  expect(refreshes(400), "a refresh was refused: the rotated refresh token was lost in the crash").toBe(0);
}

function refreshes(outcome: number): number {
  return bed.identity.tokenRequests.filter((r) => r.grantType === "refresh_token" && r.outcome === outcome).length;
}

function imapLogins(): number {
  return (readFileSync(bed.dovecot.logFile, "utf8").match(new RegExp(`Login: user=<${DESK.address}>`, "g")) ?? []).length;
}

async function stateOf(queue: string): Promise<string | undefined> {
  return (await state.queueStatus.get(queue))?.state;
}

function keyIdOfCache(): string | undefined {
  return (db.prepare("SELECT key_id FROM token_cache WHERE queue = ?").get(DESK.name) as { key_id: string } | undefined)?.key_id;
}

describe("the sign-in across crashes and key rotation", () => {
  it(`survives kill -9 right after a rotated refresh token was issued and used, ${CRASHES} times over`, async () => {
    for (let crash = 1; crash <= CRASHES; crash++) {
      const daemon = startDaemon();
      await deliverMail();
      await deliveredOrSignInLost(daemon, `mail ${mailNumber} delivered (run ${crash})`);
      // Wait for the next refresh, then for an IMAP login after it: the new token is in use.
      const refreshed = refreshes(200);
      await daemon.waitFor("a refresh", () => refreshes(200) > refreshed);
      const logins = imapLogins();
      await daemon.waitFor("an IMAP login with the new token", () => imapLogins() > logins);
      expect(await daemon.stop("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
    }

    const daemon = startDaemon();
    await deliverMail();
    await deliveredOrSignInLost(daemon, "mail after the last crash");
    const refreshed = refreshes(200);
    await daemon.waitFor("a refresh after the last crash", () => refreshes(200) > refreshed);
    expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    // Every refresh presented the latest refresh token: none was refused as redeemed (AADSTS70000).
    expect(refreshes(400)).toBe(0);
    expect(bed.identity.tokenRequests.filter((r) => r.grantType === "password")).toEqual([]);
    expect(await stateOf(DESK.name)).toBe("ok");
  });

  it("rotates the key: reads the cache under the old key, re-seals it under the new one, then needs only the new one", async () => {
    const oldKey = readFileSync(keyFile, "utf8").trim();
    const oldKeyId = oldKey.split(":")[1]!;
    expect(keyIdOfCache()).toBe(oldKeyId);
    const newKeyFile = path.join(bed.dir, "new.key");
    writeNewKeyFile(newKeyFile, "krotated");
    const newKey = readFileSync(newKeyFile, "utf8").trim();
    writeFileSync(keyFile, `${newKey}\n${oldKey}\n`, { mode: 0o600 });

    let daemon = startDaemon();
    await deliverMail();
    await daemon.waitFor("mail under both keys", () => delivered() === mailNumber);
    await daemon.waitFor("the cache re-sealed with the new key", () => keyIdOfCache() === "krotated");
    expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    writeFileSync(keyFile, `${newKey}\n`, { mode: 0o600 });
    daemon = startDaemon();
    await deliverMail();
    await daemon.waitFor("mail under the new key alone", () => delivered() === mailNumber);
    expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(await stateOf(DESK.name)).toBe("ok");
    expect(refreshes(400)).toBe(0);
  });

  it("a key file without the cache's key is an error naming the fix, not a plaintext fallback", async () => {
    const current = readFileSync(keyFile, "utf8");
    const strangerFile = path.join(bed.dir, "stranger.key");
    writeNewKeyFile(strangerFile, "kstranger");
    writeFileSync(keyFile, readFileSync(strangerFile, "utf8"), { mode: 0o600 });
    try {
      const daemon = startDaemon();
      await daemon.waitFor("the queue misconfigured", async () => (await stateOf(DESK.name)) === "misconfigured");
      const status = await state.queueStatus.get(DESK.name);
      expect(status?.lastError?.code).toBe("SECRET_UNREADABLE");
      expect(status?.lastError?.message).toContain("sealed with key 'krotated'");
      expect(status?.lastError?.fix).toMatch(/Put the old key back/);
      expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });
      expect(keyIdOfCache()).toBe("krotated"); // untouched, still readable with the right key
    } finally {
      writeFileSync(keyFile, current, { mode: 0o600 });
    }
  });

  it("leaves no token, password or device code in any log line, the database or the spool", () => {
    const secrets = [...bed.identity.secretsIssued];
    const printed = daemons.map((d) => d.rawOutput.join("")).join("\n");
    expect(secrets.filter((secret) => printed.includes(secret)).map((s) => s.slice(0, 6))).toEqual([]);
    expect(scanForSecrets([...listFiles(stateDir), ...listFiles(outDir)], secrets)).toEqual([]);
  });
});
