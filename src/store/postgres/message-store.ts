/**
 * Messages, cursors, deliveries, the server-action outbox, dead letters and retention in
 * PostgreSQL: the same statements and meanings as the SQLite store (src/spool/spool.ts), each
 * port method one transaction, and every write of a queue's state fenced (./fencing.ts).
 * Operator commands (dead letter retry and drop) open the store without a fence.
 */
import type pg from "pg";
import type { QueueFence } from "../../cluster/ports.js";
import type { MessageLocation, OwedAction, SourceKind } from "../../source/message-location.js";
import type {
  CommitEntry,
  DeadLetterRecord,
  DeadLetterStore,
  DeliveryStore,
  DueDelivery,
  MessageEntry,
  MessageStore,
  PrunableMessage,
  QueueTotals,
  RetentionStore,
  ServerActionStore,
  StableIdAssignment,
} from "../ports.js";
import { deadLetterOf, dueDeliveryOf, type DeadLetterRow, type DueRow } from "../rows.js";
import type { Connection } from "./connection.js";
import { checkFence } from "./fencing.js";

export class PostgresMessages implements MessageStore, DeliveryStore, ServerActionStore, DeadLetterStore, RetentionStore {
  constructor(
    private readonly db: Connection,
    private readonly fence: QueueFence | undefined,
  ) {}

  // -- MessageStore ---------------------------------------------------------------------------

  async isSpooled(queue: string, location: MessageLocation): Promise<boolean> {
    const rows = await this.db.query(
      "ask whether a message is spooled",
      "SELECT 1 FROM messages WHERE queue = $1 AND source_kind = $2 AND folder = $3 AND item_id = $4 AND NOT awaiting_refetch LIMIT 1",
      [queue, location.kind, location.folder, location.item],
    );
    return rows.length > 0;
  }

  commit(entries: readonly CommitEntry[]): Promise<boolean[]> {
    return this.db.transaction("record spooled messages", async (client) => {
      await checkFence(
        client,
        this.fence,
        entries.map((e) => e.queue),
      );
      const results: boolean[] = [];
      for (const entry of entries) {
        if (entry.type === "cursor") {
          await setCursor(client, entry.queue, entry.kind, entry.folder, entry.position);
          results.push(false);
          continue;
        }
        results.push(entry.written ? await recordMessage(client, entry) : false);
        if (entry.serverAction) {
          await client.query(
            `INSERT INTO server_actions (queue, source_kind, folder, item_id, action, target, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING`,
            [
              entry.queue,
              entry.location.kind,
              entry.location.folder,
              entry.location.item,
              entry.serverAction.action,
              entry.serverAction.target ?? null,
              Date.now(),
            ],
          );
        }
        if (entry.cursor !== undefined) await setCursor(client, entry.queue, entry.location.kind, entry.location.folder, entry.cursor);
      }
      return results;
    });
  }

  async cursor(queue: string, kind: SourceKind, folder: string): Promise<string | undefined> {
    const rows = await this.db.query<{ position: string }>(
      "read a cursor",
      "SELECT position FROM cursors WHERE queue = $1 AND source_kind = $2 AND folder = $3",
      [queue, kind, folder],
    );
    return rows[0]?.position;
  }

  restartCursor(queue: string, kind: SourceKind, folder: string, position: string): Promise<void> {
    return this.db.transaction("restart a cursor", async (client) => {
      await checkFence(client, this.fence, [queue]);
      await setCursor(client, queue, kind, folder, position);
    });
  }

  assignStableId(queue: string, seq: number, contentSha256: string, contentId: string): Promise<StableIdAssignment> {
    return this.db.transaction("give a message its stable id", async (client) => {
      // No wait for the WAL flush (as on SQLite): an assignment a server crash loses is made
      // again identically at the next parse, and the delivery's own synced commit flushes it.
      await client.query("SET LOCAL synchronous_commit TO OFF");
      await checkFence(client, this.fence, [queue]);
      // Two copies of one message given their ids side by side: one at a time per queue, so the
      // second sees the first's id (READ COMMITTED alone would let both miss each other).
      await client.query("SELECT pg_advisory_xact_lock(hashtextextended('mailfetchd.stable-id:' || $1, 0))", [queue]);
      const assigned = await client.query<{ stable_id: string | null }>("SELECT stable_id FROM messages WHERE seq = $1", [seq]);
      const already = assigned.rows[0]?.stable_id;
      if (already) return { stableId: already };
      const identified = async (column: "content_sha256" | "stable_id", value: string) =>
        (
          await client.query<{ seq: number; stable_id: string }>(
            `SELECT seq, stable_id FROM messages WHERE queue = $1 AND ${column} = $2 AND seq <> $3 AND stable_id IS NOT NULL AND NOT headers_only ORDER BY seq LIMIT 1`,
            [queue, value, seq],
          )
        ).rows[0];
      const original = (await identified("content_sha256", contentSha256)) ?? (await identified("stable_id", contentId));
      const stableId = original?.stable_id ?? contentId;
      await client.query("UPDATE messages SET stable_id = $1 WHERE seq = $2", [stableId, seq]);
      if (original === undefined) return { stableId };
      await client.query("UPDATE deliveries SET state = 'repeat', delivered_at = $1, last_error = $2 WHERE message_seq = $3 AND state = 'pending'", [
        Date.now(),
        `repeat of the message spooled as #${original.seq}: same content, same id`,
        seq,
      ]);
      return { stableId, repeatOf: original.seq };
    });
  }

