/**
 * The daemon, polling every second with IDLE on: while the IDLE session is up, polls ask it
 * (one STATUS) instead of logging in again, and mail still arrives. Logins are counted in
 * Dovecot's log; the in-process cases (mail IDLE signalled but nobody fetched, the session
 * down) are in test/queue/poller-probe.test.ts.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import type { TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";
import { startOneQueueBed } from "../../tools/testbed/helpers/one-queue-bed.js";

const QUEUE = { name: "desk", address: "desk@example.test", password: "desk-password-1" };
let bed: TestBed;
let configFile: string;
let outDir: string;

beforeAll(async () => {
  ({ bed, configFile, outDir } = await startOneQueueBed(QUEUE, { poll: "1s", options: { idle: true } }));
});

afterAll(async () => {
  await bed?.close();
});

function logins(): number {
  return readFileSync(bed.dovecot.logFile, "utf8").split(`Login: user=<${QUEUE.address}>`).length - 1;
}

describe("polls while the IDLE session is up", () => {
  it("log in no more while nothing changes, and new mail still arrives", async () => {
    const daemon = new DaemonProcess(configFile);
    const answeredByIdle = () => daemon.lines.filter((l) => l.msg === "poll: nothing new (asked the IDLE session)").length;
    daemon.start();
    try {
      await daemon.waitFor("a poll answered by the IDLE session", () => answeredByIdle() >= 1, 30_000);
      const before = logins();
      const answered = answeredByIdle();
      await daemon.waitFor("five more polls answered by the IDLE session", () => answeredByIdle() >= answered + 5, 30_000);
      // A poll of its own would be a login each (five). One safety-net cycle may fall due meanwhile:
      // the first comes at a random point of the daemon's first 30 minutes.
      expect(logins() - before).toBeLessThanOrEqual(1);

      const [message] = sampleMessages(1, { seed: "idle-probe", to: QUEUE.address });
      await bed.dovecot.deliver(QUEUE.address, message!.raw);
      await daemon.waitFor("the new message delivered", () => deliveredIds(outDir, QUEUE.name).length === 1, 20_000);
    } finally {
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    }
  });
});
