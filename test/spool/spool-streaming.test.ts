/**
 * The spool's concurrent accepts and streamed messages, on a real SQLite file and real files:
 * accepts in flight commit together and in order; one that fails takes the later ones of its
 * queue with it, so the cursor never passes a message that is not durable; a streamed message
 * gets the same stable id and the same bytes as the buffered one.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { imapLocation } from "../../src/imap/imap-location.js";
import type { StreamedMessage } from "../../src/interfaces.js";
import { spoolKey } from "../../src/spool/stable-id.js";
import type { StateDatabase } from "../../src/store/sqlite/database.js";
import { openTempSpool } from "../../tools/testbed/helpers/temp-spool.js";
import { acceptImap, imapCursor, uidOf, type Imap } from "../../tools/testbed/helpers/imap-messages.js";

const queue = { name: "support", address: "support@contoso.com" };
const raw = (n: number) => Buffer.from(`Message-ID: <m${n}@example.com>\r\nFrom: a@example.com\r\nSubject: ${n}\r\n\r\n${"body ".repeat(n * 100)}\r\n`);
const fetched = (n: number) => ({ folder: "INBOX", uidValidity: "7", uid: n, size: raw(n).length, raw: raw(n) });

async function* chunks(data: Buffer, size: number, failAfter?: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) {
    if (failAfter !== undefined && at >= failAfter) throw new Error("connection lost mid-download");
    yield data.subarray(at, at + size);
  }
}
const streamed = (n: number, failAfter?: number): Imap<StreamedMessage> => ({
  folder: "INBOX",
  uidValidity: "7",
  uid: n,
  size: raw(n).length,
  content: chunks(raw(n), 100, failAfter),
});

let db: StateDatabase | undefined;
afterEach(() => db?.close());

function open() {
  const opened = openTempSpool();
  db = opened.db;
  return opened;
}

describe("spool: accepts in flight and streamed messages", () => {
  it("commits concurrent accepts, in order, with the cursor at the last", async () => {
    const { spool } = open();
    const results = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((n) => acceptImap(spool, queue, { handlers: ["a"] }, fetched(n))));
    expect(results.every((r) => r.isNew)).toBe(true);
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 8 });
    expect((await spool.dueDeliveries("support", Date.now(), 20)).map((d) => uidOf(d))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("fails the accepts behind a failed one, and the cursor stays before it", async () => {
    const { spool } = open();
    const outcomes = await Promise.allSettled([
      acceptImap(spool, queue, { handlers: ["a"] }, fetched(1)),
      acceptImap(spool, queue, { handlers: ["a"] }, streamed(2, 300)),
      acceptImap(spool, queue, { handlers: ["a"] }, fetched(3)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    // The download's own error, not a spool error: the IMAP side reports it.
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/connection lost mid-download/);
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 1 });
    expect((await spool.dueDeliveries("support", Date.now(), 20)).map((d) => uidOf(d))).toEqual([1]);
  });

  it("records two copies of a message in flight each at its own location (their content decides a repeat later)", async () => {
    const { spool } = open();
    const [first, second] = await Promise.all([
      acceptImap(spool, queue, { handlers: ["a"] }, fetched(4)),
      acceptImap(spool, queue, { handlers: ["a"] }, { ...fetched(4), uid: 9 }),
    ]);
    expect([first!.isNew, second!.isNew]).toEqual([true, true]);
    expect(first!.key).not.toBe(second!.key);
    expect(await spool.backlog("support")).toBe(2);
    expect((await imapCursor(spool, "support", "INBOX"))?.lastUid).toBe(9);
  });

  it("spools a streamed message with the id and bytes of the buffered one, leaving no temp file", async () => {
    const { dir, spool } = open();
    const result = await acceptImap(spool, queue, { handlers: ["a"] }, streamed(30));
    expect(result).toEqual({ key: spoolKey(queue.name, imapLocation({ folder: "INBOX", uidValidity: "7", uid: 30 })), isNew: true });
    expect(readFileSync(path.join(dir, "spool", "support", `${result.key}.eml`))).toEqual(raw(30));
    expect(readdirSync(path.join(dir, "spool", "support"))).toEqual([`${result.key}.eml`]);
    const failed = await acceptImap(spool, queue, { handlers: ["a"] }, streamed(31, 500)).catch((error: Error) => error);
    expect(failed).toBeInstanceOf(Error);
    expect(readdirSync(path.join(dir, "spool", "support"))).toEqual([`${result.key}.eml`]);
  });
});
