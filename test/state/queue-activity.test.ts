/**
 * The status page's hourly counts, the oldest undelivered message and sign-in renewals, on a
 * real SQLite state file with a real spool: counted from the daemon's events, written in one
 * flush, read back per hour (the chart), pruned after two days, and filled in by the
 * migration from deliveries made before the upgrade.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DaemonEvents } from "../../src/events.js";
import { openStateDatabase, type StateDatabase } from "../../src/store/sqlite/database.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import { CHART_HOURS, HOUR_MS, QueueActivity } from "../../src/state/queue-activity.js";
import { SqliteActivityStore } from "../../src/store/sqlite/activity.js";
import { openTempSpool } from "../../tools/testbed/helpers/temp-spool.js";
import { imap } from "../../tools/testbed/helpers/imap-messages.js";

const queue = { name: "support", address: "support@contoso.com" };
const raw = (n: number) => Buffer.from(`Message-ID: <m${n}@example.com>\r\nFrom: a@example.com\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);
const fetched = (n: number) => imap({ folder: "INBOX", uidValidity: "7", uid: n, size: raw(n).length, raw: raw(n) });

/** 2026-05-20 10:30 UTC: the middle of an hour. */
const NOW = Date.parse("2026-05-20T10:30:00Z");

let db: StateDatabase | undefined;
afterEach(() => db?.close());

