/**
 * Two keys name a spooled message, and they answer different questions:
 *
 * - The spool key says where a message sits in the spool. It comes from the message's source
 *   location (queue, source kind, folder, item; for IMAP: folder, UIDVALIDITY, UID), so "already
 *   spooled?" is decided by that location and two different messages can never be taken for
 *   one (README "Message ids").
 * - The stable id is the idempotency key every handler sees. It comes from the message's
 *   content, decoded (src/parse/content-fingerprint.ts), so it stays the same when the server
 *   serves the same message again: after a UIDVALIDITY change, after Exchange re-renders its
 *   MIME (other boundaries, transfer encodings, folding, line ends), or when the same message
 *   lands in the mailbox twice. It is computed when the message is first parsed and never
 *   changes after that. The queue address is part of it, so one message sent to two queues
 *   has two ids (each queue's handlers track their own copy).
 */
import { createHash } from "node:crypto";
import type { MessageLocation } from "../source/message-location.js";
import { spoolKeyMaterial } from "../source/source-kinds.js";

/** How many header bytes are examined: enough for any real header block's first fields. */
export const HEADER_SCAN_LIMIT = 256 * 1024;

/** "s" + 31 hex digits: never equal to a stable id ("m" + 31 hex digits). */
export function spoolKey(queue: string, location: MessageLocation): string {
  return `s${digest([queue, ...spoolKeyMaterial(location)]).slice(0, 31)}`;
}

/** The stable id of a parsed message, from its content fingerprint. */
export function stableIdFromContent(queueAddress: string, fingerprint: string): string {
  return stableId(queueAddress, ["content", fingerprint]);
}

/**
 * The stable id a message is given at its first parse: from its content fingerprint when its
 * body was parsed, else from its exact bytes.
 */
export function stableIdOfParsed(queueAddress: string, contentFingerprint: string | undefined, contentSha256: string): string {
  return contentFingerprint === undefined ? stableIdFromBytes(queueAddress, contentSha256) : stableIdFromContent(queueAddress, contentFingerprint);
}

/** The stable id of a message whose body could not be parsed: its exact bytes. */
export function stableIdFromBytes(queueAddress: string, contentSha256: string): string {
  return stableId(queueAddress, ["raw", contentSha256]);
}

/**
 * The stable id of a message above the size cap, of which only the header block was
 * downloaded: every header a person reads, and the size. It stays its id when an operator has
 * it fetched after all (`mailfetchd deadletters retry`).
 */
export function stableIdFromHeaders(queueAddress: string, head: Buffer, size: number): string {
  const headers = readHeaders(head);
  const collapse = (name: string) => (headers.get(name) ?? "").replace(/\s+/g, " ").trim();
  return stableId(queueAddress, ["headers", ...["message-id", "date", "from", "to", "cc", "reply-to", "subject"].map(collapse), String(size)]);
}

/** The Message-ID of the header block, lower-cased, without <>. */
export function headerMessageId(head: Buffer): string | undefined {
  const value = readHeaders(head).get("message-id");
  if (!value) return undefined;
  const bracketed = /<([^<>\s]+)>/.exec(value);
  const id = (bracketed ? bracketed[1]! : value.trim()).toLowerCase();
  return id.length > 0 ? id : undefined;
}

/** The first occurrence of each header in the header block, unfolded, names lower-cased. */
export function readHeaders(raw: Buffer): Map<string, string> {
  // Only the header block is decoded: the head the spool hands over is up to 256 KB, and
  // decoding all of it cost ~1.2 ms of the event loop per message (issue 17).
  const text = raw.subarray(0, headerBlockEnd(raw)).toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  const block = end === -1 ? text : text.slice(0, end);
  const headers = new Map<string, string>();
  for (const field of block.replace(/\r?\n[ \t]/g, " ").split(/\r?\n/)) {
    const colon = field.indexOf(":");
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, field.slice(colon + 1).trim());
  }
  return headers;
}

/** Where the blank line ending the header block starts (its first line end), else the scan limit. */
function headerBlockEnd(raw: Buffer): number {
  const scanned = raw.subarray(0, HEADER_SCAN_LIMIT);
  const lf = scanned.indexOf("\n\n");
  const crlf = scanned.indexOf("\n\r\n");
  if (lf === -1 && crlf === -1) return scanned.length;
  return lf === -1 ? crlf : crlf === -1 ? lf : Math.min(lf, crlf);
}

function stableId(queueAddress: string, material: readonly string[]): string {
  return `m${digest([queueAddress.toLowerCase(), ...material]).slice(0, 31)}`;
}

/** Length-prefixed, so no choice of field values can make two different lists hash alike. */
function digest(fields: readonly string[]): string {
  const hash = createHash("sha256");
  for (const field of fields) hash.update(`${Buffer.byteLength(field)}:`).update(field);
  return hash.digest("hex");
}
