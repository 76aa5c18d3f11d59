/**
 * Per-queue records in PostgreSQL: status rows (advisory, what `status` and the HTTP surface
 * show), hourly activity counts, and the sealed token caches. Token cache writes are fenced:
 * only the replica holding a queue's lease signs in and refreshes its tokens, so two replicas
 * never rotate one refresh token. Status and activity are pictures, written by whoever saw
 * the event, and not fenced.
 */
import type { QueueFence } from "../../cluster/ports.js";
import type { ActivityStore, HourCounts, QueueState, QueueStatus, QueueStatusStore, SealedTokenCache, TokenCacheRows } from "../ports.js";
import { queueStatusOf, type QueueStatusRow } from "../rows.js";
import type { Connection } from "./connection.js";
import { checkFence } from "./fencing.js";

export class PostgresQueueStatus implements QueueStatusStore {
  constructor(private readonly db: Connection) {}

  async get(queue: string): Promise<QueueStatus | undefined> {
    const rows = await this.db.query<QueueStatusRow>("read a queue's status", "SELECT * FROM queue_status WHERE queue = $1", [queue]);
    return rows[0] ? queueStatusOf(rows[0]) : undefined;
  }

  async all(): Promise<QueueStatus[]> {
    return (await this.db.query<QueueStatusRow>("read queue status", "SELECT * FROM queue_status ORDER BY queue")).map(queueStatusOf);
  }

  async recordSuccess(queue: string, at: Date): Promise<void> {
    await this.db.query(
      "record a queue's success",
      `INSERT INTO queue_status (queue, state, last_success_at, consecutive_failures, updated_at) VALUES ($1, 'ok', $2, 0, $2)
       ON CONFLICT (queue) DO UPDATE SET state = 'ok', last_success_at = excluded.last_success_at, consecutive_failures = 0, updated_at = excluded.updated_at`,
      [queue, at.getTime()],
    );
  }

  async recordFailure(queue: string, state: QueueState, error: { code: string; message: string; fix?: string }, at: Date): Promise<number> {
    const rows = await this.db.query<{ consecutive_failures: number }>(
      "record a queue's failure",
      `INSERT INTO queue_status (queue, state, last_error_code, last_error_message, last_error_fix, last_error_at, consecutive_failures, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, 1, $6)
       ON CONFLICT (queue) DO UPDATE SET state = excluded.state, last_error_code = excluded.last_error_code,
         last_error_message = excluded.last_error_message, last_error_fix = excluded.last_error_fix,
         last_error_at = excluded.last_error_at, consecutive_failures = queue_status.consecutive_failures + 1, updated_at = excluded.updated_at
       RETURNING consecutive_failures`,
      [queue, state, error.code, error.message, error.fix ?? null, at.getTime()],
    );
    return rows[0]!.consecutive_failures;
  }

  async recordTokenExpiry(queue: string, expiresOn: Date): Promise<void> {
    await this.db.query(
      "record a token's expiry",
      `INSERT INTO queue_status (queue, state, token_expires_at, updated_at) VALUES ($1, 'starting', $2, $3)
       ON CONFLICT (queue) DO UPDATE SET token_expires_at = excluded.token_expires_at`,
      [queue, expiresOn.getTime(), Date.now()],
    );
  }

  async retain(queues: readonly string[]): Promise<void> {
    await this.db.query("forget unconfigured queues", "DELETE FROM queue_status WHERE NOT (queue = ANY($1::text[]))", [[...queues]]);
  }
}

export class PostgresActivity implements ActivityStore {
  constructor(private readonly db: Connection) {}

