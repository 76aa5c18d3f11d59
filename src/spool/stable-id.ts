/**
 * The stable id of a message: the idempotency key every handler sees. It must stay the same
 * across restarts, re-syncs and UIDVALIDITY changes, so it cannot come from the UID.
 *
 * With a Message-ID it is derived from the queue address, the Message-ID, the Date and the
 * From address: headers that survive Exchange re-rendering a message's MIME, where the raw
 * bytes (boundaries, encodings) may not. Without a Message-ID it falls back to the hash of
 * the raw bytes. The queue address is part of it, so one message sent to two queues has two
 * ids (each queue's handlers track their own copy).
 */
import { createHash } from "node:crypto";

export interface MessageIdentity {
  readonly id: string;
  readonly headerMessageId?: string;
  readonly contentSha256: string;
}

/** How many header bytes are examined: enough for any real header block's first fields. */
export const HEADER_SCAN_LIMIT = 256 * 1024;

export function identifyMessage(queueAddress: string, raw: Buffer): MessageIdentity {
  return identifyMessageParts(queueAddress, raw.subarray(0, HEADER_SCAN_LIMIT), createHash("sha256").update(raw).digest("hex"));
}

/**
 * The same identity from what a streamed message leaves behind: its first HEADER_SCAN_LIMIT
 * bytes (or all of it, when shorter) and the sha256 of the whole, computed while writing it.
 */
export function identifyMessageParts(queueAddress: string, head: Buffer, contentSha256: string): MessageIdentity {
  const headers = readHeaders(head);
  const headerMessageId = normaliseMessageId(headers.get("message-id"));
  const material = headerMessageId
    ? ["mid", headerMessageId, normaliseDate(headers.get("date")), normaliseFrom(headers.get("from"))]
    : ["raw", contentSha256];
  const digest = createHash("sha256").update([queueAddress.toLowerCase(), ...material].join("\n")).digest("hex");
  return { id: `m${digest.slice(0, 31)}`, headerMessageId, contentSha256 };
}

/** The first occurrence of each header in the header block, unfolded, names lower-cased. */
export function readHeaders(raw: Buffer): Map<string, string> {
  const text = raw.subarray(0, HEADER_SCAN_LIMIT).toString("latin1");
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

function normaliseMessageId(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const bracketed = /<([^<>\s]+)>/.exec(value);
  const id = (bracketed ? bracketed[1]! : value.trim()).toLowerCase();
  return id.length > 0 ? id : undefined;
}

function normaliseDate(value: string | undefined): string {
  if (!value) return "";
  const time = Date.parse(value.replace(/\s*\([^)]*\)\s*$/, ""));
  return Number.isNaN(time) ? value.replace(/\s+/g, " ").trim() : String(time);
}

function normaliseFrom(value: string | undefined): string {
  if (!value) return "";
  const bracketed = /<([^<>\s]+@[^<>\s]+)>/.exec(value);
  if (bracketed) return bracketed[1]!.toLowerCase();
  const bare = /[^\s<>"]+@[^\s<>"]+/.exec(value);
  return (bare ? bare[0] : value.trim()).toLowerCase();
}
