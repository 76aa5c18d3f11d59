/**
 * IMAP's side of the source-neutral location and cursor: a message is UIDVALIDITY + UID, a
 * folder's cursor UIDVALIDITY + the highest UID durably spooled. Only the IMAP adapter (and the
 * public output, which keeps IMAP's own fields for IMAP queues) reads them; everything else
 * stores and compares the encoded text.
 *
 * Item "<uidValidity>:<uid>", cursor "<uidValidity>:<lastUid>", both in decimal: UIDVALIDITY
 * and UID are 32-bit unsigned on the wire (RFC 3501), so neither contains a ':'.
 */
import type { MessageLocation } from "../source/message-location.js";

/** Where a message sits on an IMAP server. UIDs mean nothing without their UIDVALIDITY. */
export interface ImapLocation {
  readonly folder: string;
  readonly uidValidity: string; // a 32-bit unsigned on the wire; kept as a decimal string
  readonly uid: number;
}

/** The cursor of one queue folder: the highest UID durably spooled under its UIDVALIDITY. */
export interface ImapCursor {
  readonly uidValidity: string;
  readonly lastUid: number;
}

export interface ImapFolderState {
  readonly folder: string;
  readonly uidValidity: string;
  readonly uidNext?: number;
}

export function imapItem(uidValidity: string, uid: number): string {
  return `${uidValidity}:${uid}`;
}

export function imapLocation(location: ImapLocation): MessageLocation {
  return { kind: "imap", folder: location.folder, item: imapItem(location.uidValidity, location.uid) };
}

/** UIDVALIDITY and UID of an IMAP item id; undefined for anything else. */
export function parseImapItem(item: string): { readonly uidValidity: string; readonly uid: number } | undefined {
  const parts = decimalPair(item);
  return parts && { uidValidity: parts[0], uid: Number(parts[1]) };
}

export function imapCursorPosition(cursor: ImapCursor): string {
  return `${cursor.uidValidity}:${cursor.lastUid}`;
}

/** The cursor a stored position encodes; undefined for anything else (the folder is then read from UID 1). */
export function parseImapCursor(position: string | undefined): ImapCursor | undefined {
  const parts = position === undefined ? undefined : decimalPair(position);
  return parts && { uidValidity: parts[0], lastUid: Number(parts[1]) };
}

/**
 * The cursor that makes the next sync fetch `item` again (a dead letter too large to download,
 * retried under a raised size cap): just below it, when the cursor is past it under the same
 * UIDVALIDITY; undefined when the cursor need not move.
 */
export function imapCursorBefore(position: string | undefined, item: string): string | undefined {
  const cursor = parseImapCursor(position);
  const location = parseImapItem(item);
  if (!cursor || !location || cursor.uidValidity !== location.uidValidity || cursor.lastUid < location.uid) return undefined;
  return imapCursorPosition({ uidValidity: cursor.uidValidity, lastUid: location.uid - 1 });
}

function decimalPair(text: string): [string, string] | undefined {
  const match = /^(\d{1,10}):(\d{1,10})$/.exec(text);
  return match ? [match[1]!, match[2]!] : undefined;
}
