/**
 * The spool: where a fetched message becomes durable before anything else happens to it.
 *
 * accept() writes the raw message through the RawMessageStore (durable), then records, through
 * MessageStore.commit in one transaction, the message, one pending delivery per handler, the
 * owed server action and the folder's cursor. Only after that commit may the server-side copy
 * be touched or the next message be fetched, so a crash at any instant costs a re-fetch, never
 * a message.
 *
 * A message's place in the spool is its source location (src/spool/stable-id.ts spoolKey):
 * "already spooled?" is asked of the location, never of the content, so two different
 * messages are never taken for one. Its stable id, the key handlers see, comes later from its
 * parsed content (assignStableId); a copy whose content was spooled before is recognised then
 * and its deliveries end as 'repeat'.
 * Locations and cursors are source-neutral (src/source/message-location.ts): a source kind, a
 * folder, an item id and a cursor position only the source's adapter reads.
 * Handlers are fed from here, independently of the mail source.
 *
 * What is kept where is the state store's business (src/store/ports.ts): this class is the
 * domain over its message ports (the commit line, the size cap's dead letters, the cursor
 * rewind of a retried headers-only message, scratch directories), with no SQL and no files of
 * its own but the scratch ones.
 */
import { randomBytes } from "node:crypto";
import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import type { FetchedMessage, QueueIdentity, StreamedMessage } from "../interfaces.js";
import type { OwedAction, SourceKind } from "../source/message-location.js";
import { sourceFields, type SourceFields } from "../source/source-fields.js";
import { cursorBefore } from "../source/source-kinds.js";
import type {
  CommitEntry,
  DeadLetterRecord,
  DueDelivery,
  MessageEntry,
  PrunableMessage,
  QueueTotals,
  StableIdAssignment,
  StateStore,
  WrittenRaw,
} from "../store/ports.js";
import { MailfetchdError } from "../errors.js";
import { StreamSourceError } from "./spool-file-writer.js";
import { HEADER_SCAN_LIMIT, headerMessageId, spoolKey, stableIdFromHeaders } from "./stable-id.js";

export type { DueDelivery, QueueTotals, StableIdAssignment };

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

/** The ports the spool works over. */
export type SpoolStore = Pick<StateStore, "messages" | "deliveries" | "serverActions" | "deadLetters" | "retention" | "raw">;

interface LineEntry {
  readonly outcome: Promise<boolean>;
  readonly settle: (isNew: boolean) => void;
  readonly fail: (error: unknown) => void;
  /** Set once the message's bytes are durable: what to record (in the commit transaction). */
  record?: CommitEntry;
}

const WRITE_FIX = "Free space or fix permissions on the state directory; fetching resumes by itself and nothing is touched on the server meanwhile.";

/** The store's own fix when it gave one (PostgreSQL unreachable, a queue fenced off), else the disk's. */
function fixFor(cause: unknown): string {
  return cause instanceof MailfetchdError && cause.fix ? cause.fix : WRITE_FIX;
}

/** A scratch directory this old is left from a crash: no parse and delivery takes an hour. */
const STALE_SCRATCH_MS = 60 * 60 * 1000;

export class Spool {
  /** Big attachments written while parsing, one directory per delivery round (derived data). */
  private readonly scratchRoot: string;
  /** Per queue, the accepts not yet committed, in call order. */
  private readonly commitLines = new Map<string, LineEntry[]>();
  private commitScheduled = false;
  /** The commit under way: one at a time, so groups reach the store in line order. */
  private committing = false;