  // -- DeliveryStore --------------------------------------------------------------------------

  async due(queue: string, now: number, limit: number): Promise<DueDelivery[]> {
    // SKIP LOCKED: a delivery whose outcome is being written right now (its row locked by
    // markDelivered on another connection) is not handed out again meanwhile.
    const rows = await this.db.query<DueRow>(
      "read due deliveries",
      `SELECT m.seq, m.id, m.stable_id, m.content_sha256, d.handler, d.attempts, m.source_kind, m.folder, m.item_id, m.internal_date, m.size
       FROM deliveries d JOIN messages m ON m.seq = d.message_seq
       WHERE m.queue = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2
       ORDER BY m.seq, d.handler LIMIT $3
       FOR UPDATE OF d SKIP LOCKED`,
      [queue, now, limit],
    );
    return rows.map(dueDeliveryOf);
  }

  async nextDueAt(queue: string): Promise<number | undefined> {
    const rows = await this.db.query<{ due: number | null }>(
      "read when the next delivery is due",
      `SELECT MIN(d.next_attempt_at) AS due FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.queue = $1 AND d.state = 'pending'`,
      [queue],
    );
    return rows[0]?.due ?? undefined;
  }

  backlog(queue: string): Promise<number> {
    return this.countDeliveries("count the backlog", queue, "pending");
  }

  markDelivered(deliveries: ReadonlyArray<{ readonly seq: number; readonly handler: string }>): Promise<void> {
    if (deliveries.length === 0) return Promise.resolve();
    return this.db.transaction("record deliveries", async (client) => {
      await this.fenceSeqs(
        client,
        deliveries.map((d) => d.seq),
      );
      await client.query(
        `UPDATE deliveries d SET state = 'delivered', attempts = d.attempts + 1, delivered_at = $1, last_error = NULL
         FROM unnest($2::bigint[], $3::text[]) AS done (seq, handler)
         WHERE d.message_seq = done.seq AND d.handler = done.handler`,
        [Date.now(), deliveries.map((d) => d.seq), deliveries.map((d) => d.handler)],
      );
    });
  }

  markRetry(seq: number, handler: string, error: string, nextAttemptAt: number): Promise<void> {
    return this.db.transaction("record a delivery to retry", async (client) => {
      await this.fenceSeqs(client, [seq]);
      await client.query("UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE message_seq = $3 AND handler = $4", [
        nextAttemptAt,
        error,
        seq,
        handler,
      ]);
    });
  }

  markDead(seq: number, handler: string, error: string): Promise<void> {
    return this.db.transaction("record a dead letter", async (client) => {
      await this.fenceSeqs(client, [seq]);
      await client.query("UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_error = $1 WHERE message_seq = $2 AND handler = $3", [
        error,
        seq,
        handler,
      ]);
    });
  }

  /** The queue's deliveries in one state: the backlog (pending) or the dead letters. */
  private async countDeliveries(doing: string, queue: string, state: "pending" | "dead"): Promise<number> {
    const rows = await this.db.query<{ n: number }>(
      doing,
      "SELECT COUNT(*)::int AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.queue = $1 AND d.state = $2",
      [queue, state],
    );
    return rows[0]?.n ?? 0;
  }

  /** The fence of the queues these messages belong to. */
  private async fenceSeqs(client: pg.PoolClient, seqs: readonly number[]): Promise<void> {
    if (this.fence === undefined) return;
    const rows = await client.query<{ queue: string }>("SELECT DISTINCT queue FROM messages WHERE seq = ANY($1::bigint[])", [seqs]);
    await checkFence(
      client,
      this.fence,
      rows.rows.map((r) => r.queue),
    );
  }

  // -- ServerActionStore ----------------------------------------------------------------------

  async pending(queue: string, kind: SourceKind, folder: string): Promise<OwedAction[]> {
    const rows = await this.db.query<{ item_id: string; action: OwedAction["action"]; target: string | null }>(
      "read owed server actions",
      "SELECT item_id, action, target FROM server_actions WHERE queue = $1 AND source_kind = $2 AND folder = $3 ORDER BY owed_order",
      [queue, kind, folder],
    );
    return rows.map((r) => ({ item: r.item_id, action: r.action, ...(r.target === null ? {} : { target: r.target }) }));
  }