  add(counts: readonly HourCounts[], keepFrom: number): Promise<void> {
    return this.db.transaction("record hourly counts", async (client) => {
      if (counts.length > 0) {
        // Replicas add to the same hour's row: the sums are the cluster's.
        await client.query(
          `INSERT INTO queue_activity (hour, queue, delivered, delivery_failures, fetch_failures)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::int[])
           ON CONFLICT (hour, queue) DO UPDATE SET delivered = queue_activity.delivered + excluded.delivered,
             delivery_failures = queue_activity.delivery_failures + excluded.delivery_failures,
             fetch_failures = queue_activity.fetch_failures + excluded.fetch_failures`,
          [
            counts.map((c) => c.hour),
            counts.map((c) => c.queue),
            counts.map((c) => c.delivered),
            counts.map((c) => c.deliveryFailures),
            counts.map((c) => c.fetchFailures),
          ],
        );
      }
      await client.query("DELETE FROM queue_activity WHERE hour < $1", [keepFrom]);
    });
  }

  async hours(from: number, to: number): Promise<HourCounts[]> {
    const rows = await this.db.query<{ hour: number; queue: string; delivered: number; delivery_failures: number; fetch_failures: number }>(
      "read hourly counts",
      "SELECT hour, queue, delivered, delivery_failures, fetch_failures FROM queue_activity WHERE hour >= $1 AND hour <= $2 ORDER BY hour, queue",
      [from, to],
    );
    return rows.map((r) => ({ hour: r.hour, queue: r.queue, delivered: r.delivered, deliveryFailures: r.delivery_failures, fetchFailures: r.fetch_failures }));
  }
}

export class PostgresTokenCaches implements TokenCacheRows {
  constructor(
    private readonly db: Connection,
    private readonly fence: QueueFence | undefined,
  ) {}

  async read(queue: string): Promise<SealedTokenCache | undefined> {
    const rows = await this.db.query<{ key_id: string; sealed: Buffer; updated_at: number }>(
      "read a token cache",
      "SELECT key_id, sealed, updated_at FROM token_cache WHERE queue = $1",
      [queue],
    );
    const row = rows[0];
    return row ? { keyId: row.key_id, sealed: row.sealed, updatedAt: row.updated_at } : undefined;
  }

  write(queue: string, keyId: string, sealed: Buffer, expected: number | undefined | "any"): Promise<number | undefined> {
    return this.db.transaction("store a token cache", async (client) => {
      await checkFence(client, this.fence, [queue]);
      const now = Date.now();
      if (expected === undefined) {
        const inserted = await client.query<{ updated_at: number }>(
          "INSERT INTO token_cache (queue, key_id, sealed, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (queue) DO NOTHING RETURNING updated_at",
          [queue, keyId, sealed, now],
        );
        return inserted.rows[0]?.updated_at;
      }
      if (expected === "any") {
        const written = await client.query<{ updated_at: number }>(
          `INSERT INTO token_cache (queue, key_id, sealed, updated_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (queue) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = GREATEST(excluded.updated_at, token_cache.updated_at + 1)
           RETURNING updated_at`,
          [queue, keyId, sealed, now],
        );
        return written.rows[0]?.updated_at;
      }
      const updated = await client.query<{ updated_at: number }>(
        "UPDATE token_cache SET key_id = $2, sealed = $3, updated_at = GREATEST($4, updated_at + 1) WHERE queue = $1 AND updated_at = $5 RETURNING updated_at",
        [queue, keyId, sealed, now, expected],
      );
      return updated.rows[0]?.updated_at;
    });
  }

  async remove(queue: string): Promise<boolean> {
    // `logout` (an operator, no fence) removes a sign-in whoever holds the queue.
    const removed = await this.db.transaction("remove a token cache", async (client) => {
      await checkFence(client, this.fence, [queue]);
      return (await client.query("DELETE FROM token_cache WHERE queue = $1", [queue])).rowCount ?? 0;
    });
    return removed > 0;
  }

  async versions(): Promise<Map<string, number>> {
    const rows = await this.db.query<{ queue: string; updated_at: number }>("read token cache versions", "SELECT queue, updated_at FROM token_cache");
    return new Map(rows.map((r) => [r.queue, r.updated_at]));
  }
}
