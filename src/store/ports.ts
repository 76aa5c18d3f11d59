/**
 * The state-store ports: everything the daemon keeps between two runs, behind async interfaces
 * that expose no connection, statement or transaction type. SQLite on local disk is the default
 * adapter (src/store/sqlite/); PostgreSQL, shared by several replicas, is the second. Every
 * adapter passes one conformance suite (test/store/conformance.ts).
 *
 * What stays in the domain, above the ports: the spool's commit line (which accepts commit
 * together and in what order, src/spool/spool.ts), sealing token caches (src/tokens/), the
 * stable id's computation (src/spool/stable-id.ts). What an adapter owns: atomicity (each method
 * is one transaction, `MessageStore.commit` one for all its entries), durability (a resolved
 * write survives a crash), and, for a shared store, refusing writes to a queue this process
 * no longer owns.
 *
 * Errors: an adapter rejects with a MailfetchdError. `STATE_UNAVAILABLE` (retryable: the store
 * cannot be reached or written, e.g. disk full, PostgreSQL down) and `STATE_FENCED` (not
 * retryable on this replica: another replica owns the queue now; its pipeline stops here).
 */
import type { MessageLocation, OwedAction, SourceKind } from "../source/message-location.js";

// ---------------------------------------------------------------------------------------------
// Messages, cursors, stable ids

/** A message whose raw bytes are durable (RawMessageStore.write resolved), to be recorded. */
export interface MessageEntry {
  readonly type: "message";
  readonly queue: string;
  /** The spool key (src/spool/stable-id.ts spoolKey): names the raw bytes. */
  readonly key: string;
  readonly location: MessageLocation;
  /**
   * False when the location was already spooled and nothing was written this time (a re-fetch
   * after a cursor rewind): no row is created, only the owed action and the cursor are recorded.
   */
  readonly written: boolean;
  readonly size: number;
  readonly internalDate?: number;
  readonly headerMessageId?: string;
  readonly contentSha256: string;
  /** One pending delivery per handler name. */
  readonly handlers: readonly string[];
  /**
   * Set for a message above the size cap (only its headers are kept): its stable id, given at
   * once (from its headers and size), and the reason every delivery is dead from the start.
   */
  readonly headersOnly?: { readonly stableId: string; readonly reason: string };
  /** Owed on the server now that the message is durable. */
  readonly serverAction?: Omit<OwedAction, "item">;
  /** The folder's cursor after this message. */
  readonly cursor?: string;
}

/** A cursor position committed after the entries before it. */
export interface CursorEntry {
  readonly type: "cursor";
  readonly queue: string;
  readonly kind: SourceKind;
  readonly folder: string;
  readonly position: string;
}

export type CommitEntry = MessageEntry | CursorEntry;

export interface StableIdAssignment {
  readonly stableId: string;
  /** The seq of the message with the same content that is delivered instead, when this one is a repeat of it. */
  readonly repeatOf?: number;
}

export interface MessageStore {
  /** Whether this location has a row (and is not waiting to be fetched again after a dead letter retry). */
  isSpooled(queue: string, location: MessageLocation): Promise<boolean>;
  /**
   * Records every entry, in order, in one transaction: all or none. Per entry, whether it created
   * a row (or took over a row waiting to be fetched again, keeping its stable id); false for a
   * cursor entry and for a location already spooled. The owed action is recorded once per
   * location (a second one is ignored).
   */
  commit(entries: readonly CommitEntry[]): Promise<boolean[]>;
  /** The folder's cursor position, opaque to all but the source's adapter; undefined before its first sync. */
  cursor(queue: string, kind: SourceKind, folder: string): Promise<string | undefined>;
  /** Sets the cursor outright (IMAP: a new UIDVALIDITY; Graph: an expired delta link). */
  restartCursor(queue: string, kind: SourceKind, folder: string, position: string): Promise<void>;
  /**
   * Gives message `seq` its stable id, once (an id handed out never changes). When another
   * message of the queue (not headers-only) already has the same content (same sha256, or same
   * content id), this one takes that message's id, its pending deliveries end as 'repeat', and
   * `repeatOf` names the other. One transaction: of two copies, the first assigned wins.
   */
  assignStableId(queue: string, seq: number, contentSha256: string, contentId: string): Promise<StableIdAssignment>;
}

