/**
 * MessageStore on SQLite: the spool's index (messages, one delivery per handler), owed server
 * actions and cursors, written by `commit` in one transaction (one fsync) for a whole group of
 * messages whose raw bytes are durable.
 */
import type { MessageLocation, SourceKind } from "../../source/message-location.js";
import type { CommitEntry, CursorEntry, MessageEntry, MessageStore, StableIdAssignment } from "../ports.js";
import type { StateDatabase } from "./database.js";
import { inTransaction, settle, withoutFsync } from "./guard.js";

export class SqliteMessageStore implements MessageStore {
  constructor(private readonly db: StateDatabase) {}

  isSpooled(queue: string, location: MessageLocation): Promise<boolean> {
    return settle(() => isSpooled(this.db, queue, location));
  }

  commit(entries: readonly CommitEntry[]): Promise<boolean[]> {
    return inTransaction(this.db, () => entries.map((entry) => (entry.type === "cursor" ? this.recordCursor(entry) : this.recordMessage(entry))));
  }

  cursor(queue: string, kind: SourceKind, folder: string): Promise<string | undefined> {
    return settle(() => readCursor(this.db, queue, kind, folder));
  }

  restartCursor(queue: string, kind: SourceKind, folder: string, position: string): Promise<void> {
    return settle(() => setCursor(this.db, queue, kind, folder, position));
  }

  /**
   * A copy of exactly the bytes of another message takes that message's id: this keeps the ids
   * of messages spooled before content fingerprints (migration 5) for their copies.
   *
   * Committed without waiting for an fsync (one per message was the main thread's largest SQLite
   * cost in the drain profile): an assignment survives a crash of the process, and one a power
   * cut loses is made again identically at the next parse (the ids come from the content, and
   * the original is the same row), before the delivery is recorded, whose synced commit flushes
   * it for good.
   */
  assignStableId(queue: string, seq: number, contentSha256: string, contentId: string): Promise<StableIdAssignment> {
    return settle(() => withoutFsync(this.db, () => this.db.transaction(() => this.assign(queue, seq, contentSha256, contentId)).immediate()));
  }

  private assign(queue: string, seq: number, contentSha256: string, contentId: string): StableIdAssignment {
    const assigned = this.db.prepare("SELECT stable_id FROM messages WHERE seq = ?").get(seq) as { stable_id: string | null } | undefined;
    if (assigned?.stable_id) return { stableId: assigned.stable_id };
    const identified = (where: string, value: string) =>
      this.db
        .prepare(
          `SELECT seq, stable_id FROM messages WHERE queue = ? AND ${where} = ? AND seq <> ? AND stable_id IS NOT NULL AND headers_only = 0 ORDER BY seq LIMIT 1`,
        )
        .get(queue, value, seq) as { seq: number; stable_id: string } | undefined;
    const original = identified("content_sha256", contentSha256) ?? identified("stable_id", contentId);
    const stableId = original?.stable_id ?? contentId;
    this.db.prepare("UPDATE messages SET stable_id = ? WHERE seq = ?").run(stableId, seq);
    if (original === undefined) return { stableId };
    this.db
      .prepare("UPDATE deliveries SET state = 'repeat', delivered_at = ?, last_error = ? WHERE message_seq = ? AND state = 'pending'")
      .run(Date.now(), `repeat of the message spooled as #${original.seq}: same content, same id`, seq);
    return { stableId, repeatOf: original.seq };
  }

  private recordCursor(entry: CursorEntry): boolean {
    setCursor(this.db, entry.queue, entry.kind, entry.folder, entry.position);
    return false;
  }

  /**
   * The row and its deliveries, the owed action and the cursor. A row left from a message that
   * was too large, which an operator asked to fetch after all, is taken over: it keeps its stable id.
   */
  private recordMessage(entry: MessageEntry): boolean {
    const { queue, location } = entry;
    const isNew = entry.written && this.recordRow(entry);
    if (entry.serverAction) {
      this.db
        .prepare(
          `INSERT INTO server_actions (queue, source_kind, folder, item_id, action, target, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        )
        .run(queue, location.kind, location.folder, location.item, entry.serverAction.action, entry.serverAction.target ?? null, Date.now());
    }
    if (entry.cursor !== undefined) setCursor(this.db, queue, location.kind, location.folder, entry.cursor);
    return isNew;
  }

  private recordRow(entry: MessageEntry): boolean {
    const { queue, location } = entry;
    const existing = this.db
      .prepare("SELECT seq, awaiting_refetch FROM messages WHERE queue = ? AND source_kind = ? AND folder = ? AND item_id = ? ORDER BY seq LIMIT 1")
      .get(queue, location.kind, location.folder, location.item) as { seq: number; awaiting_refetch: number } | undefined;
    if (existing && !existing.awaiting_refetch) return false;
    const values = [entry.size, entry.internalDate ?? null, entry.headerMessageId ?? null, entry.contentSha256, Date.now(), entry.headersOnly ? 1 : 0] as const;
    let seq: number | bigint;
    if (existing) {
      seq = existing.seq;
      this.db
        .prepare(
          `UPDATE messages SET id = ?, size = ?, internal_date = ?, header_message_id = ?, content_sha256 = ?, spooled_at = ?, headers_only = ?,
             awaiting_refetch = 0, pruned_at = NULL WHERE seq = ?`,
        )
        .run(entry.key, ...values, seq);
      this.db.prepare("DELETE FROM deliveries WHERE message_seq = ?").run(seq);
    } else {
      seq = this.db
        .prepare(
          `INSERT INTO messages (id, stable_id, queue, source_kind, folder, item_id, size, internal_date, header_message_id, content_sha256, spooled_at, headers_only)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(entry.key, entry.headersOnly?.stableId ?? null, queue, location.kind, location.folder, location.item, ...values).lastInsertRowid;
    }
    // A message too large to download is parked at once: handlers cannot have it, an operator must decide.
    const addDelivery = this.db.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, last_error) VALUES (?, ?, ?, 0, ?)");
    const reason = entry.headersOnly?.reason ?? null;
    for (const handler of entry.handlers) addDelivery.run(seq, handler, reason ? "dead" : "pending", reason);
    return true;
  }
}

/** Whether this source location is in the spool (and not waiting to be fetched again). */
function isSpooled(db: StateDatabase, queue: string, location: MessageLocation): boolean {
  return (
    db
      .prepare("SELECT 1 FROM messages WHERE queue = ? AND source_kind = ? AND folder = ? AND item_id = ? AND awaiting_refetch = 0")
      .get(queue, location.kind, location.folder, location.item) !== undefined
  );
}

export function readCursor(db: StateDatabase, queue: string, kind: SourceKind, folder: string): string | undefined {
  const row = db.prepare("SELECT position FROM cursors WHERE queue = ? AND source_kind = ? AND folder = ?").get(queue, kind, folder) as
    { position: string } | undefined;
  return row?.position;
}

export function setCursor(db: StateDatabase, queue: string, kind: SourceKind, folder: string, position: string): void {
  db.prepare(
    `INSERT INTO cursors (queue, source_kind, folder, position, updated_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (queue, source_kind, folder) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
  ).run(queue, kind, folder, position, Date.now());
}
