/**
 * The spool: where a fetched message becomes durable before anything else happens to it.
 *
 * accept() writes the raw message to a file (fsynced), then in one SQLite transaction records
 * the message, one pending delivery per handler, and the folder's UID cursor. Only after that
 * commit may the server-side copy be touched or the next UID be fetched, so a crash at any
 * instant costs a re-fetch (recognised by the stable id), never a message.
 * Handlers are fed from here, independently of IMAP.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Cursor, FetchedMessage, QueueIdentity } from "../interfaces.js";
import type { StateDatabase } from "../state/database.js";
import { MailfetchdError } from "../errors.js";
import { ensurePrivateDirectory, writeFileDurably } from "./durable-file.js";
import { identifyMessage } from "./stable-id.js";

export interface AcceptResult {
  readonly id: string;
  /** False when the message was already in the spool (a re-fetch after a crash or re-sync). */
  readonly isNew: boolean;
}

export interface DueDelivery {
  readonly seq: number;
  readonly id: string;
  readonly handler: string;
  readonly attempts: number;
  readonly folder: string;
  readonly uidValidity: string;
  readonly uid: number;
  readonly internalDate?: Date;
}

export class Spool {
  private readonly messagesDir: string;

  constructor(
    private readonly db: StateDatabase,
    stateDir: string,
  ) {
    this.messagesDir = path.join(stateDir, "spool");
  }

  cursor(queue: string, folder: string): Cursor | undefined {
    const row = this.db.prepare("SELECT uid_validity, last_uid FROM cursors WHERE queue = ? AND folder = ?").get(queue, folder) as
      | { uid_validity: string; last_uid: number }
      | undefined;
    return row ? { uidValidity: row.uid_validity, lastUid: row.last_uid } : undefined;
  }

  /** Records a new UIDVALIDITY: the folder is read again from UID 1 (repeats are recognised by id). */
  resetCursor(queue: string, folder: string, uidValidity: string): void {
    this.setCursor(queue, folder, uidValidity, 0);
  }

  async accept(queue: QueueIdentity, handlers: readonly string[], message: FetchedMessage): Promise<AcceptResult> {
    const identity = identifyMessage(queue.address, message.raw);
    const dir = path.join(this.messagesDir, queue.name);
    await ensurePrivateDirectory(dir);
    const known = this.db.prepare("SELECT 1 FROM messages WHERE queue = ? AND id = ?").get(queue.name, identity.id) !== undefined;
    if (!known) {
      try {
        await writeFileDurably(this.rawPath(queue.name, identity.id), message.raw);
      } catch (cause) {
        throw new MailfetchdError(`Cannot write to the spool in ${dir}: ${(cause as NodeJS.ErrnoException).code ?? cause}.`, {
          code: "SPOOL_WRITE_FAILED",
          retryable: true,
          fix: "Free space or fix permissions on the state directory; fetching resumes by itself and nothing is touched on the server meanwhile.",
          cause,
        });
      }
    }
    const isNew = this.db.transaction(() => {
      const inserted = this.db
        .prepare(
          `INSERT INTO messages (id, queue, folder, uid_validity, uid, size, internal_date, header_message_id, content_sha256, spooled_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue, id) DO NOTHING`,
        )
        .run(
          identity.id,
          queue.name,
          message.folder,
          message.uidValidity,
          message.uid,
          message.raw.length,
          message.internalDate?.getTime() ?? null,
          identity.headerMessageId ?? null,
          identity.contentSha256,
          Date.now(),
        );
      if (inserted.changes > 0) {
        const addDelivery = this.db.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at) VALUES (?, ?, 'pending', 0)");
        for (const handler of handlers) addDelivery.run(inserted.lastInsertRowid, handler);
      }
      this.setCursor(queue.name, message.folder, message.uidValidity, message.uid);
      return inserted.changes > 0;
    })();
    return { id: identity.id, isNew };
  }

  /** Deliveries whose time has come, oldest message first. */
  dueDeliveries(queue: string, now: number, limit: number): DueDelivery[] {
    const rows = this.db
      .prepare(
        `SELECT m.seq, m.id, d.handler, d.attempts, m.folder, m.uid_validity, m.uid, m.internal_date
         FROM deliveries d JOIN messages m ON m.seq = d.message_seq
         WHERE m.queue = ? AND d.state = 'pending' AND d.next_attempt_at <= ?
         ORDER BY m.seq, d.handler LIMIT ?`,
      )
      .all(queue, now, limit) as Array<{
      seq: number;
      id: string;
      handler: string;
      attempts: number;
      folder: string;
      uid_validity: string;
      uid: number;
      internal_date: number | null;
    }>;
    return rows.map((r) => ({
      seq: r.seq,
      id: r.id,
      handler: r.handler,
      attempts: r.attempts,
      folder: r.folder,
      uidValidity: r.uid_validity,
      uid: r.uid,
      internalDate: r.internal_date === null ? undefined : new Date(r.internal_date),
    }));
  }

  /** When the next pending delivery of this queue falls due, if any is pending. */
  nextDueAt(queue: string): number | undefined {
    const row = this.db
      .prepare(
        `SELECT MIN(d.next_attempt_at) AS due FROM deliveries d JOIN messages m ON m.seq = d.message_seq
         WHERE m.queue = ? AND d.state = 'pending'`,
      )
      .get(queue) as { due: number | null };
    return row.due ?? undefined;
  }

  backlog(queue: string): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.queue = ? AND d.state = 'pending'`)
      .get(queue) as { n: number };
    return row.n;
  }

  readRaw(queue: string, id: string): Promise<Buffer> {
    return readFile(this.rawPath(queue, id));
  }

  markDelivered(seq: number, handler: string): void {
    this.db
      .prepare("UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE message_seq = ? AND handler = ?")
      .run(Date.now(), seq, handler);
  }

  markRetry(seq: number, handler: string, error: string, nextAttemptAt: number): void {
    this.db
      .prepare("UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE message_seq = ? AND handler = ?")
      .run(nextAttemptAt, error, seq, handler);
  }

  markDead(seq: number, handler: string, error: string): void {
    this.db.prepare("UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE message_seq = ? AND handler = ?").run(error, seq, handler);
  }

  private rawPath(queue: string, id: string): string {
    return path.join(this.messagesDir, queue, `${id}.eml`);
  }

  private setCursor(queue: string, folder: string, uidValidity: string, lastUid: number): void {
    this.db
      .prepare(
        `INSERT INTO cursors (queue, folder, uid_validity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (queue, folder) DO UPDATE SET uid_validity = excluded.uid_validity, last_uid = excluded.last_uid, updated_at = excluded.updated_at`,
      )
      .run(queue, folder, uidValidity, lastUid, Date.now());
  }
}
