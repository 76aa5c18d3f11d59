import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Spool } from "../../src/spool/spool.js";
import { openStateDatabase, type StateDatabase } from "../../src/state/database.js";
import { openTempSpool } from "./temp-spool.js";

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
  it("makes a message durable with a pending delivery per handler and advances the cursor in the same step", async () => {
    const { dir, spool } = open();
    const result = await spool.accept(queue, { handlers: ["a", "b"] }, fetched(5));
    expect(result.isNew).toBe(true);
    expect(spool.cursor("support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 5 });
    expect(spool.backlog("support")).toBe(2);
    const file = path.join(dir, "spool", "support", `${result.id}.eml`);
    expect(readFileSync(file)).toEqual(raw(5));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, "state.sqlite")).mode & 0o777).toBe(0o600);
    const due = spool.dueDeliveries("support", Date.now(), 10);
    expect(due.map((d) => [d.id, d.handler, d.uid])).toEqual([
      [result.id, "a", 5],
      [result.id, "b", 5],
    ]);
  });

  it("recognises a re-fetched message (same id) and adds no delivery", async () => {
    const { spool } = open();
    const first = await spool.accept(queue, { handlers: ["a"] }, fetched(1));
    spool.markDelivered(spool.dueDeliveries("support", Date.now(), 10)[0]!.seq, "a");
    const again = await spool.accept(queue, { handlers: ["a"] }, { ...fetched(1, "8"), uid: 40 });
    expect(again).toEqual({ id: first.id, isNew: false });
    expect(spool.backlog("support")).toBe(0);
    expect(spool.cursor("support", "INBOX")).toEqual({ uidValidity: "8", lastUid: 40 });
  });

  it("schedules retries and parks dead letters", async () => {
    const { spool } = open();
    await spool.accept(queue, { handlers: ["a", "b"] }, fetched(1));
    const [a, b] = spool.dueDeliveries("support", Date.now(), 10);
    spool.markRetry(a!.seq, "a", "down", Date.now() + 60_000);
    spool.markDead(b!.seq, "b", "rejected");
    expect(spool.dueDeliveries("support", Date.now(), 10)).toEqual([]);
    expect(spool.nextDueAt("support")).toBeGreaterThan(Date.now());
    expect(spool.backlog("support")).toBe(1);
    expect(spool.dueDeliveries("support", Date.now() + 120_000, 10)[0]).toMatchObject({ handler: "a", attempts: 1 });
  });

  it("survives reopening: state is on disk", async () => {
    const { dir, spool } = open();
    const { id } = await spool.accept(queue, { handlers: ["a"] }, fetched(3));
    db!.close();
    db = openStateDatabase(dir);
    const reopened = new Spool(db, dir);
    expect(reopened.cursor("support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 3 });
    expect((await reopened.readRaw("support", id)).toString()).toContain("body 3");
    expect(existsSync(path.join(dir, "spool", "support"))).toBe(true);
  });
});
