/**
 * Mailbox behaviour against a real Dovecot: each server-side action taken only after the
 * message is spooled, the size cap, a UIDVALIDITY change, dead letters through the CLI.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { CLI, DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

let bed: TestBed;
let outDir: string;
let configFile: string;

const Q = {
  seen: { name: "seen", address: "seen@example.test", options: { afterSpool: "seen" } },
  move: { name: "move", address: "move@example.test", options: { afterSpool: "move", moveTo: "Processed" } },
  del: { name: "del", address: "del@example.test", options: { afterSpool: "delete" } },
  small: { name: "small", address: "small@example.test", options: { maxMessageSize: "3KB" } },
  resync: { name: "resync", address: "resync@example.test", folder: "Queue" },
};
const QUEUES = Object.values(Q);

beforeAll(async () => {
  bed = await startTestBed();
  outDir = path.join(bed.dir, "out");
  for (const q of QUEUES) bed.identity.addUser({ username: q.address, password: `${q.name}-password-1` });
  await bed.dovecot.createFolder(Q.move.address, "Processed");
  await bed.dovecot.createFolder(Q.resync.address, "Queue");
  configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    logLevel: "debug",
    poll: "1s",
    queues: QUEUES.map((q) => ({ ...q, password: `${q.name}-password-1`, handlers: [{ type: "directory", path: outDir }] })),
  });
});

afterAll(async () => {
  await bed?.close();
});

const delivered = (queue: string) => deliveredIds(outDir, queue);
const uidsWithFlags = async (user: string, folder = "INBOX") =>
  (await bed.dovecot.doveadm(["-f", "tab", "fetch", "-u", user, "uid flags", "mailbox", folder]))
    .trim()
    .split("\n")
    .slice(1)
    .filter(Boolean)
    .map((line) => {
      const [uid, flags] = line.split("\t");
      return { uid: Number(uid), flags: flags ?? "" };
    });
const cli = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args, "--config", configFile], { encoding: "utf8", stdio: "pipe" });

describe("mailbox behaviour", () => {
  it("takes each server-side action after spooling, caps sizes, and re-syncs after a UIDVALIDITY change", async () => {
    const mail = (q: { name: string; address: string }, n: number) => sampleMessages(n, { seed: `mb-${q.name}`, to: q.address });
    for (const q of [Q.seen, Q.move, Q.del]) for (const m of mail(q, 4)) await bed.dovecot.deliver(q.address, m.raw);
    // Small: plain text samples (~1 KB) pass, the attachment-bearing ones (> 3 KB) are too large.
    const smallMail = mail(Q.small, 5);
    const tooLarge = smallMail.filter((m) => m.raw.length > 3 * 1024);
    expect(tooLarge.length).toBeGreaterThan(0);
    expect(tooLarge.length).toBeLessThan(smallMail.length);
    for (const m of smallMail) await bed.dovecot.deliver(Q.small.address, m.raw);
    const resyncMail = mail(Q.resync, 5);
    for (const m of resyncMail.slice(0, 3)) await bed.dovecot.deliver(Q.resync.address, m.raw, "Queue");

    const daemon = new DaemonProcess(configFile);
    daemon.start();
    await daemon.waitFor(
      "actions and deliveries",
      async () =>
        delivered("seen").length === 4 &&
        delivered("move").length === 4 &&
        delivered("del").length === 4 &&
        delivered("resync").length === 3 &&
        delivered("small").length === smallMail.length - tooLarge.length &&
        (await bed.dovecot.countMessages(Q.del.address)) === 0 &&
        (await bed.dovecot.countMessages(Q.move.address, "Processed")) === 4 &&
        (await uidsWithFlags(Q.seen.address)).every((m) => m.flags.includes("\\Seen")),
    );
    expect(await bed.dovecot.countMessages(Q.move.address)).toBe(0);
    expect(await bed.dovecot.countMessages(Q.seen.address)).toBe(4);
    // keep (the default) leaves the server untouched, not even \Seen.
    expect((await uidsWithFlags(Q.small.address)).every((m) => !m.flags.includes("\\Seen"))).toBe(true);

    // UIDVALIDITY change: the folder is recreated with the old mail plus two new ones.
    await bed.dovecot.deleteFolder(Q.resync.address, "Queue");
    await bed.dovecot.createFolder(Q.resync.address, "Queue");
    for (const m of resyncMail) await bed.dovecot.deliver(Q.resync.address, m.raw, "Queue");
    await daemon.waitFor("re-sync", () => delivered("resync").length === 5);
    await daemon.waitFor("the re-sync to be logged", () => daemon.lines.some((l) => /UIDVALIDITY changed/.test(l.msg)));
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // more polls: nothing more may come
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });

    const deliveredLines = daemon.lines.filter((l) => l.msg === "delivered");
    for (const q of QUEUES) {
      const ids = deliveredLines.filter((l) => l.queue === q.name).map((l) => l.messageId);
      expect(new Set(ids).size, `${q.name}: every message delivered once`).toBe(ids.length);
    }
    expect(deliveredLines.filter((l) => l.queue === "resync").length).toBe(5);

    // Too large: parked as dead letters with their headers, alerted, never downloaded again.
    const tooLargeLogs = daemon.lines.filter((l) => l.msg.startsWith("message above maxMessageSize"));
    expect(tooLargeLogs.length).toBe(tooLarge.length);
    const letters = JSON.parse(cli("deadletters", "list", "--json")) as Array<{ id: string; queue: string; headersOnly: boolean; reason: string }>;
    expect(letters.length).toBe(tooLarge.length);
    expect(letters.every((l) => l.queue === "small" && l.headersOnly && /above the queue's maxMessageSize/.test(l.reason))).toBe(true);
    const shown = cli("deadletters", "show", letters[0]!.id);
    expect(shown).toMatch(/subject: +\S/);
    expect(shown).toContain("too large: only headers kept");
    expect(await bed.dovecot.countMessages(Q.small.address)).toBe(smallMail.length);

    // Raise the cap and retry: the message is fetched and delivered, once.
    const raised = readFileSync(configFile, "utf8").replace(/maxMessageSize: 3KB/, "maxMessageSize: 25MB");
    const raisedFile = path.join(bed.dir, "raised.yaml");
    (await import("node:fs")).writeFileSync(raisedFile, raised);
    for (const l of letters) execFileSync(process.execPath, [CLI, "deadletters", "retry", l.id, "--config", raisedFile]);
    expect(JSON.parse(execFileSync(process.execPath, [CLI, "deadletters", "list", "--json", "--config", raisedFile], { encoding: "utf8" }))).toEqual([]);
    const again = new DaemonProcess(raisedFile);
    again.start();
    await again.waitFor("the retried messages", () => delivered("small").length === smallMail.length);
    expect(await again.stop()).toEqual({ code: 0, signal: null });
    const retried = again.lines.filter((l) => l.msg === "delivered" && l.queue === "small").map((l) => l.messageId);
    expect(retried.sort()).toEqual(letters.map((l) => l.id).sort());
  });

  it("explains an unknown dead letter id and exits 1", () => {
    let status = 0;
    let stderr = "";
    try {
      cli("deadletters", "show", "m0000");
    } catch (error) {
      status = (error as { status: number }).status;
      stderr = String((error as { stderr: Buffer }).stderr);
    }
    expect(status).toBe(1);
    expect(stderr).toContain("No dead letter with id m0000");
    expect(stderr).toContain("mailfetchd deadletters list");
  });
});
