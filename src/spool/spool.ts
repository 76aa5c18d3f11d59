/**
 * The spool: where a fetched message becomes durable before anything else happens to it.
 *
 * accept() writes the raw message to a file (fsynced), then in one SQLite transaction records
 * the message, one pending delivery per handler, and the folder's cursor. Only after that
 * commit may the server-side copy be touched or the next message be fetched, so a crash at any
 * instant costs a re-fetch, never a message.
 *
 * A message's place in the spool is its source location (src/spool/stable-id.ts spoolKey):
 * "already spooled?" is asked of the location, never of the content, so two different
 * messages are never taken for one. Its stable id, the key handlers see, comes later from its
 * parsed content (assignStableId); a copy whose content was spooled before is recognised then
 * and its deliveries end as 'repeat'.
 * Locations and cursors are source-neutral (src/source/message-location.ts): a source kind, a
 * folder, an item id and a cursor position only the source's adapter reads.
 * Handlers are fed from here, independently of the mail source.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { FetchedMessage, QueueIdentity, StreamedMessage } from "../interfaces.js";
import type { MessageLocation, OwedAction, SourceKind } from "../source/message-location.js";
import { sourceFields, type SourceFields } from "../source/source-fields.js";
import { cursorBefore } from "../source/source-kinds.js";
import type { StateDatabase } from "../state/database.js";
import { MailfetchdError } from "../errors.js";
import { ensurePrivateDirectory, writeFileDurably } from "./durable-file.js";
import { moveIntoPlace, StreamSourceError, writeStreamToTempFile } from "./spool-file-writer.js";
import { HEADER_SCAN_LIMIT, headerMessageId, spoolKey, stableIdFromHeaders } from "./stable-id.js";

export interface AcceptResult {
  /** The message's spool key (its stable id is known once it is parsed). */
  readonly key: string;
  /** False when this source location was already in the spool (a re-fetch after a cursor rewind). */
  readonly isNew: boolean;
}

export interface AcceptOptions {
  /** One pending delivery is created per handler name. */
  readonly handlers: readonly string[];
  /** Owed on the server once the message is durable; recorded in the same transaction. */
  readonly serverAction?: Omit<OwedAction, "item">;
}

export interface DueDelivery {
  readonly seq: number;
  /** Names the spool file. */
  readonly spoolKey: string;
  /** Undefined until the message is first parsed (assignStableId). */
  readonly stableId?: string;
  readonly contentSha256: string;
  readonly handler: string;
  readonly attempts: number;
  readonly location: MessageLocation;
  readonly internalDate?: Date;
  /** Bytes (RFC822.SIZE): how much parsing ahead would hold in memory. */
  readonly size: number;
}

interface LineEntry {
  readonly outcome: Promise<boolean>;
  readonly settle: (isNew: boolean) => void;
  readonly fail: (error: unknown) => void;
  /** Set once the message's file is durable: records it (in the commit transaction). */
  record?: () => boolean;
}

/** A scratch directory this old is left from a crash: no parse and delivery takes an hour. */
const STALE_SCRATCH_MS = 60 * 60 * 1000;

export class Spool {
  private readonly messagesDir: string;
  /** Big attachments written while parsing, one directory per delivery round (derived data). */
  private readonly scratchRoot: string;
  /** Per queue, the accepts not yet committed, in call order. */
  private readonly commitLines = new Map<string, LineEntry[]>();
  private commitScheduled = false;

  constructor(
    private readonly db: StateDatabase,
    stateDir: string,
  ) {
    this.messagesDir = path.join(stateDir, "spool");
    this.scratchRoot = path.join(stateDir, "scratch");
  }

  /**
   * A new directory name (not created yet) to parse one message's big attachments into. Its
   * contents can always be made again from the spool file: the caller removes it when done.
   */
  scratchDir(queue: string, id: string): string {
    return path.join(this.scratchRoot, queue, `${id}-${randomBytes(4).toString("hex")}`);
  }

