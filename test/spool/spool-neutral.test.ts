/**
 * The spool knows sources only by kind, folder, item id and an opaque cursor: a source that is
 * not IMAP (Graph's immutable ids and deltaLinks, here) spools, repeats, owes actions and
 * commits its cursor after a round's messages, never before one that failed.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { StreamedMessage } from "../../src/interfaces.js";
import type { MessageLocation } from "../../src/source/message-location.js";
import type { StateDatabase } from "../../src/store/sqlite/database.js";
import { openTempSpool } from "../../tools/testbed/helpers/temp-spool.js";

let db: StateDatabase | undefined;
afterEach(() => db?.close());

const queue = { name: "support", address: "support@contoso.com" };
const raw = (n: number) => Buffer.from(`Message-ID: <graph-${n}@example.test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);
const at = (item: string): MessageLocation => ({ kind: "graph", folder: "inbox", item });
const DELTA_1 = "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=one";
const DELTA_2 = "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=two";

async function* failing(): AsyncIterable<Buffer> {
  yield Buffer.from("Subject: cut\r\n");
  throw new Error("connection reset");
}

describe("spool with a source other than IMAP", () => {
  it("spools by item id, recognises a repeat, owes actions by item and commits the cursor after the round", async () => {
    const fx = openTempSpool();
    db = fx.db;
    const { spool } = fx;
    const options = { handlers: ["a"], serverAction: { action: "seen" as const } };
    const accepted = await Promise.all([
      spool.accept(queue, options, { location: at("AAMk-1"), size: raw(1).length, raw: raw(1) }),
      spool.accept(queue, options, { location: at("AAMk-2"), size: raw(2).length, raw: raw(2) }),
    ]);
    expect(accepted.map((r) => r.isNew)).toEqual([true, true]);
    // Messages without a cursor leave it alone; the round's deltaLink is committed after them.
    expect(await spool.cursor("support", "graph", "inbox")).toBeUndefined();
    await spool.advanceCursor("support", "graph", "inbox", DELTA_1);
    expect(await spool.cursor("support", "graph", "inbox")).toBe(DELTA_1);
    // Cursors are per source kind: an IMAP cursor of the same folder name is another one.
    expect(await spool.cursor("support", "imap", "inbox")).toBeUndefined();

    expect((await spool.accept(queue, options, { location: at("AAMk-1"), size: raw(1).length, raw: raw(1) })).isNew).toBe(false);
    expect((await spool.dueDeliveries("support", Date.now(), 10)).map((d) => d.location)).toEqual([at("AAMk-1"), at("AAMk-2")]);
    expect(await spool.pendingServerActions("support", "graph", "inbox")).toEqual([
      { item: "AAMk-1", action: "seen", target: undefined },
      { item: "AAMk-2", action: "seen", target: undefined },
    ]);
    expect(await spool.serverActionsDone("support", "graph", "inbox", ["AAMk-1"])).toBe(1);
    expect((await spool.pendingServerActions("support", "graph", "inbox")).map((a) => a.item)).toEqual(["AAMk-2"]);
    expect(await spool.deadLetters("support")).toEqual([]);
  });

  it("does not commit a cursor behind a message that failed to spool", async () => {
    const fx = openTempSpool();
    db = fx.db;
    const { spool } = fx;
    await spool.advanceCursor("support", "graph", "inbox", DELTA_1);
    const broken: StreamedMessage = { location: at("AAMk-3"), size: 100, content: failing() };
    const outcomes = await Promise.allSettled([spool.accept(queue, { handlers: ["a"] }, broken), spool.advanceCursor("support", "graph", "inbox", DELTA_2)]);
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    expect(await spool.cursor("support", "graph", "inbox")).toBe(DELTA_1);
    expect(await spool.backlog("support")).toBe(0);
  });
});
