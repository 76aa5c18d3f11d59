/**
 * What a webhook POSTs for a message: the body in either format, and metadata headers sent
 * with both.
 *
 *   json: the message document the directory handler writes as message.json
 *         (schema "mailfetchd.message/1"), with each attachment's bytes inline as base64 in
 *         `content` when it is at most `inlineAttachmentsUpTo` bytes. A larger attachment is
 *         sent by reference: `content` is null and `filename`, `contentType`, `size` and
 *         `sha256` identify it inside the raw MIME (which a `format: raw` webhook or a
 *         directory handler on the same queue delivers). `rawPath` and `path` are null:
 *         nothing is stored on the receiver's side.
 *   raw:  the message's raw MIME, byte for byte, as message/rfc822.
 */
import type { DeliverableMessage } from "../interfaces.js";
import { attachmentBytes } from "./attachment-bytes.js";
import { toMessageDocument, type MessageDocument, type MessageDocumentAttachment } from "./message-document.js";
import { boundMetadata } from "./metadata-bounds.js";
import { headerValue } from "./printable.js";

export type WebhookFormat = "json" | "raw";

export interface WebhookAttachment extends MessageDocumentAttachment {
  /** The attachment's bytes in base64; null when larger than the inline limit (sent by reference). */
  readonly content: string | null;
}

export interface WebhookMessageDocument extends Omit<MessageDocument, "attachments"> {
  readonly attachments: WebhookAttachment[];
}

export interface WebhookPayload {
  readonly body: Buffer;
  readonly contentType: string;
}

export async function webhookPayload(message: DeliverableMessage, format: WebhookFormat, inlineAttachmentsUpTo: number): Promise<WebhookPayload> {
  if (format === "raw") return { body: await message.raw.read(), contentType: "message/rfc822" };
  const document = await webhookDocument(message, inlineAttachmentsUpTo);
  return { body: Buffer.from(JSON.stringify(document), "utf8"), contentType: "application/json" };
}

export async function webhookDocument(message: DeliverableMessage, inlineAttachmentsUpTo: number): Promise<WebhookMessageDocument> {
  const document = toMessageDocument(message, [], { rawPath: null });
  const attachments: WebhookAttachment[] = [];
  for (const [index, attachment] of document.attachments.entries()) {
    const parsed = message.parsed.attachments[index];
    const inline = parsed !== undefined && parsed.size <= inlineAttachmentsUpTo;
    attachments.push({ ...attachment, content: inline ? (await attachmentBytes(parsed)).toString("base64") : null });
  }
  return { ...document, attachments };
}

/**
 * Where the message came from, for routing without parsing the body. Values that are not
 * printable ASCII are percent-encoded UTF-8 (decodeURIComponent restores them). A value above
 * METADATA_VALUE_MAX_BYTES is left out (a receiver's header limit would refuse the request),
 * named in x-mailfetchd-omitted; the body has it whole.
 */
export function metadataHeaders(message: DeliverableMessage, attempt: number): Record<string, string> {
  const values: Record<string, string> = {
    "x-mailfetchd-queue": headerValue(message.queue.name),
    "x-mailfetchd-queue-address": headerValue(message.queue.address),
    "x-mailfetchd-source": message.source.kind,
    "x-mailfetchd-folder": headerValue(message.source.folder),
    "x-mailfetchd-item": headerValue(message.source.item),
    "x-mailfetchd-attempt": String(attempt),
  };
  // IMAP queues keep the headers they had before sources were made neutral.
  if (message.source.uidValidity !== undefined) values["x-mailfetchd-uidvalidity"] = message.source.uidValidity;
  if (message.source.uid !== undefined) values["x-mailfetchd-uid"] = String(message.source.uid);
  if (message.parsed.messageId) values["x-mailfetchd-message-id"] = headerValue(message.parsed.messageId);
  const { kept, omitted } = boundMetadata(values);
  if (omitted.length > 0) kept["x-mailfetchd-omitted"] = omitted.map((name) => name.slice("x-mailfetchd-".length)).join(", ");
  return kept;
}
