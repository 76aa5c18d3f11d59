import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { SpoolRetention } from "../../src/spool/retention.js";
import { Spool } from "../../src/spool/spool.js";
import { SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import { openStateDatabase, type StateDatabase } from "../../src/store/sqlite/database.js";
import { acceptImap, uidValidityOf } from "./imap-messages.js";

const DAY = 86_400_000;
const queue = { name: "support", address: "support@contoso.com" };
const message = (n: number) => {
  const raw = Buffer.from(`Message-ID: <r${n}@example.com>\r\nFrom: a@example.com\r\n\r\nbody ${n}\r\n`);
  return { folder: "INBOX", uidValidity: "1", uid: n, size: raw.length, raw };
};

let db: StateDatabase | undefined;
afterEach(() => db?.close());

describe("spool retention (real SQLite file and spool files)", () => {
  it("prunes only fully delivered messages, keeps their rows as tombstones, then forgets them", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-retention-"));
    db = openStateDatabase(dir);
    const spool = new Spool(new SqliteStateStore(db, dir), dir);
    const ids = [];
    for (const n of [1, 2, 3, 4]) ids.push((await acceptImap(spool, queue, { handlers: ["a", "b"] }, message(n))).key);
    const due = await spool.dueDeliveries("support", Date.now(), 100);
    const of = (key: string) => due.filter((d) => d.spoolKey === key);
    for (const [index, key] of ids.entries()) await spool.assignStableId("support", of(key)[0]!, `m-content-${index + 1}`);
    for (const d of of(ids[0]!)) await spool.markDelivered(d.seq, d.handler); // 1: delivered to both
    await spool.markDelivered(of(ids[1]!)[0]!.seq, "a"); // 2: b still pending
    await spool.markDelivered(of(ids[2]!)[0]!.seq, "a");
    await spool.markDead(of(ids[2]!)[1]!.seq, "b", "rejected"); // 3: a dead letter
    for (const d of of(ids[3]!)) await spool.markDelivered(d.seq, d.handler); // 4: delivered to both
    const file = (id: string) => path.join(dir, "spool", "support", `${id}.eml`);
    const usageBefore = await spool.diskUsage("support");

    const retention = new SpoolRetention(spool, { keepDeliveredMs: 7 * DAY, forgetAfterMs: 180 * DAY, schedule: "0 3 * * *" }, pino({ level: "silent" }));
    expect(await retention.runOnce(Date.now() + DAY)).toEqual({ pruned: 0, forgotten: 0 });
    expect(await retention.runOnce(Date.now() + 8 * DAY)).toEqual({ pruned: 2, forgotten: 0 });
    expect(existsSync(file(ids[0]!))).toBe(false);
    expect(existsSync(file(ids[3]!))).toBe(false);
    expect(existsSync(file(ids[1]!))).toBe(true);
    expect(existsSync(file(ids[2]!))).toBe(true);
    expect(await spool.diskUsage("support")).toBe(usageBefore - message(1).size - message(4).size);
    // The tombstone still recognises a copy served again (e.g. after a UIDVALIDITY change):
    // spooled at its new location, it is a repeat of the pruned message once it has its id.
    expect((await acceptImap(spool, queue, { handlers: ["a", "b"] }, { ...message(1), uidValidity: "2" })).isNew).toBe(true);
    const copy = (await spool.dueDeliveries("support", Date.now(), 100)).find((d) => uidValidityOf(d) === "2")!;
    expect(await spool.assignStableId("support", copy, "m-content-1")).toEqual({ stableId: "m-content-1", repeatOf: of(ids[0]!)[0]!.seq });

    // The repeat's deliveries are done: its file goes and its row with the others.
    expect(await retention.runOnce(Date.now() + 181 * DAY)).toEqual({ pruned: 1, forgotten: 3 });
    expect((await spool.deadLetters("support")).map((l) => l.id)).toEqual(["m-content-3"]);
    expect(await spool.backlog("support")).toBe(1);
  });
});
