/** ActivityStore on SQLite: per queue and UTC hour, the counts behind the status page's chart. */
import type { ActivityStore, HourCounts } from "../ports.js";
import type { StateDatabase } from "./database.js";
import { inTransaction, settle } from "./guard.js";

export class SqliteActivityStore implements ActivityStore {
  constructor(private readonly db: StateDatabase) {}

  add(counts: readonly HourCounts[], keepFrom: number): Promise<void> {
    const add = this.db.prepare(
      `INSERT INTO queue_activity (hour, queue, delivered, delivery_failures, fetch_failures) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (hour, queue) DO UPDATE SET delivered = delivered + excluded.delivered,
         delivery_failures = delivery_failures + excluded.delivery_failures, fetch_failures = fetch_failures + excluded.fetch_failures`,
    );
    const forget = this.db.prepare("DELETE FROM queue_activity WHERE hour < ?");
    return inTransaction(this.db, () => {
      for (const c of counts) add.run(c.hour, c.queue, c.delivered, c.deliveryFailures, c.fetchFailures);
      forget.run(keepFrom);
    });
  }

  hours(from: number, to: number): Promise<HourCounts[]> {
    return settle(() => {
      const rows = this.db
        .prepare("SELECT hour, queue, delivered, delivery_failures, fetch_failures FROM queue_activity WHERE hour >= ? AND hour <= ? ORDER BY hour, queue")
        .all(from, to) as Array<{ hour: number; queue: string; delivered: number; delivery_failures: number; fetch_failures: number }>;
      return rows.map((r) => ({
        hour: r.hour,
        queue: r.queue,
        delivered: r.delivered,
        deliveryFailures: r.delivery_failures,
        fetchFailures: r.fetch_failures,
      }));
    });
  }
}