describe("queue activity (real SQLite file)", () => {
  it("counts deliveries and failures per UTC hour from the daemon's events, and shows the last 24 hours, oldest first", async () => {
    const opened = openTempSpool();
    db = opened.db;
    let now = NOW;
    const activity = new QueueActivity(new SqliteActivityStore(db), undefined, () => now);
    const events = new DaemonEvents();
    activity.listen(events);
    try {
      for (let i = 0; i < 3; i++) events.emit("delivered", { queue: "support", id: `m${i}`, handler: "directory", attempt: 1, durationMs: 5 });
      events.emit("delivery-failed", { queue: "support", id: "m9", handler: "webhook", attempt: 1, retryInMs: 1000, reason: "503" });
      events.emit("dead-lettered", { queue: "support", id: "m9", handler: "webhook", reason: "410" });
      // A fetch failure counts in the hour it happened, not when it is reported.
      events.emit("fetch-failed", { queue: "sales", code: "IMAP_UNAVAILABLE", retryable: true, message: "down", at: new Date(NOW - 2 * HOUR_MS) });
      // Three days ago: outside the chart, and removed at the next write.
      activity.count("support", "delivered", NOW - 72 * HOUR_MS);

      const day = await activity.lastDay(["support", "sales", "idle"]);
      const support = day.get("support")!;
      expect(support).toHaveLength(CHART_HOURS);
      expect(support[0]!.start.toISOString()).toBe("2026-05-19T11:00:00.000Z");
      expect(support.at(-1)).toEqual({ start: new Date("2026-05-20T10:00:00Z"), delivered: 3, deliveryFailures: 2, fetchFailures: 0 });
      expect(support.slice(0, -1).every((h) => h.delivered + h.deliveryFailures + h.fetchFailures === 0)).toBe(true);
      expect(day.get("sales")!.at(-3)).toMatchObject({ start: new Date("2026-05-20T08:00:00Z"), fetchFailures: 1 });
      expect(day.get("idle")!.every((h) => h.delivered === 0)).toBe(true);
      expect(db.prepare("SELECT COUNT(*) AS n FROM queue_activity WHERE hour < ?").get(Math.floor(NOW / HOUR_MS) - 48)).toEqual({ n: 0 });

      // The next hour adds to a new row; the same hour adds to its row.
      now = NOW + HOUR_MS;
      events.emit("delivered", { queue: "support", id: "m5", handler: "directory", attempt: 1, durationMs: 5 });
      await activity.close();
      events.emit("delivered", { queue: "support", id: "m6", handler: "directory", attempt: 1, durationMs: 5 });
      const later = (await new QueueActivity(new SqliteActivityStore(db), undefined, () => now).lastDay(["support"])).get("support")!;
      expect(later.at(-1)).toMatchObject({ start: new Date("2026-05-20T11:00:00Z"), delivered: 1 });
      expect(later.at(-2)).toMatchObject({ delivered: 3, deliveryFailures: 2 });
    } finally {
      await activity.close();
    }
  });

  it("knows each queue's oldest message still waiting for a handler (dead letters apart) and when its sign-in was last renewed", async () => {
    const { db: opened, spool, store } = openTempSpool();
    db = opened;
    // Read through the store's ports, as the status page and `status` do (src/metrics/queue-health.ts).
    const activity = {
      oldestUndelivered: () => store.retention.oldestUndelivered(),
      signInRenewed: async () => new Map([...(await store.tokenCaches.versions())].map(([q, v]) => [q, new Date(v)])),
    };
    expect(await activity.oldestUndelivered()).toEqual(new Map());
    const first = await spool.accept(queue, { handlers: ["a", "b"] }, fetched(1));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = await spool.accept(queue, { handlers: ["a"] }, fetched(2));
    const spooledAt = (id: string) => new Date((db!.prepare("SELECT spooled_at FROM messages WHERE id = ?").get(id) as { spooled_at: number }).spooled_at);
    expect(await activity.oldestUndelivered()).toEqual(new Map([["support", spooledAt(first.key)]]));

    // The first message delivered to one handler still waits for the other.
    const due = await spool.dueDeliveries("support", Date.now(), 10);
    const firstSeq = due.find((d) => d.spoolKey === first.key)!.seq;
    await spool.markDelivered(firstSeq, "a");
    expect((await activity.oldestUndelivered()).get("support")).toEqual(spooledAt(first.key));
    // Parked for good: an operator's matter (dead letter gauge), no longer "waiting".
    await spool.markDead(firstSeq, "b", "rejected");
    expect((await activity.oldestUndelivered()).get("support")).toEqual(spooledAt(second.key));
    await spool.markDelivered(due.find((d) => d.spoolKey === second.key)!.seq, "a");
    expect((await activity.oldestUndelivered()).has("support")).toBe(false);

    expect(await activity.signInRenewed()).toEqual(new Map());
    db.prepare("INSERT INTO token_cache (queue, key_id, sealed, updated_at) VALUES (?, ?, ?, ?)").run("support", "k1", Buffer.from("sealed"), NOW);
    expect(await activity.signInRenewed()).toEqual(new Map([["support", new Date(NOW)]]));
  });

  it("fills the last 24 hours' deliveries in when the table is created, so the chart is not empty after an upgrade", async () => {
    const { db: opened, spool } = openTempSpool();
    db = opened;
    for (const n of [1, 2, 3]) await spool.accept(queue, { handlers: ["a"] }, fetched(n));
    const due = await spool.dueDeliveries("support", Date.now(), 10);
    for (const d of due) await spool.markDelivered(d.seq, "a");
    // One of them delivered two days ago: not in the chart.
    db.prepare("UPDATE deliveries SET delivered_at = ? WHERE message_seq = ?").run(Date.now() - 48 * HOUR_MS, due[0]!.seq);
    // As a state directory of the version before: the migration runs on existing deliveries.
    db.exec("DROP TABLE queue_activity");
    db.exec(MIGRATIONS[5]!);
    const hours = (await new QueueActivity(new SqliteActivityStore(db)).lastDay(["support"])).get("support")!;
    expect(hours.reduce((sum, h) => sum + h.delivered, 0)).toBe(2);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
  });

  it("is created by the numbered migrations of a new state directory", () => {
    const { dir, db: opened } = openTempSpool();
    opened.close();
    db = openStateDatabase(dir);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'queue_activity'").get()).toEqual({ name: "queue_activity" });
  });
});
