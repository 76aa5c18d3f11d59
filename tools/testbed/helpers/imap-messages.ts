/**
 * IMAP-shaped test messages for the source-neutral spool: folder, UIDVALIDITY and UID in, the
 * neutral location and cursor out (src/imap/imap-location.ts), as the IMAP adapter hands them over.
 */
import { imapCursorPosition, imapLocation, parseImapCursor, parseImapItem, type ImapCursor, type ImapLocation } from "../../../src/imap/imap-location.js";
import type { FetchedMessage, StreamedMessage } from "../../../src/interfaces.js";
import type { MessageLocation } from "../../../src/source/message-location.js";
import type { Spool } from "../../../src/spool/spool.js";

export type Imap<M> = ImapLocation & Omit<M, "location" | "cursor">;

/** A message at folder/UIDVALIDITY/UID, moving the folder's cursor to its UID. */
export function imap(message: Imap<FetchedMessage>): FetchedMessage;
export function imap(message: Imap<StreamedMessage>): StreamedMessage;
export function imap(message: Imap<FetchedMessage> | Imap<StreamedMessage>): FetchedMessage | StreamedMessage {
  const { folder, uidValidity, uid, ...rest } = message;
  return { ...rest, location: imapLocation({ folder, uidValidity, uid }), cursor: imapCursorPosition({ uidValidity, lastUid: uid }) } as
    FetchedMessage | StreamedMessage;
}

/** The folder's IMAP cursor as the spool holds it. */
export async function imapCursor(spool: Spool, queue: string, folder: string): Promise<ImapCursor | undefined> {
  return parseImapCursor(await spool.cursor(queue, "imap", folder));
}

/** The UID of an IMAP location. */
export function uidOf(item: { readonly location: MessageLocation } | { readonly item: string }): number {
  return parseImapItem("location" in item ? item.location.item : item.item)!.uid;
}

/** The UIDVALIDITY of an IMAP location. */
export function uidValidityOf(item: { readonly location: MessageLocation }): string {
  return parseImapItem(item.location.item)!.uidValidity;
}

/** spool.accept() of an IMAP-shaped message. */
export function acceptImap(
  spool: Spool,
  queue: Parameters<Spool["accept"]>[0],
  options: Parameters<Spool["accept"]>[1],
  message: Imap<FetchedMessage> | Imap<StreamedMessage>,
): ReturnType<Spool["accept"]> {
  return spool.accept(queue, options, imap(message as Imap<FetchedMessage>));
}