  /** Removes scratch directories a crash left behind (older than an hour); never throws. */
  async removeStaleScratch(): Promise<number> {
    let removed = 0;
    const queues = await readdir(this.scratchRoot).catch(() => [] as string[]);
    for (const queue of queues) {
      const dir = path.join(this.scratchRoot, queue);
      for (const entry of await readdir(dir).catch(() => [] as string[])) {
        const scratch = path.join(dir, entry);
        const stats = await stat(scratch).catch(() => undefined);
        if (stats === undefined || Date.now() - stats.mtimeMs < STALE_SCRATCH_MS) continue;
        await rm(scratch, { recursive: true, force: true }).then(() => removed++, () => undefined);
      }
    }
    return removed;
  }

  /** The folder's cursor position, opaque to all but the source's adapter; undefined before its first sync. */
  cursor(queue: string, kind: SourceKind, folder: string): string | undefined {
    const row = this.db.prepare("SELECT position FROM cursors WHERE queue = ? AND source_kind = ? AND folder = ?").get(queue, kind, folder) as
      | { position: string }
      | undefined;
    return row?.position;
  }

  /** The folder starts over at `position` (IMAP: a new UIDVALIDITY, read from UID 1); repeats are recognised by content. */
  restartCursor(queue: string, kind: SourceKind, folder: string, position: string): void {
    this.setCursor(queue, kind, folder, position);
  }

  /**
   * Commits a cursor position after every message of the queue accepted before this call,
   * in the same transaction as the last of them when they commit together. Resolves once it is
   * durable; rejects (and moves nothing) when an earlier accept failed.
   */
  async advanceCursor(queue: string, kind: SourceKind, folder: string, position: string): Promise<void> {
    const entry = this.lineUp(queue);
    entry.record = () => {
      this.setCursor(queue, kind, folder, position);
      return false;
    };
    this.scheduleCommit();
    await entry.outcome;
  }

  /**
   * Makes a message durable: its file (fsynced) first, then its row, its deliveries, the owed
   * server action and the cursor, in one transaction. Resolves only once both are on disk.
   *
   * Several accepts may be in flight at once (the mailbox does not wait for one before handing
   * over the next): their files are written concurrently, and their rows are committed in
   * groups, one transaction (one fsync) for every message whose file is durable, in the order
   * accept() was called per queue. A message never commits before an earlier one of its queue,
   * and one that fails takes the later ones with it, so the cursor never passes a message that
   * is not durable.
   */
  async accept(queue: QueueIdentity, options: AcceptOptions, message: FetchedMessage | StreamedMessage): Promise<AcceptResult> {
    const entry = this.lineUp(queue.name);
    const dir = path.join(this.messagesDir, queue.name);
    const { location } = message;
    const key = spoolKey(queue.name, location);
    let written: WrittenMessage | undefined;
    try {
      await ensurePrivateDirectory(dir);
      written = this.isSpooled(queue.name, location) ? await this.skip(message) : await this.write(queue.name, key, message);
    } catch (cause) {
      // The download broke, not the disk: the IMAP error goes up as it is.
      const error =
        cause instanceof StreamSourceError
          ? cause.cause
          : new MailfetchdError(`Cannot write to the spool in ${dir}: ${(cause as NodeJS.ErrnoException).code ?? cause}.`, {
              code: "SPOOL_WRITE_FAILED",
              retryable: true,
              fix: "Free space or fix permissions on the state directory; fetching resumes by itself and nothing is touched on the server meanwhile.",
              cause,
            });
      this.failFrom(queue.name, entry, error);
      throw error;
    }
    entry.record = () => {
      const isNew = written === undefined ? false : this.recordMessage(queue, key, options, message, written);
      // The server copy of a message that was not downloaded is left alone. Any other is
      // durable by now: written above, or spooled from this very location before.
      if (options.serverAction && !message.tooLarge) {
        this.db
          .prepare(
            `INSERT INTO server_actions (queue, source_kind, folder, item_id, action, target, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING`,
          )
          .run(queue.name, location.kind, location.folder, location.item, options.serverAction.action, options.serverAction.target ?? null, Date.now());
      }
      if (message.cursor !== undefined) this.setCursor(queue.name, location.kind, location.folder, message.cursor);
      return isNew;
    };
    this.scheduleCommit();
    return { key, isNew: await entry.outcome };
  }

