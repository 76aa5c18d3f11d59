/**
 * The fingerprint of a message's content, as a person reads it: the stable id
 * (src/spool/stable-id.ts) is derived from it.
 *
 * It must tell apart two messages that differ in anything a person reads, and must not tell
 * apart two renderings of one message. So it is taken from the decoded message, never from
 * its bytes: boundaries, transfer encodings (base64, quoted-printable), charsets, header
 * folding and line ends do not reach it. What it covers:
 * - Message-ID, Date (as an instant), Subject (decoded, whitespace collapsed);
 * - the addresses of From, To, Cc and Reply-To (lower-cased, in sorted order; display names
 *   are left out, as a re-rendering may quote or encode them differently);
 * - the body: the HTML when there is one, else the text, whitespace collapsed (Exchange may
 *   add a text alternative of its own to an HTML message when it renders it);
 * - every attachment's decoded bytes (sha256), in sorted order.
 * Trace headers (Received, Delivered-To, Return-Path) are left out: one message that reached
 * the mailbox by two routes is the same message.
 */
import { createHash } from "node:crypto";
import type { Address } from "../interfaces.js";

export interface FingerprintedContent {
  readonly messageId?: string;
  /** ISO 8601 */
  readonly date?: string;
  readonly from: readonly Address[];
  readonly to: readonly Address[];
  readonly cc: readonly Address[];
  readonly replyTo: readonly Address[];
  readonly subject?: string;
  readonly text?: string;
  readonly html?: string;
  readonly attachments: ReadonlyArray<{ readonly sha256: string }>;
}

/** Bumped whenever what the fingerprint covers changes: ids already handed out stay in the spool. */
const VERSION = "2";

export function contentFingerprint(content: FingerprintedContent): string {
  const hash = createHash("sha256");
  const field = (name: string, value: string) => hash.update(`${name}:${Buffer.byteLength(value)}:`).update(value);
  field("version", VERSION);
  field("message-id", (content.messageId ?? "").trim().replace(/^<|>$/g, "").toLowerCase());
  field("date", content.date ?? "");
  field("subject", collapse(content.subject ?? ""));
  for (const [name, list] of [
    ["from", content.from],
    ["to", content.to],
    ["cc", content.cc],
    ["reply-to", content.replyTo],
  ] as const) {
    field(
      name,
      list
        .map((a) => a.address.trim().toLowerCase())
        .sort()
        .join(","),
    );
  }
  if (content.html !== undefined) field("html", collapse(content.html));
  else field("text", collapse(content.text ?? ""));
  field(
    "attachments",
    content.attachments
      .map((a) => a.sha256)
      .sort()
      .join(","),
  );
  return hash.digest("hex");
}

/** NFC, every run of whitespace one space, none at either end. */
function collapse(value: string): string {
  return value.normalize("NFC").replace(/\s+/g, " ").trim();
}
