/**
 * The public types of mailfetchd's subsystems, in one place.
 *
 * The daemon is a pipeline per queue mailbox:
 *   TokenProvider -> MailSource (IMAP) -> Spool (durable) -> Parser -> Handler(s)
 * The composition root (src/app.ts) wires one of each per queue.
 */
import type { Logger } from "pino";
import type { MessageLocation } from "./source/message-location.js";
import type { SourceFields } from "./source/source-fields.js";

export type { Logger };

// ---------------------------------------------------------------------------
// Tokens

export interface AccessToken {
  /** The bearer token. Never log it. */
  readonly token: string;
  readonly expiresOn: Date;
}

export interface TokenProvider {
  /**
   * An access token for IMAP, from the persisted cache when still valid, refreshed with the
   * persisted refresh token when not, and (where a password is configured) from a fresh
   * password sign-in when there is no usable refresh token.
   */
  getAccessToken(options?: { forceRefresh?: boolean }): Promise<AccessToken>;
}

// ---------------------------------------------------------------------------
// Mail source (src/source/mail-source.ts is the port; IMAP its first adapter)

/** What every message a source hands to the spool carries. */
interface SourcedMessage {
  readonly location: MessageLocation;
  /**
   * The folder's cursor once this message is durable (IMAP: UIDVALIDITY and this UID),
   * committed with it; absent when the message does not move the cursor.
   */
  readonly cursor?: string;
  readonly size: number;
  readonly internalDate?: Date;
}

export interface FetchedMessage extends SourcedMessage {
  /** The whole message; only its header block when `tooLarge` is set. */
  readonly raw: Buffer;
  /**
   * Set when only the header block was kept: the message was above the queue's size cap and was
   * not downloaded, or (`reason`) the source could not serve its body. It is parked as a dead letter.
   */
  readonly tooLarge?: { readonly limit: number; readonly reason?: string };
}

/**
 * A message too big to hold in memory on its way to the spool: `content` is read once, in
 * chunks, straight into a spool file (src/spool/spool.ts); it must be read to its end or the
 * download abandoned.
 */
export interface StreamedMessage extends SourcedMessage {
  readonly content: AsyncIterable<Buffer>;
  readonly tooLarge?: undefined;
}

// ---------------------------------------------------------------------------
// Parsed message: what handlers and agents receive

export interface Address {
  readonly name: string;
  readonly address: string;
}

export interface ParsedAttachment {
  /** Safe file name: nothing a sender writes can escape a directory with it. */
  readonly filename: string;
  /** The name as the sender gave it (decoded), for display only; may be absent. */
  readonly originalFilename?: string;
  readonly contentType: string;
  readonly size: number;
  readonly sha256: string;
  readonly contentId?: string;
  readonly inline: boolean;
  /**
   * The bytes, when held in memory. An attachment above ~1 MB is not: it is in `file`
   * instead (exactly one of the two is set). Read either with src/handlers/attachment-bytes.ts.
   */
  readonly content?: Buffer;
  /**
   * A scratch file holding the bytes of a big attachment, written while parsing. Read-only for
   * handlers, and only during deliver(): it is removed when the delivery round ends.
   */
  readonly file?: string;
  /**
   * Set on a file unpacked from a TNEF container (winmail.dat): the container's safe file
   * name. The container itself stays in the list too (README "TNEF").
   */
  readonly extractedFrom?: string;
}

// What the enrichers (src/enrich/) add to a parsed message. README "What every message carries".

/** Which rule gave the conversation key. */
export type ConversationSource = "references" | "thread-index" | "subject";

export interface Conversation {
  /** "c" + 31 hex digits; the same for the messages of one conversation (README "Conversation key"). */
  readonly key: string;
  readonly source: ConversationSource;
  /** With source "references": the Message-ID the key was derived from (the root of References, else In-Reply-To, else the message's own), lower-cased, without <>. */
  readonly rootMessageId?: string;
  /** The key of the Outlook conversation (first 22 bytes of Thread-Index) when the message has a Thread-Index: joins an Outlook reply that lost its References. */
  readonly threadIndexKey?: string;
  /** The key the subject rule gives (normalised subject + sender), always set: a fallback for clients that drop References. */
  readonly subjectKey: string;
  /** The subject without reply/forward prefixes and ticket tags, whitespace collapsed, lower-cased. */
  readonly normalizedSubject: string;
}

export type MessageKindType = "normal" | "auto-reply" | "bounce" | "calendar";

export interface BounceRecipient {
  readonly address: string;
  /** DSN Action: "failed", "delayed", "delivered", "relayed", "expanded". */
  readonly action?: string;
  /** DSN Status, e.g. "5.1.1". */
  readonly status?: string;
  /** DSN Diagnostic-Code without its type, e.g. "550 5.1.1 User unknown". */
  readonly diagnostic?: string;
}

export interface MessageKind {
  readonly type: MessageKindType;
  /** How sure the type is: "low" when it rests on weak or non-standard markers only. */
  readonly confidence: "high" | "low";
  /** The markers that decided the type, e.g. "Auto-Submitted: auto-replied". */
  readonly reasons: string[];
  /** Never send an automatic reply (acknowledgement, ticket receipt) to this message: loops. */
  readonly suppressAutoReply: boolean;
  readonly bounce?: { readonly recipients: BounceRecipient[]; readonly reportingMta?: string };
  /** iTIP method of the text/calendar part: REQUEST, REPLY, CANCEL, ... */
  readonly calendar?: { readonly method: string };
}

