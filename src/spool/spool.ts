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
import type { Cursor, FetchedMessage, QueueIdentity, ServerAction } from "../interfaces.js";
import type { StateDatabase } from "../state/database.js";
import { MailfetchdError } from "../errors.js";
import { ensurePrivateDirectory, writeFileDurably } from "./durable-file.js";
import { identifyMessage } from "./stable-id.js";

export interface AcceptResult {
  readonly id: string;
  /** False when the message was already in the spool (a re-fetch after a crash or re-sync). */
  readonly isNew: boolean;
}

export interface AcceptOptions {
  /** One pending delivery is created per handler name. */
  readonly handlers: readonly string[];
  /** Owed on the server once the message is durable; recorded in the same transaction. */
  readonly serverAction?: Omit<ServerAction, "uid">;
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

  async accept(queue: QueueIdentity, options: AcceptOptions, message: FetchedMessage): Promise<AcceptResult> {
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
          `INSERT INTO messages (id, queue, folder, uid_validity, uid, size, internal_date, header_message_id, content_sha256, spooled_at, headers_only)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue, id) DO NOTHING`,
        )
        .run(
          identity.id,
          queue.name,
          message.folder,
          message.uidValidity,
          message.uid,
          message.size,
          message.internalDate?.getTime() ?? null,
          identity.headerMessageId ?? null,
          identity.contentSha256,
          Date.now(),
          message.tooLarge ? 1 : 0,
        );
      if (inserted.changes > 0) {
        // A message too large to download is parked at once: handlers cannot have it, an operator must decide.
        const addDelivery = this.db.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, last_error) VALUES (?, ?, ?, 0, ?)");
        const reason = message.tooLarge ? tooLargeReason(message.size, message.tooLarge.limit) : null;
        for (const handler of options.handlers) addDelivery.run(inserted.lastInsertRowid, handler, reason ? "dead" : "pending", reason);
      }
      // The server copy of a message that was not downloaded is left alone.
      if (options.serverAction && !message.tooLarge) {
        this.db
          .prepare(
            `INSERT INTO server_actions (queue, folder, uid_validity, uid, action, target, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING`,
          )
          .run(queue.name, message.folder, message.uidValidity, message.uid, options.serverAction.action, options.serverAction.target ?? null, Date.now());
      }
      this.setCursor(queue.name, message.folder, message.uidValidity, message.uid);
      return inserted.changes > 0;
    })();
    return { id: identity.id, isNew };
  }

  /** Server-side actions still owed in this folder (from this session, or one a crash cut short). */
  pendingServerActions(queue: string, folder: string, uidValidity: string): ServerAction[] {
    const rows = this.db
      .prepare("SELECT uid, action, target FROM server_actions WHERE queue = ? AND folder = ? AND uid_validity = ? ORDER BY uid")
      .all(queue, folder, uidValidity) as Array<{ uid: number; action: ServerAction["action"]; target: string | null }>;
    return rows.map((r) => ({ uid: r.uid, action: r.action, target: r.target ?? undefined }));
  }

  serverActionsDone(queue: string, folder: string, uidValidity: string, uids: readonly number[]): void {
    const remove = this.db.prepare("DELETE FROM server_actions WHERE queue = ? AND folder = ? AND uid_validity = ? AND uid = ?");
    this.db.transaction(() => {
      for (const uid of uids) remove.run(queue, folder, uidValidity, uid);
    })();
  }

  /** Actions owed under an old UIDVALIDITY cannot be addressed any more: the UIDs mean nothing now. */
  dropStaleServerActions(queue: string, folder: string, currentUidValidity: string): number {
    return this.db.prepare("DELETE FROM server_actions WHERE queue = ? AND folder = ? AND uid_validity <> ?").run(queue, folder, currentUidValidity).changes;
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

  deadLetters(queue?: string): DeadLetter[] {
    const rows = this.db
      .prepare(
        `SELECT m.queue, m.id, d.handler, d.attempts, d.last_error, m.folder, m.uid_validity, m.uid, m.size, m.spooled_at, m.header_message_id, m.headers_only
         FROM deliveries d JOIN messages m ON m.seq = d.message_seq
         WHERE d.state = 'dead' AND (? IS NULL OR m.queue = ?) ORDER BY m.seq, d.handler`,
      )
      .all(queue ?? null, queue ?? null) as DeadLetterRow[];
    return rows.map(toDeadLetter);
  }

  deadLetterCount(queue: string): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.queue = ? AND d.state = 'dead'`)
      .get(queue) as { n: number };
    return row.n;
  }

  /**
   * Puts a dead letter back in line (all its dead handlers, or one). A message that was too
   * large to download is forgotten instead and its folder's cursor rewound to just before it,
   * so the next fetch downloads it (under a raised maxMessageSize); repeats behind it are
   * recognised by their stable ids. Returns how many deliveries were requeued or forgotten.
   */
  retryDeadLetter(queue: string, id: string, handler?: string): number {
    return this.db.transaction(() => {
      const message = this.db.prepare("SELECT seq, folder, uid_validity, uid, headers_only FROM messages WHERE queue = ? AND id = ?").get(queue, id) as
        | { seq: number; folder: string; uid_validity: string; uid: number; headers_only: number }
        | undefined;
      if (!message) return 0;
      if (message.headers_only) {
        const cursor = this.cursor(queue, message.folder);
        if (cursor && cursor.uidValidity === message.uid_validity && cursor.lastUid >= message.uid) {
          this.setCursor(queue, message.folder, message.uid_validity, message.uid - 1);
        }
        const removed = this.db.prepare("DELETE FROM deliveries WHERE message_seq = ?").run(message.seq).changes;
        this.db.prepare("DELETE FROM messages WHERE seq = ?").run(message.seq);
        return removed;
      }
      return this.db
        .prepare(
          `UPDATE deliveries SET state = 'pending', next_attempt_at = 0, attempts = 0
           WHERE message_seq = ? AND state = 'dead' AND (? IS NULL OR handler = ?)`,
        )
        .run(message.seq, handler ?? null, handler ?? null).changes;
    })();
  }

  /** Gives up on a dead letter for good: it is marked dropped and never delivered. */
  dropDeadLetter(queue: string, id: string, handler?: string): number {
    return this.db
      .prepare(
        `UPDATE deliveries SET state = 'dropped', delivered_at = ?, last_error = 'dropped by operator: ' || COALESCE(last_error, '')
         WHERE state = 'dead' AND (? IS NULL OR handler = ?) AND message_seq = (SELECT seq FROM messages WHERE queue = ? AND id = ?)`,
      )
      .run(Date.now(), handler ?? null, handler ?? null, queue, id).changes;
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

export interface DeadLetter {
  readonly queue: string;
  readonly id: string;
  readonly handler: string;
  readonly attempts: number;
  readonly reason: string;
  readonly source: { readonly folder: string; readonly uidValidity: string; readonly uid: number };
  readonly size: number;
  readonly spooledAt: Date;
  readonly headerMessageId?: string;
  /** Only the header block was kept: the message was above the size cap. */
  readonly headersOnly: boolean;
}

interface DeadLetterRow {
  queue: string;
  id: string;
  handler: string;
  attempts: number;
  last_error: string | null;
  folder: string;
  uid_validity: string;
  uid: number;
  size: number;
  spooled_at: number;
  header_message_id: string | null;
  headers_only: number;
}

function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    queue: row.queue,
    id: row.id,
    handler: row.handler,
    attempts: row.attempts,
    reason: row.last_error ?? "",
    source: { folder: row.folder, uidValidity: row.uid_validity, uid: row.uid },
    size: row.size,
    spooledAt: new Date(row.spooled_at),
    headerMessageId: row.header_message_id ?? undefined,
    headersOnly: row.headers_only === 1,
  };
}

export function tooLargeReason(size: number, limit: number): string {
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `message is ${mb(size)}, above the queue's maxMessageSize of ${mb(limit)}: it was not downloaded and stays on the server untouched. Handle it in the mailbox, or raise maxMessageSize and run \`mailfetchd deadletters retry\` for it.`;
}