  constructor(
    private readonly store: SpoolStore,
    stateDir: string,
  ) {
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
        await rm(scratch, { recursive: true, force: true }).then(
          () => removed++,
          () => undefined,
        );
      }
    }
    return removed;
  }

  /** The folder's cursor position, opaque to all but the source's adapter; undefined before its first sync. */
  cursor(queue: string, kind: SourceKind, folder: string): Promise<string | undefined> {
    return this.store.messages.cursor(queue, kind, folder);
  }

  /** The folder starts over at `position` (IMAP: a new UIDVALIDITY, read from UID 1); repeats are recognised by content. */
  restartCursor(queue: string, kind: SourceKind, folder: string, position: string): Promise<void> {
    return this.store.messages.restartCursor(queue, kind, folder, position);
  }

  /**
   * Commits a cursor position after every message of the queue accepted before this call,
   * in the same transaction as the last of them when they commit together. Resolves once it is
   * durable; rejects (and moves nothing) when an earlier accept failed.
   */
  async advanceCursor(queue: string, kind: SourceKind, folder: string, position: string): Promise<void> {
    const entry = this.lineUp(queue);
    entry.record = { type: "cursor", queue, kind, folder, position };
    this.scheduleCommit();
    await entry.outcome;
  }

  /**
   * Makes a message durable: its bytes first, then its row, its deliveries, the owed server
   * action and the cursor, in one transaction. Resolves only once both are durable.
   *
   * Several accepts may be in flight at once (the mailbox does not wait for one before handing
   * over the next): their bytes are written concurrently, and their rows are committed in
   * groups, one transaction (one fsync) for every message whose bytes are durable, in the order
   * accept() was called per queue. A message never commits before an earlier one of its queue,
   * and one that fails takes the later ones with it, so the cursor never passes a message that
   * is not durable.
   */
  async accept(queue: QueueIdentity, options: AcceptOptions, message: FetchedMessage | StreamedMessage): Promise<AcceptResult> {
    const entry = this.lineUp(queue.name);
    const { location } = message;
    const key = spoolKey(queue.name, location);
    let written: WrittenRaw | undefined;
    try {
      written = (await this.store.messages.isSpooled(queue.name, location))
        ? await skip(message)
        : await this.store.raw.write(queue.name, key, "content" in message ? message.content : message.raw, HEADER_SCAN_LIMIT);
    } catch (cause) {
      // The download broke, not the disk: the IMAP error goes up as it is.
      const error =
        cause instanceof StreamSourceError
          ? cause.cause
          : new MailfetchdError(`Cannot write to the spool of queue ${queue.name}: ${describeCause(cause)}.`, {
              code: "SPOOL_WRITE_FAILED",
              retryable: true,
              fix: fixFor(cause),
              cause,
            });
      this.failFrom(queue.name, entry, error);
      throw error;
    }
    entry.record = this.entryFor(queue, key, options, message, written);
    this.scheduleCommit();
    return { key, isNew: await entry.outcome };
  }

  /** What commit records for an accepted message; `written` is undefined when its location was spooled before. */
  private entryFor(
    queue: QueueIdentity,
    key: string,
    options: AcceptOptions,
    message: FetchedMessage | StreamedMessage,
    written: WrittenRaw | undefined,
  ): MessageEntry {
    const head = written?.head ?? Buffer.alloc(0);
    const headerId = written && headerMessageId(head);
    return {
      type: "message",
      queue: queue.name,
      key,
      location: message.location,
      written: written !== undefined,
      size: message.size,
      ...(message.internalDate ? { internalDate: message.internalDate.getTime() } : {}),
      ...(headerId ? { headerMessageId: headerId } : {}),
      contentSha256: written?.sha256 ?? "",
      handlers: options.handlers,
      // A message too large to download is parked at once: handlers cannot have it, an operator must decide.
      ...(message.tooLarge
        ? {
            headersOnly: {
              stableId: stableIdFromHeaders(queue.address, head, message.size),
              reason: message.tooLarge.reason ?? tooLargeReason(message.size, message.tooLarge.limit),
            },
          }
        : {}),
      // The server copy of a message that was not downloaded is left alone. Any other is
      // durable by now: written above, or spooled from this very location before.
      ...(options.serverAction && !message.tooLarge ? { serverAction: options.serverAction } : {}),
      ...(message.cursor !== undefined ? { cursor: message.cursor } : {}),
    };
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
    if (this.commitScheduled || this.committing) return;
    this.commitScheduled = true;
    // The next turn of the event loop: files finishing meanwhile join the same transaction.
    setImmediate(() => {
      this.commitScheduled = false;
      void this.commitReady();
    });
  }

  /**
   * Commits, in one transaction, every queue's longest run of entries whose bytes are durable.
   * Entries that become ready while it runs wait for the next group: one commit at a time keeps
   * a queue's groups in line order on a store that answers asynchronously.
   */
  private async commitReady(): Promise<void> {
    const ready: Array<{ queue: string; entry: LineEntry & { record: CommitEntry } }> = [];
    for (const [queue, line] of this.commitLines) {
      let count = 0;
      while (count < line.length && line[count]!.record) count++;
      for (const entry of line.splice(0, count)) ready.push({ queue, entry: entry as LineEntry & { record: CommitEntry } });
      if (line.length === 0) this.commitLines.delete(queue);
    }
    if (ready.length === 0) return;
    this.committing = true;
    try {
      await this.commitGroup(ready, true);
    } finally {
      this.committing = false;
    }
    if ([...this.commitLines.values()].some((line) => line[0]?.record)) this.scheduleCommit();
  }

  /**
   * One transaction for the group. When a shared store refuses it because this replica lost
   * one of its queues (STATE_FENCED), each queue's entries are committed on their own: the
   * queues it still holds must not fail (and back off) for another queue's lost lease.
   */
  private async commitGroup(ready: ReadonlyArray<{ queue: string; entry: LineEntry & { record: CommitEntry } }>, split: boolean): Promise<void> {
    try {
      const results = await this.store.messages.commit(ready.map(({ entry }) => entry.record));
      ready.forEach(({ entry }, index) => entry.settle(results[index]!));
    } catch (cause) {
      const queues = [...new Set(ready.map((r) => r.queue))];
      if (split && queues.length > 1 && cause instanceof MailfetchdError && cause.code === "STATE_FENCED") {
        for (const queue of queues)
          await this.commitGroup(
            ready.filter((r) => r.queue === queue),
            false,
          );
        return;
      }
      const error = new MailfetchdError(`Cannot record a message in the state store: ${describeCause(cause)}.`, {
        code: "SPOOL_WRITE_FAILED",
        retryable: true,
        fix: fixFor(cause),
        cause,
      });
      for (const { queue, entry } of ready) {
        entry.fail(error);
        const line = this.commitLines.get(queue);
        if (line) this.failFrom(queue, line[0]!, error);
      }
    }
  }

  /**
   * Gives a parsed message its stable id, once (an id handed out never changes), and tells
   * whether another message of the queue with the same content already has its id: then this
   * one is a copy served again (after a UIDVALIDITY change, or the same message twice in the
   * mailbox), its deliveries end as 'repeat', and the other, under the same id, is what
   * handlers get. Whichever copy is given its id first is the one delivered (two copies parsed
   * side by side are told apart by the store, in one transaction, not by their spool order).
   */
  assignStableId(queue: string, delivery: Pick<DueDelivery, "seq" | "contentSha256">, contentId: string): Promise<StableIdAssignment> {
    return this.store.messages.assignStableId(queue, delivery.seq, delivery.contentSha256, contentId);
  }

  /** A local file holding a spooled message's raw bytes (for a parser that reads files); release it when done. */
  rawFile(queue: string, key: string): Promise<{ readonly path: string; release(): Promise<void> }> {
    return this.store.raw.localFile(queue, key);
  }

  readRaw(queue: string, key: string): Promise<Buffer> {
    return this.store.raw.read(queue, key);
  }

  /** Server-side actions still owed in this folder (from this session, or one a crash cut short), in the order they were owed. */
  pendingServerActions(queue: string, kind: SourceKind, folder: string): Promise<OwedAction[]> {
    return this.store.serverActions.pending(queue, kind, folder);
  }

  /** These owed actions are done, or can no longer be taken; returns how many were removed. */
  serverActionsDone(queue: string, kind: SourceKind, folder: string, items: readonly string[]): Promise<number> {
    return this.store.serverActions.done(queue, kind, folder, items);
  }

  /** Deliveries whose time has come, oldest message first. */
  dueDeliveries(queue: string, now: number, limit: number): Promise<DueDelivery[]> {
    return this.store.deliveries.due(queue, now, limit);
  }

  /** When the next pending delivery of this queue falls due, if any is pending. */
  nextDueAt(queue: string): Promise<number | undefined> {
    return this.store.deliveries.nextDueAt(queue);
  }

  backlog(queue: string): Promise<number> {
    return this.store.deliveries.backlog(queue);
  }

  markDelivered(seq: number, handler: string): Promise<void> {
    return this.store.deliveries.markDelivered([{ seq, handler }]);
  }

  /** Several deliveries done, in one transaction (one fsync). */
  markDeliveredMany(deliveries: ReadonlyArray<{ readonly seq: number; readonly handler: string }>): Promise<void> {
    return this.store.deliveries.markDelivered(deliveries);
  }

  markRetry(seq: number, handler: string, error: string, nextAttemptAt: number): Promise<void> {
    return this.store.deliveries.markRetry(seq, handler, error, nextAttemptAt);
  }

  markDead(seq: number, handler: string, error: string): Promise<void> {
    return this.store.deliveries.markDead(seq, handler, error);
  }

  async deadLetters(queue?: string): Promise<DeadLetter[]> {
    return (await this.store.deadLetters.list(queue)).map(toDeadLetter);
  }

  deadLetterCount(queue: string): Promise<number> {
    return this.store.deadLetters.count(queue);
  }

  /**
   * Puts a dead letter back in line (all its dead handlers, or one). A message that was too
   * large to download is marked to be fetched again instead, and its folder's cursor rewound to
   * just before it (src/source/source-kinds.ts cursorBefore), so the next fetch downloads it
   * (under a raised maxMessageSize) into the same row, under the same id; the messages behind
   * it are recognised by their locations. Returns how many deliveries were requeued or forgotten.
   */
  retryDeadLetter(queue: string, id: string, handler?: string): Promise<number> {
    return this.store.deadLetters.retry(queue, id, handler, cursorBefore);
  }

  /** Gives up on a dead letter for good: it is marked dropped and never delivered. */
  dropDeadLetter(queue: string, id: string, handler?: string): Promise<number> {
    return this.store.deadLetters.drop(queue, id, handler);
  }

  /**
   * Messages spooled before `before` whose every delivery is done (delivered or dropped) and
   * whose bytes are still kept. Dead letters and pending deliveries are never prunable.
   */
  prunable(before: number, limit: number): Promise<PrunableMessage[]> {
    return this.store.retention.prunable(before, limit);
  }

  /** Removes a delivered message's raw bytes; its row stays as a tombstone. */
  async prune(message: PrunableMessage): Promise<void> {
    await this.store.raw.remove(message.queue, message.key);
    await this.store.retention.markPruned(message.seq);
  }

  /** Forgets pruned messages' rows (and their deliveries) spooled before `before`. */
  forget(before: number): Promise<number> {
    return this.store.retention.forget(before);
  }

  /** Bytes of raw messages held in the spool for a queue (not yet pruned). */
  async diskUsage(queue: string): Promise<number> {
    return (await this.store.retention.totals()).get(queue)?.spoolBytes ?? 0;
  }

  /** backlog, deadLetterCount and diskUsage of every queue, in a few grouped queries (never one per queue). */
  queueTotals(): Promise<Map<string, QueueTotals>> {
    return this.store.retention.totals();
  }
}

