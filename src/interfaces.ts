/**
 * The public types of mailfetchd's subsystems, in one place.
 *
 * The daemon is a pipeline per queue mailbox:
 *   TokenProvider -> MailboxSource (IMAP) -> Spool (durable) -> Parser -> Handler(s)
 * The composition root (src/app.ts) wires one of each per queue.
 */
import type { Logger } from "pino";

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
// Mailbox (IMAP)

/** Where a message sits on the server. UIDs mean nothing without their UIDVALIDITY. */
export interface ServerLocation {
  readonly folder: string;
  readonly uidValidity: string; // a 32-bit unsigned on the wire; kept as a decimal string
  readonly uid: number;
}

export interface FetchedMessage extends ServerLocation {
  readonly size: number;
  readonly internalDate?: Date;
  /** The whole message; only its header block when `tooLarge` is set. */
  readonly raw: Buffer;
  /** Set when the message was above the queue's size cap and was not downloaded. */
  readonly tooLarge?: { readonly limit: number };
}

/** A change on the server owed for a message that is durably spooled. */
export interface ServerAction {
  readonly uid: number;
  readonly action: "seen" | "move" | "delete";
  readonly target?: string;
}

export interface FolderState {
  readonly folder: string;
  readonly uidValidity: string;
  readonly uidNext?: number;
}

/** The server-side cursor of one queue folder: the highest UID durably spooled. */
export interface Cursor {
  readonly uidValidity: string;
  readonly lastUid: number;
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
  readonly content: Buffer;
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
}

export interface MessageParser {
  parse(raw: Buffer): Promise<ParsedMessage>;
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
  readonly source: ServerLocation;
  readonly size: number;
  readonly internalDate?: Date;
  readonly spooledAt: Date;
}

/** What a handler is given. */
export interface DeliverableMessage {
  readonly id: string;
  readonly queue: QueueIdentity;
  readonly source: ServerLocation;
  readonly internalDate?: Date;
  readonly raw: Buffer;
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
}
