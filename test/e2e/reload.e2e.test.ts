/**
 * SIGHUP reloads the config: a queue added starts fetching, a queue removed stops, the others
 * go on without a restart, and a config that does not validate is refused while the daemon
 * keeps running on the old one.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

const A = { name: "first", address: "first@example.test", password: "first-password-1" };
const B = { name: "second", address: "second@example.test", password: "second-password-1" };
let bed: TestBed;
let outDir: string;
let stateDir: string;

beforeAll(async () => {
  bed = await startTestBed();
  for (const q of [A, B]) bed.identity.addUser({ username: q.address, password: q.password });
  outDir = path.join(bed.dir, "out");
  stateDir = path.join(bed.dir, "state");
});

afterAll(async () => {
  await bed?.close();
});

const writeConfig = (queues: Array<typeof A>) =>
  bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: "1s",
    queues: queues.map((q) => ({ ...q, options: { idle: false }, handlers: [{ type: "directory", path: outDir }] })),
  });
const delivered = (queue: string) => deliveredIds(outDir, queue).length;

describe("reload on SIGHUP", () => {
  it("adds and removes queues without a restart and refuses an invalid config", async () => {
    const mailA = sampleMessages(6, { seed: "reload-a", to: A.address });
    const mailB = sampleMessages(4, { seed: "reload-b", to: B.address });
    const configFile = writeConfig([A]);
    const daemon = new DaemonProcess(configFile);
    daemon.start();
    try {
      await bed.dovecot.deliver(A.address, mailA[0]!.raw);
      await daemon.waitFor("first's mail", () => delivered("first") === 1);

      // Add a queue.
      writeConfig([A, B]);
      await bed.dovecot.deliver(B.address, mailB[0]!.raw);
      daemon.signal("SIGHUP");
      await daemon.waitFor("the reload", () => daemon.lines.some((l) => l.msg === "config reloaded"));
      await daemon.waitFor("second's mail after the reload", () => delivered("second") === 1);
      await bed.dovecot.deliver(A.address, mailA[1]!.raw);
      await daemon.waitFor("first going on", () => delivered("first") === 2);

      // A config that does not validate: refused, the daemon goes on.
      const valid = readFileSync(configFile, "utf8");
      writeFileSync(configFile, valid.replace("queues:", "queues: 12\nbroken:"));
      daemon.signal("SIGHUP");
      await daemon.waitFor("the refusal", () => daemon.lines.some((l) => /config not reloaded/.test(l.msg)));
      await bed.dovecot.deliver(B.address, mailB[1]!.raw);
      await daemon.waitFor("second still fetched", () => delivered("second") === 2);

      // Remove a queue: its mail waits on the server.
      writeConfig([B]);
      daemon.signal("SIGHUP");
      await daemon.waitFor("the second reload", () => daemon.lines.filter((l) => l.msg === "config reloaded").length === 2);
      await bed.dovecot.deliver(A.address, mailA[2]!.raw);
      await bed.dovecot.deliver(B.address, mailB[2]!.raw);
      await daemon.waitFor("second's third message", () => delivered("second") === 3);
      await new Promise((resolve) => setTimeout(resolve, 2_500)); // several polls
      expect(delivered("first")).toBe(2);
    } finally {
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    }
    const reloads = daemon.lines.filter((l) => l.msg === "config reloaded");
    expect(reloads[0]).toMatchObject({ added: ["second"], removed: [] });
    expect(reloads[1]).toMatchObject({ added: [], removed: ["first"] });

    // Put back, the removed queue picks up where it stopped: its state was kept.
    writeConfig([A, B]);
    const again = new DaemonProcess(configFile);
    again.start();
    await again.waitFor("first's waiting mail", () => delivered("first") === 3);
    expect(await again.stop()).toEqual({ code: 0, signal: null });
    expect(again.lines.filter((l) => l.msg === "delivered" && l.queue === "first").length).toBe(1);
  });
});