  /**
   * The row and its deliveries (in the commit transaction). A row left from a message that was
   * too large, which an operator asked to fetch after all, is taken over: it keeps its stable id.
   */
  private recordMessage(queue: QueueIdentity, key: string, options: AcceptOptions, message: FetchedMessage | StreamedMessage, written: WrittenMessage): boolean {
    const { location } = message;
    const existing = this.db
      .prepare("SELECT seq, awaiting_refetch FROM messages WHERE queue = ? AND source_kind = ? AND folder = ? AND item_id = ? ORDER BY seq LIMIT 1")
      .get(queue.name, location.kind, location.folder, location.item) as { seq: number; awaiting_refetch: number } | undefined;
    if (existing && !existing.awaiting_refetch) return false;
    const stableId = message.tooLarge ? stableIdFromHeaders(queue.address, written.head, message.size) : null;
    const values = [message.size, message.internalDate?.getTime() ?? null, headerMessageId(written.head) ?? null, written.sha256, Date.now(), message.tooLarge ? 1 : 0] as const;
    let seq: number | bigint;
    if (existing) {
      seq = existing.seq;
      this.db
        .prepare(
          `UPDATE messages SET id = ?, size = ?, internal_date = ?, header_message_id = ?, content_sha256 = ?, spooled_at = ?, headers_only = ?,
             awaiting_refetch = 0, pruned_at = NULL WHERE seq = ?`,
        )
        .run(key, ...values, seq);
      this.db.prepare("DELETE FROM deliveries WHERE message_seq = ?").run(seq);
    } else {
      seq = this.db
        .prepare(
          `INSERT INTO messages (id, stable_id, queue, source_kind, folder, item_id, size, internal_date, header_message_id, content_sha256, spooled_at, headers_only)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(key, stableId, queue.name, location.kind, location.folder, location.item, ...values).lastInsertRowid;
    }
    // A message too large to download is parked at once: handlers cannot have it, an operator must decide.
    const addDelivery = this.db.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, last_error) VALUES (?, ?, ?, 0, ?)");
    const reason = message.tooLarge ? tooLargeReason(message.size, message.tooLarge.limit) : null;
    for (const handler of options.handlers) addDelivery.run(seq, handler, reason ? "dead" : "pending", reason);
    return true;
  }

  /** Takes a place in the queue's commit line: rows commit in this order. */
  private lineUp(queue: string): LineEntry {
    let settle!: (isNew: boolean) => void;
    let fail!: (error: unknown) => void;
    const outcome = new Promise<boolean>((resolve, reject) => ((settle = resolve), (fail = reject)));
    // A failed entry is awaited by its own accept(); the rejection is never unhandled.
    outcome.catch(() => undefined);
    const entry: LineEntry = { outcome, settle, fail };
    const line = this.commitLines.get(queue) ?? [];
    line.push(entry);
    this.commitLines.set(queue, line);
    return entry;
  }

  /** This entry and every later one of its queue fail: none may commit past it. */
  private failFrom(queue: string, entry: LineEntry, error: unknown): void {
    const line = this.commitLines.get(queue) ?? [];
    const index = line.indexOf(entry);
    if (index < 0) return;
    for (const later of line.splice(index)) later.fail(error);
    if (line.length === 0) this.commitLines.delete(queue);
  }

  private scheduleCommit(): void {
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    // The next turn of the event loop: files finishing meanwhile join the same transaction.
    setImmediate(() => {
      this.commitScheduled = false;
      this.commitReady();
    });
  }

  /** Commits, in one transaction, every queue's longest run of entries whose files are durable. */
  private commitReady(): void {
    const ready: Array<{ queue: string; entry: LineEntry & { record: () => boolean } }> = [];
    for (const [queue, line] of this.commitLines) {
      let count = 0;
      while (count < line.length && line[count]!.record) count++;
      for (const entry of line.splice(0, count)) ready.push({ queue, entry: entry as LineEntry & { record: () => boolean } });
      if (line.length === 0) this.commitLines.delete(queue);
    }
    if (ready.length === 0) return;
    let results: boolean[];
    try {
      results = this.db.transaction(() => ready.map(({ entry }) => entry.record()))();
    } catch (cause) {
      const error = new MailfetchdError(`Cannot record a message in the state database: ${(cause as { code?: string }).code ?? cause}.`, {
        code: "SPOOL_WRITE_FAILED",
        retryable: true,
        fix: "Free space or fix permissions on the state directory; fetching resumes by itself and nothing is touched on the server meanwhile.",
        cause,
      });
      for (const { queue, entry } of ready) {
        entry.fail(error);
        const line = this.commitLines.get(queue);
        if (line) this.failFrom(queue, line[0]!, error);
      }
      return;
    }
    ready.forEach(({ entry }, index) => entry.settle(results[index]!));
  }

  /**
   * Writes the message file, durable before the row that points at it. Its name comes from the
   * source location, so a re-fetch after a crash (the row never committed) writes the same file.
   * A big message goes from the download straight to a temp file, hashed on the way (bounded
   * memory), and is renamed into place.
   */
  private async write(queue: string, key: string, message: FetchedMessage | StreamedMessage): Promise<WrittenMessage> {
    const file = this.rawPath(queue, key);
    if (!("content" in message)) {
      await writeFileDurably(file, message.raw);
      return { head: message.raw.subarray(0, HEADER_SCAN_LIMIT), sha256: createHash("sha256").update(message.raw).digest("hex") };
    }
    const written = await writeStreamToTempFile(path.dirname(file), message.content, HEADER_SCAN_LIMIT);
    await moveIntoPlace(written.tempPath, file);
    return { head: written.head, sha256: written.sha256 };
  }

  /** A location spooled before: nothing to write (a stream is drained, as the download expects). */
  private async skip(message: FetchedMessage | StreamedMessage): Promise<undefined> {
    if ("content" in message) {
      try {
        for await (const chunk of message.content) void chunk;
      } catch (error) {
        throw new StreamSourceError(error);
      }
    }
    return undefined;
  }

  /** Whether this source location is in the spool (and not waiting to be fetched again). */
  private isSpooled(queue: string, location: MessageLocation): boolean {
    return (
      this.db
        .prepare("SELECT 1 FROM messages WHERE queue = ? AND source_kind = ? AND folder = ? AND item_id = ? AND awaiting_refetch = 0")
        .get(queue, location.kind, location.folder, location.item) !== undefined
    );
  }

  /**
   * Gives a parsed message its stable id, once (an id handed out never changes), and tells
   * whether another message of the queue with the same content already has its id: then this
   * one is a copy served again (after a UIDVALIDITY change, or the same message twice in the
   * mailbox), its deliveries end as 'repeat', and the other, under the same id, is what
   * handlers get. Whichever copy is given its id first is the one delivered (two copies parsed
   * side by side are told apart here, in one transaction, not by their spool order).
   * A copy of exactly the bytes of another message takes that message's id: this keeps the
   * ids of messages spooled before content fingerprints (migration 5) for their copies.
   */
  assignStableId(queue: string, delivery: Pick<DueDelivery, "seq" | "contentSha256">, contentId: string): StableIdAssignment {
    return this.db.transaction((): StableIdAssignment => {
      const assigned = this.db.prepare("SELECT stable_id FROM messages WHERE seq = ?").get(delivery.seq) as { stable_id: string | null } | undefined;
      if (assigned?.stable_id) return { stableId: assigned.stable_id };
      const identified = (where: string, value: string) =>
        this.db
          .prepare(`SELECT seq, stable_id FROM messages WHERE queue = ? AND ${where} = ? AND seq <> ? AND stable_id IS NOT NULL AND headers_only = 0 ORDER BY seq LIMIT 1`)
          .get(queue, value, delivery.seq) as { seq: number; stable_id: string } | undefined;
      const original = identified("content_sha256", delivery.contentSha256) ?? identified("stable_id", contentId);
      const stableId = original?.stable_id ?? contentId;
      this.db.prepare("UPDATE messages SET stable_id = ? WHERE seq = ?").run(stableId, delivery.seq);
      if (original === undefined) return { stableId };
      this.db
        .prepare("UPDATE deliveries SET state = 'repeat', delivered_at = ?, last_error = ? WHERE message_seq = ? AND state = 'pending'")
        .run(Date.now(), `repeat of the message spooled as #${original.seq}: same content, same id`, delivery.seq);
      return { stableId, repeatOf: original.seq };
    })();
  }