/** A location spooled before: nothing to write (a stream is drained, as the download expects). */
/**
 * A message already spooled: its bytes are not needed. A stream that is a live transfer (a
 * Readable: IMAP's download is under way on the connection) is read to its end, so the
 * connection stays in step; a lazy one that has not started (Graph's $value, requested when
 * first read) is closed without being read, so nothing is downloaded again.
 */
async function skip(message: FetchedMessage | StreamedMessage): Promise<undefined> {
  if (!("content" in message)) return undefined;
  try {
    if (message.content instanceof Readable) {
      for await (const chunk of message.content) void chunk;
    } else {
      await message.content[Symbol.asyncIterator]().return?.();
    }
  } catch (error) {
    throw new StreamSourceError(error);
  }
  return undefined;
}

function describeCause(cause: unknown): string {
  if (cause instanceof MailfetchdError) return cause.message;
  return String((cause as NodeJS.ErrnoException).code ?? cause);
}

export interface DeadLetter {
  readonly queue: string;
  /** The stable id. */
  readonly id: string;
  /** Names the raw bytes (readRaw). */
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

function toDeadLetter(record: DeadLetterRecord): DeadLetter {
  const { location, ...rest } = record;
  return { ...rest, source: sourceFields(location) };
}

export function tooLargeReason(size: number, limit: number): string {
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `message is ${mb(size)}, above the queue's maxMessageSize of ${mb(limit)}: it was not downloaded and stays on the server untouched. Handle it in the mailbox, or raise maxMessageSize and run \`mailfetchd deadletters retry\` for it.`;
}
