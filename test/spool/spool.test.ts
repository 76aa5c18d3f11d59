import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Spool } from "../../src/spool/spool.js";
import { SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import { openStateDatabase, type StateDatabase } from "../../src/store/sqlite/database.js";
import { openTempSpool } from "../../tools/testbed/helpers/temp-spool.js";
import { acceptImap, imapCursor, uidOf } from "../../tools/testbed/helpers/imap-messages.js";

const queue = { name: "support", address: "support@contoso.com" };
const raw = (n: number) => Buffer.from(`Message-ID: <m${n}@example.com>\r\nFrom: a@example.com\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);
const fetched = (n: number, uidValidity = "7") => ({ folder: "INBOX", uidValidity, uid: n, size: raw(n).length, raw: raw(n) });

let db: StateDatabase | undefined;
afterEach(() => db?.close());

function open() {
  const opened = openTempSpool();
  db = opened.db;
  return opened;
}

describe("spool (real SQLite file)", () => {
  it("keeps one commit in flight on a store that answers slowly, so a later group never lands before an earlier one", async () => {
    const { dir, store } = open();
    // The real SQLite store, with every commit made to wait (a remote store's round trip); the first waits longest.
    const committed: string[][] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    let calls = 0;
    const slow = Object.create(store.messages) as typeof store.messages;
    slow.commit = async (entries) => {
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, calls++ === 0 ? 60 : 1));
      try {
        committed.push(entries.map((e) => (e.type === "message" ? e.location.item : `cursor ${e.position}`)));
        return await store.messages.commit(entries);
      } finally {
        inFlight--;
      }
    };
    const spool = new Spool({ ...store, messages: slow }, dir);
    const first = acceptImap(spool, queue, { handlers: ["a"] }, fetched(1));
    // The second accept arrives while the first group's commit is under way.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = acceptImap(spool, queue, { handlers: ["a"] }, fetched(2));
    await Promise.all([first, second]);
    expect(mostInFlight).toBe(1);
    expect(committed).toEqual([["7:1"], ["7:2"]]);
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 2 });
  });

  it("makes a message durable with a pending delivery per handler and advances the cursor in the same step", async () => {
    const { dir, spool } = open();
    const result = await acceptImap(spool, queue, { handlers: ["a", "b"] }, fetched(5));
    expect(result.isNew).toBe(true);
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 5 });
    expect(await spool.backlog("support")).toBe(2);
    const file = path.join(dir, "spool", "support", `${result.key}.eml`);
    expect(readFileSync(file)).toEqual(raw(5));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, "state.sqlite")).mode & 0o777).toBe(0o600);
    const due = await spool.dueDeliveries("support", Date.now(), 10);
    expect(due.map((d) => [d.spoolKey, d.stableId, d.handler, uidOf(d)])).toEqual([
      [result.key, undefined, "a", 5],
      [result.key, undefined, "b", 5],
    ]);
  });

  it("decides 'already spooled' by the source location: a re-fetch of one adds nothing", async () => {
    const { spool } = open();
    const first = await acceptImap(spool, queue, { handlers: ["a"] }, fetched(1));
    const again = await acceptImap(spool, queue, { handlers: ["a"] }, fetched(1));
    expect(again).toEqual({ key: first.key, isNew: false });
    expect(await spool.backlog("support")).toBe(1);
  });

  it("spools two different messages that share Message-ID, Date and From, each with its own server action", async () => {
    const { dir, spool } = open();
    const shared = "Message-ID: <same@example.com>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nFrom: form@example.com\r\n";
    const one = Buffer.from(`${shared}Subject: order 1\r\n\r\nfirst\r\n`);
    const two = Buffer.from(`${shared}Subject: order 2\r\n\r\nsecond\r\n`);
    const action = { handlers: ["a"], serverAction: { action: "delete" as const } };
    const a = await acceptImap(spool, queue, action, { folder: "INBOX", uidValidity: "7", uid: 1, size: one.length, raw: one });
    const b = await acceptImap(spool, queue, action, { folder: "INBOX", uidValidity: "7", uid: 2, size: two.length, raw: two });
    expect([a.isNew, b.isNew]).toEqual([true, true]);
    expect(a.key).not.toBe(b.key);
    expect(readFileSync(path.join(dir, "spool", "support", `${b.key}.eml`))).toEqual(two);
    expect(await spool.backlog("support")).toBe(2);
    expect((await spool.pendingServerActions("support", "imap", "INBOX")).map((s) => uidOf(s))).toEqual([1, 2]);
  });

  it("gives a stable id once, and recognises a copy served again (same content) as a repeat of the earlier one", async () => {
    const { spool } = open();
    await acceptImap(spool, queue, { handlers: ["a"] }, fetched(1));
    // The same message after a UIDVALIDITY change, and another message.
    await acceptImap(spool, queue, { handlers: ["a"] }, { ...fetched(1, "8"), uid: 40 });
    await acceptImap(spool, queue, { handlers: ["a"] }, { ...fetched(2, "8"), uid: 41 });
    const [first, copy, other] = await spool.dueDeliveries("support", Date.now(), 10);
    expect(await spool.assignStableId("support", first!, "m-content-1")).toEqual({ stableId: "m-content-1" });
    // Once given, an id never changes.
    expect(await spool.assignStableId("support", first!, "m-something-else")).toEqual({ stableId: "m-content-1" });
    expect(await spool.assignStableId("support", copy!, "m-content-1")).toEqual({ stableId: "m-content-1", repeatOf: first!.seq });
    expect(await spool.assignStableId("support", other!, "m-content-2")).toEqual({ stableId: "m-content-2" });
    expect((await spool.dueDeliveries("support", Date.now(), 10)).map((d) => [uidOf(d), d.stableId])).toEqual([
      [1, "m-content-1"],
      [41, "m-content-2"],
    ]);
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "8", lastUid: 41 });
  });

  it("of two copies parsed side by side, the one given its id first is delivered, whatever their spool order", async () => {
    const { spool } = open();
    await acceptImap(spool, queue, { handlers: ["a"] }, fetched(1));
    await acceptImap(spool, queue, { handlers: ["a"] }, { ...fetched(2), uid: 2 });
    const [first, second] = await spool.dueDeliveries("support", Date.now(), 10);
    expect(await spool.assignStableId("support", second!, "m-same")).toEqual({ stableId: "m-same" });
    expect(await spool.assignStableId("support", { ...first!, contentSha256: "other-bytes" }, "m-same")).toEqual({ stableId: "m-same", repeatOf: second!.seq });
    expect(await spool.backlog("support")).toBe(1);
  });

  it("a copy of exactly the bytes of a message spooled earlier takes that message's id, whatever its content id", async () => {
    const { spool } = open();
    await acceptImap(spool, queue, { handlers: ["a"] }, fetched(1));
    await acceptImap(spool, queue, { handlers: ["a"] }, { ...fetched(1), uid: 2 });
    const [first, copy] = await spool.dueDeliveries("support", Date.now(), 10);
    await spool.assignStableId("support", first!, "m-id-from-before");
    expect(await spool.assignStableId("support", copy!, "m-new-scheme")).toEqual({ stableId: "m-id-from-before", repeatOf: first!.seq });
  });

  it("schedules retries and parks dead letters", async () => {
    const { spool } = open();
    await acceptImap(spool, queue, { handlers: ["a", "b"] }, fetched(1));
    const [a, b] = await spool.dueDeliveries("support", Date.now(), 10);
    await spool.markRetry(a!.seq, "a", "down", Date.now() + 60_000);
    await spool.markDead(b!.seq, "b", "rejected");
    expect(await spool.dueDeliveries("support", Date.now(), 10)).toEqual([]);
    expect(await spool.nextDueAt("support")).toBeGreaterThan(Date.now());
    expect(await spool.backlog("support")).toBe(1);
    expect((await spool.dueDeliveries("support", Date.now() + 120_000, 10))[0]).toMatchObject({ handler: "a", attempts: 1 });
  });

  it("gives every queue's backlog, dead letters and spool bytes in one go, as the per-queue questions do", async () => {
    const { spool } = open();
    const sales = { name: "sales", address: "sales@contoso.com" };
    await acceptImap(spool, queue, { handlers: ["a", "b"] }, fetched(1));
    await acceptImap(spool, queue, { handlers: ["a"] }, fetched(2));
    await acceptImap(spool, sales, { handlers: ["a"] }, fetched(3));
    const [first] = await spool.dueDeliveries("support", Date.now(), 10);
    await spool.markDead(first!.seq, first!.handler, "rejected");
    const totals = await spool.queueTotals();
    for (const name of ["support", "sales"]) {
      expect(totals.get(name)).toEqual({
        backlog: await spool.backlog(name),
        deadLetters: await spool.deadLetterCount(name),
        spoolBytes: await spool.diskUsage(name),
      });
    }
    expect(totals.get("support")).toEqual({ backlog: 2, deadLetters: 1, spoolBytes: raw(1).length + raw(2).length });
    expect(totals.has("nobody")).toBe(false);
  });

  it("survives reopening: state is on disk", async () => {
    const { dir, spool } = open();
    const { key } = await acceptImap(spool, queue, { handlers: ["a"] }, fetched(3));
    db!.close();
    db = openStateDatabase(dir);
    const reopened = new Spool(new SqliteStateStore(db, dir), dir);
    expect(await imapCursor(reopened, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 3 });
    expect((await reopened.readRaw("support", key)).toString()).toContain("body 3");
    expect(existsSync(path.join(dir, "spool", "support"))).toBe(true);
  });
});
