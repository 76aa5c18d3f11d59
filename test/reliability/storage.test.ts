/**
 * Storage faults on filesystems of the test's own (tmpfs, mounted by the test: needs root, as
 * CI is): the state directory (SQLite) full, then the spool directory (a second tmpfs inside
 * it) read-only. Fetching stops, nothing is marked on the server, and everything resumes when
 * the space returns. (The SQLite file itself cannot be made read-only under a running daemon:
 * Linux refuses to remount a filesystem read-only while a file on it is open for writing.)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { recordFigures } from "./figures.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

const QUEUE = { name: "disk", address: "disk@example.test", password: "disk-password-1" };
const isRoot = process.getuid?.() === 0;
let bed: TestBed;
let stateDir: string;
let outDir: string;
let configFile: string;

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  stateDir = path.join(bed.dir, "state");
  outDir = path.join(bed.dir, "out");
  mkdirSync(stateDir, { recursive: true });
  if (isRoot) {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", stateDir]);
    mkdirSync(path.join(stateDir, "spool"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", path.join(stateDir, "spool")]);
  }
  configFile = bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: "1s",
    queues: [{ ...QUEUE, options: { afterSpool: "seen" }, handlers: [{ type: "directory", path: outDir }] }],
  });
});

afterAll(async () => {
  if (isRoot) {
    execFileSync("umount", ["-l", path.join(stateDir, "spool")]);
    execFileSync("umount", ["-l", stateDir]);
  }
  await bed?.close();
});

const delivered = () => deliveredIds(outDir, QUEUE.name).length;
const seenOnServer = async () =>
  (await bed.dovecot.doveadm(["-f", "tab", "fetch", "-u", QUEUE.address, "flags", "mailbox", "INBOX"])).split("\n").filter((l) => l.includes("\\Seen")).length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("storage faults", () => {
  it.runIf(isRoot)("stops fetching without touching the server while the spool is full or read-only, then resumes", async () => {
    const mail = sampleMessages(12, { seed: "disk", to: QUEUE.address });
    const daemon = new DaemonProcess(configFile);
    daemon.start();
    try {
      await bed.dovecot.deliver(QUEUE.address, mail[0]!.raw);
      await daemon.waitFor("the first message", () => delivered() === 1);

      // Full: a filler takes every free byte.
      const filler = path.join(stateDir, "filler");
      try {
        writeFileSync(filler, Buffer.alloc(16 * 1024 * 1024));
      } catch {
        // ENOSPC: the filesystem is now full, as intended.
      }
      for (const m of mail.slice(1, 6)) await bed.dovecot.deliver(QUEUE.address, m.raw);
      await daemon.waitFor("the storage failure to be reported", () => daemon.lines.some((l) => l.code === "SPOOL_WRITE_FAILED"));
      await sleep(2_000);
      expect(delivered()).toBe(1);
      expect(await seenOnServer()).toBe(1);
      rmSync(filler);
      const fullStarted = Date.now(); // recovery is timed from when the space returns
      await daemon.waitFor("recovery after space returns", async () => delivered() === 6 && (await seenOnServer()) === 6, 60_000);
      const fullRecoveryMs = Date.now() - fullStarted;

      // Read-only spool directory.
      execFileSync("mount", ["-o", "remount,ro", path.join(stateDir, "spool")]);
      for (const m of mail.slice(6)) await bed.dovecot.deliver(QUEUE.address, m.raw);
      await sleep(3_000);
      expect(delivered()).toBe(6);
      expect(await seenOnServer()).toBe(6);
      execFileSync("mount", ["-o", "remount,rw", path.join(stateDir, "spool")]);
      const roStarted = Date.now();
      await daemon.waitFor("recovery after read-only", async () => delivered() === 12 && (await seenOnServer()) === 12, 60_000);
      const roRecoveryMs = Date.now() - roStarted;

      recordFigures("storage", [
        {
          fault: "state directory full (SQLite on a full tmpfs)",
          runs: 1,
          messages: 5,
          lost: 0,
          duplicated: 0,
          recovered: true,
          secondsToRecover: fullRecoveryMs / 1000,
        },
        {
          fault: "spool directory read-only (tmpfs remounted ro)",
          runs: 1,
          messages: 6,
          lost: 0,
          duplicated: 0,
          recovered: true,
          secondsToRecover: roRecoveryMs / 1000,
        },
      ]);
    } finally {
      await daemon.stop();
    }
    const ids = daemon.lines.filter((l) => l.msg === "delivered").map((l) => l.messageId);
    expect(new Set(ids).size).toBe(12);
  });
});