export type MessagePriority = "high" | "normal" | "low";

/** An enricher that failed on this message; the message is delivered without its fields. */
export interface EnrichmentError {
  readonly enricher: string;
  readonly error: string;
}

export interface ParsedMessage {
  readonly messageId?: string;
  /** ISO 8601, from the Date header; absent when missing or unparseable. */
  readonly date?: string;
  readonly from: Address[];
  readonly to: Address[];
  readonly cc: Address[];
  readonly replyTo: Address[];
  readonly subject?: string;
  readonly text?: string;
  readonly html?: string;
  readonly inReplyTo?: string;
  readonly references: string[];
  readonly attachments: ParsedAttachment[];
  /** Set when the MIME could not be parsed fully; the raw message is still delivered. */
  readonly parseError?: string;
  /**
   * Set when the body was parsed (not for a headers-only fallback): the fingerprint of the
   * decoded content that the stable id is derived from (src/parse/content-fingerprint.ts).
   * Internal to the pipeline; handlers are given the id, not this.
   */
  readonly contentFingerprint?: string;

  // Enrichments (src/enrich/). Optional: a message an enricher failed on has no such field,
  // and enrichmentErrors says why.
  readonly conversation?: Conversation;
  readonly kind?: MessageKind;
  /** From X-Priority / Importance / X-MSMail-Priority / Priority; "normal" when none says otherwise. */
  readonly priority?: MessagePriority;
  /** `html` sanitised for display: no scripts, event handlers, forms or remote resources; cid: images point at "attachments/<filename>" (URL-encoded). */
  readonly safeHtml?: string;
  /** Whether sanitising removed remote images, stylesheets or CSS url()s (for a "images blocked" notice). */
  readonly remoteContentBlocked?: boolean;
  /** True when the sender sent only HTML and `text` was converted from it. */
  readonly textFromHtml?: boolean;
  /** `text` without the quoted history (and forwarded messages) when it could be told apart; else the full text. */
  readonly replyText?: string;
  /** False when replyText is the full text because the quoted part could not be separated reliably. */
  readonly replyTextReliable?: boolean;
  readonly enrichmentErrors?: EnrichmentError[];
}

export interface ParseFileOptions {
  /**
   * A directory of this message's own where attachments above ~1 MB are written rather than
   * held in memory (ParsedAttachment.file). The caller removes it after delivery.
   */
  readonly scratchDir?: string;
  /**
   * The queue the message belongs to: a parser shared by queues takes turns between them, so
   * one queue's slow messages cannot keep another's waiting (src/parse/parser-pool.ts).
   */
  readonly queue?: string;
}

export interface MessageParser {
  parse(raw: Buffer): Promise<ParsedMessage>;
  /**
   * Optional: parses a spooled message from its file, so the caller need not hold it in memory
   * meanwhile (src/parse/parser-pool.ts streams it in a worker thread).
   */
  parseFile?(file: string, options?: ParseFileOptions): Promise<ParsedMessage>;
}

// ---------------------------------------------------------------------------
// Spool and delivery

export interface QueueIdentity {
  /** The queue's name in the config; unique. */
  readonly name: string;
  /** The queue mailbox address (the XOAUTH2 user). */
  readonly address: string;
}

/** A message durably in the spool, not yet necessarily delivered. */
export interface SpooledMessage {
  /** The stable id: the idempotency key handlers use to recognise a repeat. */
  readonly id: string;
  readonly queue: string;
  readonly source: SourceFields;
  readonly size: number;
  readonly internalDate?: Date;
  readonly spooledAt: Date;
}

/**
 * A message's raw bytes, byte for byte as the server sent them. Handlers read them when they
 * need them: a 50 MB message is not held in memory for a handler that only copies the file.
 */
export interface RawMessage {
  readonly size: number;
  /**
   * The spool file holding exactly these bytes, durable (fsynced), when there is one. Read-only:
   * it is the spool's. A handler may hard-link it (the directory handler does).
   */
  readonly file?: string;
  /** The whole message in memory. */
  read(): Promise<Buffer>;
}

/** What a handler is given. */
export interface DeliverableMessage {
  readonly id: string;
  readonly queue: QueueIdentity;
  /** Where the message came from: kind, folder, item (and UIDVALIDITY, UID for IMAP). */
  readonly source: SourceFields;
  readonly internalDate?: Date;
  readonly raw: RawMessage;
  readonly parsed: ParsedMessage;
}

export interface DeliveryContext {
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** 1 on the first attempt for this handler and message. */
  readonly attempt: number;
}

/**
 * A handler delivers a message somewhere. It must be idempotent on `message.id`: a message
 * may be delivered more than once (at-least-once), always with the same id.
 * Throw a PermanentError (src/errors.ts) to reject a message for good; any other error is
 * retried with backoff.
 */
export interface Handler {
  readonly name: string;
  deliver(message: DeliverableMessage, context: DeliveryContext): Promise<void>;
  /**
   * Called once when a queue's delivery starts, before anything is due: clears what a crash
   * left (the directory handler's temp dirs). Must not throw; deliveries may start meanwhile.
   */
  start?(queue: QueueIdentity, logger: Logger): Promise<void>;
}
