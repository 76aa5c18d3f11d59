/**
 * What a mail source reads from and writes to: the spool, seen from one queue and one source
 * kind, folder by folder. Cursors are opaque text the source alone reads (IMAP: UIDVALIDITY and
 * the last UID spooled; Graph: a deltaLink); items are the source's item ids (MessageLocation).
 * Every method returns a promise: the state store behind it may be remote (src/store/ports.ts).
 */
import type { FetchedMessage, StreamedMessage } from "../interfaces.js";
import type { OwedAction } from "./message-location.js";

/** The reading half: enough to tell whether the spool has everything a source shows. */
export interface SpoolView {
  /** The folder's cursor as last committed; undefined before the folder's first sync. */
  cursor(folder: string): Promise<string | undefined>;
  /** Server-side actions still owed in the folder (from this sync, or one a crash cut short), in the order they were owed. */
  pendingActions(folder: string): Promise<OwedAction[]>;
}

export interface SpoolSink extends SpoolView {
  /**
   * The folder starts over at `position` (IMAP: a new UIDVALIDITY; Graph: an expired delta
   * link). Messages it serves again are recognised by their content, not delivered twice.
   */
  restart(folder: string, position: string): Promise<void>;
  /**
   * Makes the message durable; resolves only when it is. The message's `cursor`, when set, is
   * committed with it. Messages are committed in the order they were accepted.
   */
  accept(message: FetchedMessage | StreamedMessage): Promise<void>;
  /**
   * Commits a cursor position after every message accepted before it (Graph: the deltaLink of
   * a finished round, in the transaction of that round's last messages).
   */
  advance(folder: string, position: string): Promise<void>;
  /** These owed actions are taken. */
  actionsDone(folder: string, items: readonly string[]): Promise<void>;
  /** These owed actions can no longer be taken (their items mean nothing at the source now); returns how many were dropped. */
  dropActions(folder: string, items: readonly string[]): Promise<number>;
}