// ---------------------------------------------------------------------------------------------
// Deliveries

export interface DueDelivery {
  readonly seq: number;
  /** Names the raw bytes. */
  readonly spoolKey: string;
  /** Undefined until the message is first parsed (assignStableId). */
  readonly stableId?: string;
  readonly contentSha256: string;
  readonly handler: string;
  readonly attempts: number;
  readonly location: MessageLocation;
  readonly internalDate?: Date;
  /** Bytes: how much parsing ahead would hold in memory. */
  readonly size: number;
}

export interface DeliveryStore {
  /** Pending deliveries whose time has come, oldest message first, then by handler. */
  due(queue: string, now: number, limit: number): Promise<DueDelivery[]>;
  /** When the next pending delivery of this queue falls due, if any is pending. */
  nextDueAt(queue: string): Promise<number | undefined>;
  /** Pending deliveries of the queue. */
  backlog(queue: string): Promise<number>;
  /** These deliveries are done (one transaction). */
  markDelivered(deliveries: ReadonlyArray<{ readonly seq: number; readonly handler: string }>): Promise<void>;
  markRetry(seq: number, handler: string, error: string, nextAttemptAt: number): Promise<void>;
  markDead(seq: number, handler: string, error: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// The outbox of server-side actions

export interface ServerActionStore {
  /** Owed actions of the folder, in the order they were owed. */
  pending(queue: string, kind: SourceKind, folder: string): Promise<OwedAction[]>;
  /** These are done or can no longer be taken; returns how many were removed. */
  done(queue: string, kind: SourceKind, folder: string, items: readonly string[]): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// Dead letters

export interface DeadLetterRecord {
  readonly queue: string;
  /** The stable id (the spool key while the message has none). */
  readonly id: string;
  readonly spoolKey: string;
  readonly handler: string;
  readonly attempts: number;
  readonly reason: string;
  readonly location: MessageLocation;
  readonly size: number;
  readonly spooledAt: Date;
  readonly headerMessageId?: string;
  readonly headersOnly: boolean;
}

export interface DeadLetterStore {
  list(queue?: string): Promise<DeadLetterRecord[]>;
  count(queue: string): Promise<number>;
  /**
   * Puts the dead deliveries of the messages named by `id` (stable id or spool key) back in line
   * (all handlers, or one). A headers-only message is marked to be fetched again instead, its
   * deliveries removed and its folder's cursor rewound by `rewind` (src/source/source-kinds.ts
   * cursorBefore), in the same transaction. Returns how many deliveries changed.
   */
  retry(
    queue: string,
    id: string,
    handler: string | undefined,
    rewind: (location: MessageLocation, cursor: string | undefined) => string | undefined,
  ): Promise<number>;
  /** Marks them dropped for good; returns how many. */
  drop(queue: string, id: string, handler?: string): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// Retention and totals

export interface PrunableMessage {
  readonly seq: number;
  readonly queue: string;
  /** The spool key. */
  readonly key: string;
}

export interface QueueTotals {
  /** Pending deliveries. */
  readonly backlog: number;
  readonly deadLetters: number;
  /** Bytes of raw messages not yet pruned. */
  readonly spoolBytes: number;
}

export interface RetentionStore {
  /** Messages spooled before `before` whose every delivery is delivered, dropped or a repeat, raw bytes still kept. */
  prunable(before: number, limit: number): Promise<PrunableMessage[]>;
  /** Their raw bytes are gone; the row stays as a tombstone. */
  markPruned(seq: number): Promise<void>;
  /** Forgets pruned rows (and their deliveries) spooled before `before`; returns how many. */
  forget(before: number): Promise<number>;
  /** Per queue with anything to count, in a few grouped queries (never one per queue). */
  totals(): Promise<Map<string, QueueTotals>>;
  /** Per queue with pending deliveries, when its oldest waiting message was spooled. */
  oldestUndelivered(): Promise<Map<string, Date>>;
}

// ---------------------------------------------------------------------------------------------
// Raw message bytes

export interface WrittenRaw {
  /** The first `headLimit` bytes (all of a shorter message). */
  readonly head: Buffer;
  readonly sha256: string;
}

export interface RawMessageStore {
  /**
   * Makes the bytes durable under the key (a stream is consumed as it comes, in bounded
   * memory); resolves once they are. Writing a key again replaces its bytes. A failure of the
   * stream itself rejects with the stream's error wrapped in StreamSourceError
   * (src/spool/spool-file-writer.ts), so the caller can tell a broken download from a broken store.
   */
  write(queue: string, key: string, content: Buffer | AsyncIterable<Buffer>, headLimit: number): Promise<WrittenRaw>;
  read(queue: string, key: string): Promise<Buffer>;
  /** A local file holding the bytes, for a parser that reads files (a remote store makes a scratch copy). */
  localFile(queue: string, key: string): Promise<{ readonly path: string; release(): Promise<void> }>;
  remove(queue: string, key: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Queue status, activity

export type QueueState = "starting" | "ok" | "retrying" | "needs-password" | "needs-sign-in" | "needs-admin" | "misconfigured";

export interface QueueStatus {
  readonly queue: string;
  readonly state: QueueState;
  readonly lastSuccessAt?: Date;
  readonly lastError?: { readonly code: string; readonly message: string; readonly fix?: string; readonly at: Date };
  readonly consecutiveFailures: number;
  readonly tokenExpiresAt?: Date;
  readonly updatedAt: Date;
}

export interface QueueStatusStore {
  get(queue: string): Promise<QueueStatus | undefined>;
  all(): Promise<QueueStatus[]>;
  /** Advisory and frequent (every poll): an adapter may write it without waiting for a flush to disk. */
  recordSuccess(queue: string, at: Date): Promise<void>;
  /** Returns the consecutive failures, this one included. */
  recordFailure(queue: string, state: QueueState, error: { code: string; message: string; fix?: string }, at: Date): Promise<number>;
  recordTokenExpiry(queue: string, expiresOn: Date): Promise<void>;
  /** Forgets queues not in the list. */
  retain(queues: readonly string[]): Promise<void>;
}

export interface HourCounts {
  /** Hours since the epoch (UTC). */
  readonly hour: number;
  readonly queue: string;
  readonly delivered: number;
  readonly deliveryFailures: number;
  readonly fetchFailures: number;
}

export interface ActivityStore {
  /** Adds these counts to the stored ones and forgets hours before `keepFrom` (one transaction). */
  add(counts: readonly HourCounts[], keepFrom: number): Promise<void>;
  /** Stored counts of hours in [from, to]. */
  hours(from: number, to: number): Promise<HourCounts[]>;
}

// ---------------------------------------------------------------------------------------------
// Token caches (sealed by the domain: the store never sees a token)

export interface SealedTokenCache {
  readonly keyId: string;
  readonly sealed: Buffer;
  /** Strictly increasing per queue: the row's version. */
  readonly updatedAt: number;
}

export interface TokenCacheRows {
  read(queue: string): Promise<SealedTokenCache | undefined>;
  /**
   * Writes the sealed cache only while the row is as it was read: absent when `expected` is
   * undefined, else at that version ("any" writes regardless). Returns the new version, or
   * undefined when the row changed meanwhile and nothing was written. The new version is
   * max(now, old + 1).
   */
  write(queue: string, keyId: string, sealed: Buffer, expected: number | undefined | "any"): Promise<number | undefined>;
  remove(queue: string): Promise<boolean>;
  /** Every row's version, in one query. */
  versions(): Promise<Map<string, number>>;
}

// ---------------------------------------------------------------------------------------------
// The whole store

export interface StateStore {
  /** "sqlite" or "postgres": for logs and status. */
  readonly kind: string;
  readonly messages: MessageStore;
  readonly deliveries: DeliveryStore;
  readonly serverActions: ServerActionStore;
  readonly deadLetters: DeadLetterStore;
  readonly retention: RetentionStore;
  readonly raw: RawMessageStore;
  readonly queueStatus: QueueStatusStore;
  readonly activity: ActivityStore;
  readonly tokenCaches: TokenCacheRows;
  /** Rejects (STATE_UNAVAILABLE) when the store cannot be read now: the readiness probe (/readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
