/**
 * The little the spool must know of each source kind's encodings, in one place: what names a
 * message's spool file, and how to make the next sync fetch one message again. Everything else
 * about a location or cursor is the adapter's business.
 */
import { imapCursorBefore, parseImapItem } from "../imap/imap-location.js";
import type { MessageLocation } from "./message-location.js";

/**
 * The fields a message's spool key is derived from. IMAP keeps the fields it had before
 * locations became source-neutral (folder, UIDVALIDITY, UID), so a spool file written before
 * the upgrade keeps its name when a crash makes the message be fetched again.
 */
export function spoolKeyMaterial(location: MessageLocation): readonly string[] {
  const imap = location.kind === "imap" ? parseImapItem(location.item) : undefined;
  if (imap) return [location.folder, imap.uidValidity, String(imap.uid)];
  return [location.kind, location.folder, location.item];
}

/*
 * Graph: the spool key comes from kind, folder and the immutable id (which survives moves
 * within the mailbox). Its cursor is a delta link, which cannot be moved back to one message:
 * the cursor before a Graph message is the empty position, which makes the next sync read the
 * folder from its start (GRAPH_FULL_ROUND); messages spooled before are skipped by location.
 */
export const GRAPH_FULL_ROUND = "";

/**
 * The cursor position that makes the next sync fetch `location` again, or undefined when the
 * cursor need not (or cannot) move: a source without such a cursor fetches a message marked
 * for re-fetching on its own.
 */
export function cursorBefore(location: MessageLocation, position: string | undefined): string | undefined {
  if (location.kind === "imap") return imapCursorBefore(position, location.item);
  if (location.kind === "graph") return GRAPH_FULL_ROUND;
  return undefined;
}
