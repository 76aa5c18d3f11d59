/** DeliveryStore on SQLite: the pending deliveries of each queue, oldest message first. */
import type { DeliveryStore, DueDelivery } from "../ports.js";
import { dueDeliveryOf, type DueRow } from "../rows.js";
import type { StateDatabase } from "./database.js";
import { inTransaction, settle } from "./guard.js";

export class SqliteDeliveryStore implements DeliveryStore {
  constructor(private readonly db: StateDatabase) {}

  due(queue: string, now: number, limit: number): Promise<DueDelivery[]> {
    return settle(() => {
      const rows = this.db
        .prepare(
          `SELECT m.seq, m.id, m.stable_id, m.content_sha256, d.handler, d.attempts, m.source_kind, m.folder, m.item_id, m.internal_date, m.size
           FROM deliveries d JOIN messages m ON m.seq = d.message_seq
           WHERE m.queue = ? AND d.state = 'pending' AND d.next_attempt_at <= ?
           ORDER BY m.seq, d.handler LIMIT ?`,
        )
        .all(queue, now, limit) as DueRow[];
      return rows.map(dueDeliveryOf);
    });
  }

  nextDueAt(queue: string): Promise<number | undefined> {
    return settle(() => {
      const row = this.db
        .prepare(
          `SELECT MIN(d.next_attempt_at) AS due FROM deliveries d JOIN messages m ON m.seq = d.message_seq
           WHERE m.queue = ? AND d.state = 'pending'`,
        )
        .get(queue) as { due: number | null };
      return row.due ?? undefined;
    });
  }

  backlog(queue: string): Promise<number> {
    return settle(() => {
      const row = this.db
        .prepare(`SELECT COUNT(*) AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.queue = ? AND d.state = 'pending'`)
        .get(queue) as { n: number };
      return row.n;
    });
  }

  /** One transaction (one fsync) for the whole batch. */
  markDelivered(deliveries: ReadonlyArray<{ readonly seq: number; readonly handler: string }>): Promise<void> {
    const update = this.db.prepare(
      "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE message_seq = ? AND handler = ?",
    );
    const now = Date.now();
    return inTransaction(this.db, () => {
      for (const { seq, handler } of deliveries) update.run(now, seq, handler);
    });
  }

  markRetry(seq: number, handler: string, error: string, nextAttemptAt: number): Promise<void> {
    return settle(() => {
      this.db
        .prepare("UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE message_seq = ? AND handler = ?")
        .run(nextAttemptAt, error, seq, handler);
    });
  }

  markDead(seq: number, handler: string, error: string): Promise<void> {
    return settle(() => {
      this.db
        .prepare("UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE message_seq = ? AND handler = ?")
        .run(error, seq, handler);
    });
  }
}