  /** Where a spooled message's raw file is (for a parser that reads it itself). */
  rawFile(queue: string, key: string): string {
    return this.rawPath(queue, key);
  }

  /** Server-side actions still owed in this folder (from this session, or one a crash cut short), in the order they were owed. */
  pendingServerActions(queue: string, kind: SourceKind, folder: string): OwedAction[] {
    const rows = this.db
      .prepare("SELECT item_id, action, target FROM server_actions WHERE queue = ? AND source_kind = ? AND folder = ? ORDER BY rowid")
      .all(queue, kind, folder) as Array<{ item_id: string; action: OwedAction["action"]; target: string | null }>;
    return rows.map((r) => ({ item: r.item_id, action: r.action, target: r.target ?? undefined }));
  }

  /** These owed actions are done, or can no longer be taken; returns how many were removed. */
  serverActionsDone(queue: string, kind: SourceKind, folder: string, items: readonly string[]): number {
    const remove = this.db.prepare("DELETE FROM server_actions WHERE queue = ? AND source_kind = ? AND folder = ? AND item_id = ?");
    return this.db.transaction(() => items.reduce((removed, item) => removed + remove.run(queue, kind, folder, item).changes, 0))();
  }

  /** Deliveries whose time has come, oldest message first. */
  dueDeliveries(queue: string, now: number, limit: number): DueDelivery[] {
    const rows = this.db
      .prepare(
        `SELECT m.seq, m.id, m.stable_id, m.content_sha256, d.handler, d.attempts, m.source_kind, m.folder, m.item_id, m.internal_date, m.size
         FROM deliveries d JOIN messages m ON m.seq = d.message_seq
         WHERE m.queue = ? AND d.state = 'pending' AND d.next_attempt_at <= ?
         ORDER BY m.seq, d.handler LIMIT ?`,
      )
      .all(queue, now, limit) as Array<{
      seq: number;
      id: string;
      stable_id: string | null;
      content_sha256: string;
      handler: string;
      attempts: number;
      source_kind: SourceKind;
      folder: string;
      item_id: string;
      internal_date: number | null;
      size: number;
    }>;
    return rows.map((r) => ({
      seq: r.seq,
      spoolKey: r.id,
      ...(r.stable_id === null ? {} : { stableId: r.stable_id }),
      contentSha256: r.content_sha256,
      handler: r.handler,
      attempts: r.attempts,
      location: { kind: r.source_kind, folder: r.folder, item: r.item_id },
      internalDate: r.internal_date === null ? undefined : new Date(r.internal_date),
      size: r.size,
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

  readRaw(queue: string, key: string): Promise<Buffer> {
    return readFile(this.rawPath(queue, key));
  }

  markDelivered(seq: number, handler: string): void {
    this.db
      .prepare("UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE message_seq = ? AND handler = ?")
      .run(Date.now(), seq, handler);
  }

  /** Several deliveries done, in one transaction (one fsync). */
  markDeliveredMany(deliveries: ReadonlyArray<{ readonly seq: number; readonly handler: string }>): void {
    const update = this.db.prepare("UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE message_seq = ? AND handler = ?");
    const now = Date.now();
    this.db.transaction(() => {
      for (const { seq, handler } of deliveries) update.run(now, seq, handler);
    })();
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
        `SELECT m.queue, COALESCE(m.stable_id, m.id) AS id, m.id AS spool_key, d.handler, d.attempts, d.last_error, m.source_kind, m.folder, m.item_id, m.size,
           m.spooled_at, m.header_message_id, m.headers_only
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
   * large to download is marked to be fetched again instead, and its folder's cursor rewound to
   * just before it (src/source/source-kinds.ts cursorBefore), so the next fetch downloads it (under a raised maxMessageSize) into the same
   * row, under the same id; the messages behind it are recognised by their locations. Returns
   * how many deliveries were requeued or forgotten.
   */
  retryDeadLetter(queue: string, id: string, handler?: string): number {
    return this.db.transaction(() => {
      let changed = 0;
      for (const message of this.messagesWithId(queue, id)) {
        if (message.headers_only) {
          const location: MessageLocation = { kind: message.source_kind, folder: message.folder, item: message.item_id };
          const rewound = cursorBefore(location, this.cursor(queue, location.kind, location.folder));
          if (rewound !== undefined) this.setCursor(queue, location.kind, location.folder, rewound);
          this.db.prepare("UPDATE messages SET awaiting_refetch = 1 WHERE seq = ?").run(message.seq);
          changed += this.db.prepare("DELETE FROM deliveries WHERE message_seq = ?").run(message.seq).changes;
          continue;
        }
        changed += this.db
          .prepare(
            `UPDATE deliveries SET state = 'pending', next_attempt_at = 0, attempts = 0
             WHERE message_seq = ? AND state = 'dead' AND (? IS NULL OR handler = ?)`,
          )
          .run(message.seq, handler ?? null, handler ?? null).changes;
      }
      return changed;
    })();
  }

  /** Gives up on a dead letter for good: it is marked dropped and never delivered. */
  dropDeadLetter(queue: string, id: string, handler?: string): number {
    const drop = this.db.prepare(
      `UPDATE deliveries SET state = 'dropped', delivered_at = ?, last_error = 'dropped by operator: ' || COALESCE(last_error, '')
       WHERE state = 'dead' AND (? IS NULL OR handler = ?) AND message_seq = ?`,
    );
    return this.db.transaction(() => this.messagesWithId(queue, id).reduce((n, m) => n + drop.run(Date.now(), handler ?? null, handler ?? null, m.seq).changes, 0))();
  }

  /** The rows a dead letter id names: its stable id (a repeat shares it), or its spool key. */
  private messagesWithId(queue: string, id: string): Array<{ seq: number; source_kind: SourceKind; folder: string; item_id: string; headers_only: number }> {
    return this.db
      .prepare("SELECT seq, source_kind, folder, item_id, headers_only FROM messages WHERE queue = ? AND (stable_id = ? OR id = ?) ORDER BY seq")
      .all(queue, id, id) as Array<{ seq: number; source_kind: SourceKind; folder: string; item_id: string; headers_only: number }>;
  }

  /**
   * Messages spooled before `before` whose every delivery is done (delivered or dropped) and
   * whose file is still there. Dead letters and pending deliveries are never prunable.
   */
  prunable(before: number, limit: number): Array<{ seq: number; queue: string; id: string }> {
    return this.db
      .prepare(
        `SELECT m.seq, m.queue, m.id FROM messages m
         WHERE m.spooled_at < ? AND m.pruned_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_seq = m.seq AND d.state IN ('pending', 'dead'))
         ORDER BY m.seq LIMIT ?`,
      )
      .all(before, limit) as Array<{ seq: number; queue: string; id: string }>;
  }

  /** Removes a delivered message's spool file; its row stays as a tombstone. */
  async prune(message: { seq: number; queue: string; id: string }): Promise<void> {
    await rm(this.rawPath(message.queue, message.id), { force: true });
    this.db.prepare("UPDATE messages SET pruned_at = ? WHERE seq = ?").run(Date.now(), message.seq);
  }

  /** Forgets pruned messages' rows (and their deliveries) spooled before `before`. */
  forget(before: number): number {
    return this.db.prepare("DELETE FROM messages WHERE spooled_at < ? AND pruned_at IS NOT NULL").run(before).changes;
  }

  /** Bytes of raw messages held in the spool for a queue (files not yet pruned). */
  diskUsage(queue: string): number {
    const row = this.db.prepare("SELECT COALESCE(SUM(size), 0) AS bytes FROM messages WHERE queue = ? AND pruned_at IS NULL").get(queue) as { bytes: number };
    return row.bytes;
  }

  /**
   * backlog, deadLetterCount and diskUsage of every queue, in three grouped queries: asked per
   * queue, each pending delivery was scanned once per queue (1,000 queues with 20,000 pending:
   * 4-8 s for one scrape of /metrics or one status page). A queue with none is absent.
   */
  queueTotals(): Map<string, QueueTotals> {
    const totals = new Map<string, { backlog: number; deadLetters: number; spoolBytes: number }>();
    const of = (queue: string) => {
      let entry = totals.get(queue);
      if (!entry) totals.set(queue, (entry = { backlog: 0, deadLetters: 0, spoolBytes: 0 }));
      return entry;
    };
    const byState = this.db
      .prepare(
        `SELECT m.queue, d.state, COUNT(*) AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq
         WHERE d.state IN ('pending', 'dead') GROUP BY m.queue, d.state`,
      )
      .all() as Array<{ queue: string; state: "pending" | "dead"; n: number }>;
    for (const row of byState) {
      if (row.state === "pending") of(row.queue).backlog = row.n;
      else of(row.queue).deadLetters = row.n;
    }
    const bytes = this.db.prepare("SELECT queue, SUM(size) AS bytes FROM messages WHERE pruned_at IS NULL GROUP BY queue").all() as Array<{ queue: string; bytes: number }>;
    for (const row of bytes) of(row.queue).spoolBytes = row.bytes;
    return totals;
  }

  /** Spool keys (and, for messages spooled before migration 5, stable ids) name the files. */
  private rawPath(queue: string, key: string): string {
    return path.join(this.messagesDir, queue, `${key}.eml`);
  }

  private setCursor(queue: string, kind: SourceKind, folder: string, position: string): void {
    this.db
      .prepare(
        `INSERT INTO cursors (queue, source_kind, folder, position, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (queue, source_kind, folder) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
      )
      .run(queue, kind, folder, position, Date.now());
  }
}

export interface QueueTotals {
  /** Pending deliveries. */
  readonly backlog: number;
  readonly deadLetters: number;
  /** Bytes of raw messages whose files are still in the spool. */
  readonly spoolBytes: number;
}

export interface StableIdAssignment {
  readonly stableId: string;
  /** The seq of the message with the same content that is delivered instead, when this one is a repeat of it. */
  readonly repeatOf?: number;
}

interface WrittenMessage {
  /** The first HEADER_SCAN_LIMIT bytes (all of a shorter message). */
  readonly head: Buffer;
  readonly sha256: string;
}

export interface DeadLetter {
  readonly queue: string;
  /** The stable id. */
  readonly id: string;
  /** Names the spool file (readRaw). */
  readonly spoolKey: string;
  readonly handler: string;
  readonly attempts: number;
  readonly reason: string;
  /** Kind, folder and item (and UIDVALIDITY, UID for IMAP), as handlers see it. */
  readonly source: SourceFields;
  readonly size: number;
  readonly spooledAt: Date;
  readonly headerMessageId?: string;
  /** Only the header block was kept: the message was above the size cap. */
  readonly headersOnly: boolean;
}

interface DeadLetterRow {
  queue: string;
  id: string;
  spool_key: string;
  handler: string;
  attempts: number;
  last_error: string | null;
  source_kind: SourceKind;
  folder: string;
  item_id: string;
  size: number;
  spooled_at: number;
  header_message_id: string | null;
  headers_only: number;
}

function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    queue: row.queue,
    id: row.id,
    spoolKey: row.spool_key,
    handler: row.handler,
    attempts: row.attempts,
    reason: row.last_error ?? "",
    source: sourceFields({ kind: row.source_kind, folder: row.folder, item: row.item_id }),
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
