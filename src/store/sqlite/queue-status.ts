/**
 * QueueStatusStore on SQLite: each queue's condition, persisted so `mailfetchd status` (another
 * process) and the HTTP surface see the same thing, and so a restart does not forget that a
 * queue needs sign-in.
 */
import type { QueueState, QueueStatus, QueueStatusStore } from "../ports.js";
import { queueStatusOf, type QueueStatusRow } from "../rows.js";
import type { StateDatabase } from "./database.js";
import { settle, withoutFsync } from "./guard.js";

export class SqliteQueueStatusStore implements QueueStatusStore {
  constructor(private readonly db: StateDatabase) {}

  get(queue: string): Promise<QueueStatus | undefined> {
    return settle(() => this.read(queue));
  }

  all(): Promise<QueueStatus[]> {
    return settle(() => this.readAll());
  }

  /**
   * Every poll of every queue lands here (1,000 a minute at 1,000 queues), so the write does not
   * wait for an fsync: with synchronous=FULL each cost ~1 ms of blocked event loop and a disk
   * flush. The row is advisory (what `status` and the HTTP surface show): a power cut may cost
   * the last few successes, which the next poll writes again, and SQLite stays consistent (WAL:
   * the next fully synced commit, or a checkpoint, flushes these frames with it). Failures and
   * token expiries keep the daemon's FULL: they are rare and say why a queue is not fetching.
   */
  recordSuccess(queue: string, at: Date): Promise<void> {
    const statement = this.db.prepare(
      `INSERT INTO queue_status (queue, state, last_success_at, consecutive_failures, updated_at) VALUES (?, 'ok', ?, 0, ?)
       ON CONFLICT (queue) DO UPDATE SET state = 'ok', last_success_at = excluded.last_success_at, consecutive_failures = 0, updated_at = excluded.updated_at`,
    );
    return settle(() => void withoutFsync(this.db, () => statement.run(queue, at.getTime(), at.getTime())));
  }

  recordFailure(queue: string, state: QueueState, error: { code: string; message: string; fix?: string }, at: Date): Promise<number> {
    return settle(() => {
      this.db
        .prepare(
          `INSERT INTO queue_status (queue, state, last_error_code, last_error_message, last_error_fix, last_error_at, consecutive_failures, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, 1, ?)
           ON CONFLICT (queue) DO UPDATE SET state = excluded.state, last_error_code = excluded.last_error_code,
             last_error_message = excluded.last_error_message, last_error_fix = excluded.last_error_fix,
             last_error_at = excluded.last_error_at, consecutive_failures = consecutive_failures + 1, updated_at = excluded.updated_at`,
        )
        .run(queue, state, error.code, error.message, error.fix ?? null, at.getTime(), at.getTime());
      return this.read(queue)!.consecutiveFailures;
    });
  }

  recordTokenExpiry(queue: string, expiresOn: Date): Promise<void> {
    return settle(() => {
      this.db
        .prepare(
          `INSERT INTO queue_status (queue, state, token_expires_at, updated_at) VALUES (?, 'starting', ?, ?)
           ON CONFLICT (queue) DO UPDATE SET token_expires_at = excluded.token_expires_at`,
        )
        .run(queue, expiresOn.getTime(), Date.now());
    });
  }

  retain(queues: readonly string[]): Promise<void> {
    return settle(() => {
      const keep = new Set(queues);
      for (const status of this.readAll()) if (!keep.has(status.queue)) this.db.prepare("DELETE FROM queue_status WHERE queue = ?").run(status.queue);
    });
  }

  private read(queue: string): QueueStatus | undefined {
    const row = this.db.prepare("SELECT * FROM queue_status WHERE queue = ?").get(queue) as QueueStatusRow | undefined;
    return row ? queueStatusOf(row) : undefined;
  }

  private readAll(): QueueStatus[] {
    return (this.db.prepare("SELECT * FROM queue_status ORDER BY queue").all() as QueueStatusRow[]).map(queueStatusOf);
  }
}
