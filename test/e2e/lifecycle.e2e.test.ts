/**
 * Lifecycle: SIGTERM in the middle of a busy drain loses nothing; a second signal forces the
 * stop and the exit status says so.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import type { TestBed } from "../../tools/testbed/test-bed.js";
import { startOneQueueBed } from "../../tools/testbed/helpers/one-queue-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

const QUEUE = { name: "busy", address: "busy@example.test", password: "busy-password-1" };
const COUNT = 200;
let bed: TestBed;
let configFile: string;
let outDir: string;

beforeAll(async () => {
  ({ bed, configFile, outDir } = await startOneQueueBed(QUEUE, {
    poll: "1s",
    moreHandlers: (started) => [{ type: "directory", name: "copy", path: path.join(started.dir, "copy") }],
  }));
  for (const message of sampleMessages(COUNT, { seed: "busy", to: QUEUE.address })) await bed.dovecot.deliver(QUEUE.address, message.raw);
});

afterAll(async () => {
  await bed?.close();
});

const delivered = (dir: string) => deliveredIds(dir, QUEUE.name).length;

describe("lifecycle", () => {
  it("loses nothing when stopped with SIGTERM during a busy drain, and forces on a second signal", async () => {
    const first = new DaemonProcess(configFile);
    first.start();
    await first.waitFor("the drain to be under way", () => delivered(outDir) >= 10);
    expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    const afterFirst = delivered(outDir);
    expect(afterFirst).toBeLessThan(COUNT); // it really was stopped mid-drain

    // Two signals in a row: the second forces, and the exit status is the signal's.
    const second = new DaemonProcess(configFile);
    second.start();
    await second.waitFor("the second run to deliver", () => delivered(outDir) > afterFirst);
    const forced = second.stop("SIGTERM");
    second.signal("SIGTERM");
    const status = await forced;
    expect(status.code === 0 || status.signal === "SIGTERM").toBe(true);

    const third = new DaemonProcess(configFile);
    third.start();
    await third.waitFor("everything", () => delivered(outDir) === COUNT && delivered(path.join(bed.dir, "copy")) === COUNT);
    expect(await third.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    // At least once to each handler. Repeats come only from the forced stop: the deliveries in
    // flight then (4 at a time) and those done but not yet recorded (recorded 32 at a time).
    const lines = [first, second, third].flatMap((d) => d.lines).filter((l) => l.msg === "delivered");
    for (const handler of ["directory", "copy"]) {
      const ids = lines.filter((l) => l.handler === handler).map((l) => l.messageId);
      expect(new Set(ids).size).toBe(COUNT);
      expect(ids.length - COUNT).toBeLessThanOrEqual(4 + 32);
    }
  });
});