  done(queue: string, kind: SourceKind, folder: string, items: readonly string[]): Promise<number> {
    if (items.length === 0) return Promise.resolve(0);
    return this.db.transaction("record server actions done", async (client) => {
      await checkFence(client, this.fence, [queue]);
      const result = await client.query("DELETE FROM server_actions WHERE queue = $1 AND source_kind = $2 AND folder = $3 AND item_id = ANY($4::text[])", [
        queue,
        kind,
        folder,
        [...items],
      ]);
      return result.rowCount ?? 0;
    });
  }

  // -- DeadLetterStore (operator commands: not fenced) ------------------------------------------

  async list(queue?: string): Promise<DeadLetterRecord[]> {
    const rows = await this.db.query<DeadLetterRow>(
      "list dead letters",
      `SELECT m.queue, COALESCE(m.stable_id, m.id) AS id, m.id AS spool_key, d.handler, d.attempts, d.last_error, m.source_kind, m.folder, m.item_id, m.size,
         m.spooled_at, m.header_message_id, m.headers_only
       FROM deliveries d JOIN messages m ON m.seq = d.message_seq
       WHERE d.state = 'dead' AND ($1::text IS NULL OR m.queue = $1) ORDER BY m.seq, d.handler`,
      [queue ?? null],
    );
    return rows.map(deadLetterOf);
  }

  count(queue: string): Promise<number> {
    return this.countDeliveries("count dead letters", queue, "dead");
  }

  retry(
    queue: string,
    id: string,
    handler: string | undefined,
    rewind: (location: MessageLocation, cursor: string | undefined) => string | undefined,
  ): Promise<number> {
    return this.db.transaction("put a dead letter back in line", async (client) => {
      let changed = 0;
      for (const message of await messagesWithId(client, queue, id)) {
        if (message.headers_only) {
          const location: MessageLocation = { kind: message.source_kind, folder: message.folder, item: message.item_id };
          const cursor = await client.query<{ position: string }>(
            "SELECT position FROM cursors WHERE queue = $1 AND source_kind = $2 AND folder = $3 FOR UPDATE",
            [queue, location.kind, location.folder],
          );
          const rewound = rewind(location, cursor.rows[0]?.position);
          if (rewound !== undefined) await setCursor(client, queue, location.kind, location.folder, rewound);
          await client.query("UPDATE messages SET awaiting_refetch = true WHERE seq = $1", [message.seq]);
          changed += (await client.query("DELETE FROM deliveries WHERE message_seq = $1", [message.seq])).rowCount ?? 0;
          continue;
        }
        const requeued = await client.query(
          `UPDATE deliveries SET state = 'pending', next_attempt_at = 0, attempts = 0
           WHERE message_seq = $1 AND state = 'dead' AND ($2::text IS NULL OR handler = $2)`,
          [message.seq, handler ?? null],
        );
        changed += requeued.rowCount ?? 0;
      }
      return changed;
    });
  }

  drop(queue: string, id: string, handler?: string): Promise<number> {
    return this.db.transaction("drop a dead letter", async (client) => {
      const seqs = (await messagesWithId(client, queue, id)).map((m) => m.seq);
      const dropped = await client.query(
        `UPDATE deliveries SET state = 'dropped', delivered_at = $1, last_error = 'dropped by operator: ' || COALESCE(last_error, '')
         WHERE state = 'dead' AND ($2::text IS NULL OR handler = $2) AND message_seq = ANY($3::bigint[])`,
        [Date.now(), handler ?? null, seqs],
      );
      return dropped.rowCount ?? 0;
    });
  }

  // -- RetentionStore (housekeeping across queues: any replica, idempotent, not fenced) ----------

  async prunable(before: number, limit: number): Promise<PrunableMessage[]> {
    return this.db.query<PrunableMessage>(
      "list messages to prune",
      `SELECT m.seq, m.queue, m.id AS key FROM messages m
       WHERE m.spooled_at < $1 AND m.pruned_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_seq = m.seq AND d.state IN ('pending', 'dead'))
       ORDER BY m.seq LIMIT $2`,
      [before, limit],
    );
  }

  async markPruned(seq: number): Promise<void> {
    await this.db.query("mark a message pruned", "UPDATE messages SET pruned_at = $1 WHERE seq = $2", [Date.now(), seq]);
  }

  async forget(before: number): Promise<number> {
    return this.db.transaction("forget pruned messages", async (client) => {
      const result = await client.query("DELETE FROM messages WHERE spooled_at < $1 AND pruned_at IS NOT NULL", [before]);
      return result.rowCount ?? 0;
    });
  }

