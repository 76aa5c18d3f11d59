/**
 * IDLE: with polling set to once an hour, only the IDLE session can bring new mail in. The
 * IMAP server is killed and restarted mid-IDLE: the session is replaced and mail flows again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import type { TestBed } from "../../tools/testbed/test-bed.js";
import { startOneQueueBed } from "../../tools/testbed/helpers/one-queue-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

const QUEUE = { name: "live", address: "live@example.test", password: "live-password-1" };
let bed: TestBed;
let configFile: string;
let outDir: string;

beforeAll(async () => {
  ({ bed, configFile, outDir } = await startOneQueueBed(QUEUE, { poll: "1h", options: { idle: true } }));
});

afterAll(async () => {
  await bed?.close();
});

const delivered = () => deliveredIds(outDir, QUEUE.name).length;

describe("IDLE", () => {
  it("delivers new mail without waiting for the poll, and survives the server restarting mid-IDLE", async () => {
    const mail = sampleMessages(6, { seed: "idle", to: QUEUE.address });
    const daemon = new DaemonProcess(configFile);
    daemon.start();
    try {
      await daemon.waitFor("the IDLE session", () => daemon.lines.some((l) => l.msg === "IDLE session open"));
      for (const [index, message] of mail.slice(0, 3).entries()) {
        await bed.dovecot.deliver(QUEUE.address, message.raw);
        await daemon.waitFor(`message ${index + 1} through IDLE`, () => delivered() === index + 1, 20_000);
      }

      const sessionsBefore = daemon.lines.filter((l) => l.msg === "IDLE session open").length;
      await bed.dovecot.stop();
      await bed.dovecot.start();
      await daemon.waitFor("a new IDLE session", () => daemon.lines.filter((l) => l.msg === "IDLE session open").length > sessionsBefore, 30_000);
      for (const message of mail.slice(3)) await bed.dovecot.deliver(QUEUE.address, message.raw);
      await daemon.waitFor("the mail sent after the restart", () => delivered() === 6, 20_000);
    } finally {
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    }
    const ids = daemon.lines.filter((l) => l.msg === "delivered").map((l) => l.messageId);
    expect(ids.length).toBe(6);
    expect(new Set(ids).size).toBe(6);
  });
});
