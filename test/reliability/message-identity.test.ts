/**
 * A different message is never taken for a repeat, and a repeat keeps its id (real Dovecot,
 * the daemon as a process, the directory handler).
 *
 * Seven messages share Message-ID, Date and From (a web form does this) and differ in one
 * thing a person reads: all seven are delivered, each under its own id, and with
 * `afterSpool: delete` each is gone from the mailbox only because it was spooled. The same
 * content served again (another MIME rendering, the same message twice in the mailbox, the
 * whole folder after a UIDVALIDITY change) is recognised as a repeat: not delivered again, and
 * its spool row carries the id of the copy that was.
 */
import Database from "better-sqlite3";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseContent, render, variants, type MessageContent } from "../../tools/testbed/message-renderings.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";
import { recordFigures } from "./figures.js";

let bed: TestBed;
let outDir: string;
let configFile: string;
let stateDir: string;

const Q = {
  forms: { name: "forms", address: "forms@example.test", options: { afterSpool: "delete" } },
  resync: { name: "resync", address: "resync@example.test", folder: "Queue" },
};

beforeAll(async () => {
  bed = await startTestBed();
  outDir = path.join(bed.dir, "out");
  stateDir = path.join(bed.dir, "state");
  for (const q of Object.values(Q)) bed.identity.addUser({ username: q.address, password: `${q.name}-password-1` });
  await bed.dovecot.createFolder(Q.resync.address, "Queue");
  configFile = bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: "1s",
    queues: Object.values(Q).map((q) => ({ ...q, password: `${q.name}-password-1`, handlers: [{ type: "directory", path: outDir }] })),
  });
});

afterAll(async () => {
  await bed?.close();
});

/** The base message and its six variants. */
function family(address: string): Array<[string, MessageContent]> {
  const base = baseContent(address, address);
  return [["base", base], ...Object.entries(variants(base))];
}

/** Stable id per spool row of a queue, in spool order. */
function spooledIds(queue: string): string[] {
  const db = new Database(path.join(stateDir, "state.sqlite"), { readonly: true });
  try {
    return (db.prepare("SELECT stable_id FROM messages WHERE queue = ? ORDER BY seq").all(queue) as Array<{ stable_id: string | null }>).map(
      (r) => r.stable_id ?? "",
    );
  } finally {
    db.close();
  }
}

describe("distinct messages that share headers, and repeats", () => {
  it("delivers every distinct message under its own id and recognises every repeat by its content", { timeout: 240_000 }, async () => {
    const forms = family(Q.forms.address);
    for (const [, content] of forms) await bed.dovecot.deliver(Q.forms.address, render(content, "a"));
    const resync = family(Q.resync.address);
    for (const [, content] of resync) await bed.dovecot.deliver(Q.resync.address, render(content, "a"), "Queue");

    const daemon = new DaemonProcess(configFile);
    daemon.start();
    try {
      await daemon.waitFor(
        "all fourteen delivered, the deleted ones gone",
        async () =>
          deliveredIds(outDir, "forms").length === 7 && deliveredIds(outDir, "resync").length === 7 && (await bed.dovecot.countMessages(Q.forms.address)) === 0,
      );
      const firstIds = spooledIds("forms");
      expect(new Set(firstIds).size, "seven distinct ids").toBe(7);
      expect(deliveredIds(outDir, "forms").sort()).toEqual([...firstIds].sort());

      // The base message re-rendered, and the "to" variant a second time, byte for byte (a
      // customer who wrote to two addresses that both land here).
      const [, base] = forms[0]!;
      const [, secondCopy] = forms.find(([name]) => name === "to")!;
      await bed.dovecot.deliver(Q.forms.address, render(base, "b"));
      await bed.dovecot.deliver(Q.forms.address, render(secondCopy, "a"));
      const repeats = (queue: string) =>
        daemon.lines.filter((l) => l.queue === queue && l.msg === "same content as a message already in the spool; not delivered again").length;
      await daemon.waitFor("both copies recognised", async () => repeats("forms") === 2 && (await bed.dovecot.countMessages(Q.forms.address)) === 0);
      const ids = spooledIds("forms");
      expect(ids.length).toBe(9);
      expect(ids[7], "the re-rendering keeps the id").toBe(ids[0]);
      expect(ids[8], "the second copy keeps the id").toBe(ids[forms.findIndex(([name]) => name === "to")]);

      // UIDVALIDITY change: the folder comes back with every message rendered the other way.
      await bed.dovecot.deleteFolder(Q.resync.address, "Queue");
      await bed.dovecot.createFolder(Q.resync.address, "Queue");
      for (const [, content] of resync) await bed.dovecot.deliver(Q.resync.address, render(content, "b"), "Queue");
      await daemon.waitFor("the re-served folder recognised", () => repeats("resync") === 7);
      const resyncIds = spooledIds("resync");
      expect(resyncIds.slice(7)).toEqual(resyncIds.slice(0, 7));

      await new Promise((resolve) => setTimeout(resolve, 2_500)); // more polls: nothing more may come
      expect(deliveredIds(outDir, "forms").length).toBe(7);
      expect(deliveredIds(outDir, "resync").length).toBe(7);
      const delivered = daemon.lines.filter((l) => l.msg === "delivered").map((l) => `${l.queue}/${l.messageId}`);
      expect(new Set(delivered).size, "every delivery once").toBe(delivered.length);
      expect(delivered.length).toBe(14);

      const lostOf = (queue: string, ids: string[]) => ids.filter((id) => !deliveredIds(outDir, queue).includes(id)).length;
      recordFigures("message-identity", [
        {
          case: "different messages sharing Message-ID, Date and From (one differs in subject, body, attachment, To, Cc, Reply-To), afterSpool: delete",
          messages: 7,
          delivered: 7,
          lost: lostOf("forms", firstIds),
          distinctIds: new Set(firstIds).size,
          repeatsRecognised: 0,
        },
        {
          case: "the same message re-rendered (boundaries, transfer encodings, charset, folding)",
          messages: 1,
          delivered: 0,
          lost: lostOf("forms", [ids[7]!]),
          distinctIds: 0,
          repeatsRecognised: 1,
        },
        {
          case: "the same message twice in the mailbox, byte for byte",
          messages: 1,
          delivered: 0,
          lost: lostOf("forms", [ids[8]!]),
          distinctIds: 0,
          repeatsRecognised: 1,
        },
        {
          case: "UIDVALIDITY change, the folder served again re-rendered",
          messages: 7,
          delivered: 0,
          lost: lostOf("resync", resyncIds.slice(7)),
          distinctIds: 0,
          repeatsRecognised: repeats("resync"),
        },
      ]);
    } finally {
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    }
  });
});