  async totals(): Promise<Map<string, QueueTotals>> {
    const totals = new Map<string, { backlog: number; deadLetters: number; spoolBytes: number }>();
    const of = (queue: string) => {
      let entry = totals.get(queue);
      if (!entry) totals.set(queue, (entry = { backlog: 0, deadLetters: 0, spoolBytes: 0 }));
      return entry;
    };
    const byState = await this.db.query<{ queue: string; state: "pending" | "dead"; n: number }>(
      "count queue totals",
      `SELECT m.queue, d.state, COUNT(*)::int AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq
       WHERE d.state IN ('pending', 'dead') GROUP BY m.queue, d.state`,
    );
    for (const row of byState) {
      if (row.state === "pending") of(row.queue).backlog = row.n;
      else of(row.queue).deadLetters = row.n;
    }
    const bytes = await this.db.query<{ queue: string; bytes: number }>(
      "count spool bytes",
      "SELECT queue, SUM(size)::bigint AS bytes FROM messages WHERE pruned_at IS NULL GROUP BY queue",
    );
    for (const row of bytes) of(row.queue).spoolBytes = row.bytes;
    return totals;
  }

  async oldestUndelivered(): Promise<Map<string, Date>> {
    const rows = await this.db.query<{ queue: string; at: number }>(
      "read the oldest waiting messages",
      `SELECT m.queue, MIN(m.spooled_at) AS at FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE d.state = 'pending' GROUP BY m.queue`,
    );
    return new Map(rows.map((r) => [r.queue, new Date(r.at)]));
  }
}

/**
 * The row and its deliveries. A row left from a message that was too large, which an operator
 * asked to fetch after all, is taken over: it keeps its stable id.
 */
async function recordMessage(client: pg.PoolClient, entry: MessageEntry): Promise<boolean> {
  const { location } = entry;
  const existing = (
    await client.query<{ seq: number; awaiting_refetch: boolean }>(
      "SELECT seq, awaiting_refetch FROM messages WHERE queue = $1 AND source_kind = $2 AND folder = $3 AND item_id = $4 ORDER BY seq LIMIT 1 FOR UPDATE",
      [entry.queue, location.kind, location.folder, location.item],
    )
  ).rows[0];
  if (existing && !existing.awaiting_refetch) return false;
  const values = [entry.size, entry.internalDate ?? null, entry.headerMessageId ?? null, entry.contentSha256, Date.now(), entry.headersOnly !== undefined];
  let seq: number;
  if (existing) {
    seq = existing.seq;
    await client.query(
      `UPDATE messages SET id = $1, size = $2, internal_date = $3, header_message_id = $4, content_sha256 = $5, spooled_at = $6, headers_only = $7,
         awaiting_refetch = false, pruned_at = NULL WHERE seq = $8`,
      [entry.key, ...values, seq],
    );
    await client.query("DELETE FROM deliveries WHERE message_seq = $1", [seq]);
  } else {
    const inserted = await client.query<{ seq: number }>(
      `INSERT INTO messages (id, stable_id, queue, source_kind, folder, item_id, size, internal_date, header_message_id, content_sha256, spooled_at, headers_only)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq`,
      [entry.key, entry.headersOnly?.stableId ?? null, entry.queue, location.kind, location.folder, location.item, ...values],
    );
    seq = inserted.rows[0]!.seq;
  }
  // A message too large to download is parked at once: handlers cannot have it, an operator must decide.
  const reason = entry.headersOnly?.reason ?? null;
  if (entry.handlers.length > 0) {
    await client.query(
      `INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, last_error) SELECT $1, handler, $2, 0, $3 FROM unnest($4::text[]) AS h (handler)`,
      [seq, reason ? "dead" : "pending", reason, [...entry.handlers]],
    );
  }
  return true;
}

async function setCursor(client: pg.PoolClient, queue: string, kind: SourceKind, folder: string, position: string): Promise<void> {
  await client.query(
    `INSERT INTO cursors (queue, source_kind, folder, position, updated_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (queue, source_kind, folder) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
    [queue, kind, folder, position, Date.now()],
  );
}

/** The rows a dead letter id names: its stable id (a repeat shares it), or its spool key. */
async function messagesWithId(
  client: pg.PoolClient,
  queue: string,
  id: string,
): Promise<Array<{ seq: number; source_kind: SourceKind; folder: string; item_id: string; headers_only: boolean }>> {
  const rows = await client.query<{ seq: number; source_kind: SourceKind; folder: string; item_id: string; headers_only: boolean }>(
    "SELECT seq, source_kind, folder, item_id, headers_only FROM messages WHERE queue = $1 AND (stable_id = $2 OR id = $2) ORDER BY seq FOR UPDATE",
    [queue, id],
  );
  return rows.rows;
}
