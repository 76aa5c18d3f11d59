/**
 * The JSON form of a delivered message, as the directory handler writes it to message.json
 * (and as other handlers may send it). Absent scalars are null, never missing, so consumers
 * see the same shape for every message. Attachment contents and the raw message are not in
 * it: they are referenced by path.
 */
import type { Address, DeliverableMessage } from "../interfaces.js";

export const MESSAGE_DOCUMENT_SCHEMA = "mailfetchd.message/1";

export interface MessageDocumentAttachment {
  /** The safe file name. */
  readonly filename: string;
  /** The name as the sender gave it, for display only. */
  readonly originalFilename: string | null;
  readonly contentType: string;
  readonly size: number;
  readonly sha256: string;
  /** Without angle brackets, to match cid: references in the HTML. */
  readonly contentId: string | null;
  readonly inline: boolean;
  /** Where the content is, relative to the document ("attachments/<filename>"); null when it was not stored. */
  readonly path: string | null;
}

export interface MessageDocument {
  readonly schema: typeof MESSAGE_DOCUMENT_SCHEMA;
  /** The stable message id (the idempotency key). */
  readonly id: string;
  readonly queue: { readonly name: string; readonly address: string };
  readonly source: { readonly folder: string; readonly uidValidity: string; readonly uid: number };
  /** The server's INTERNALDATE, ISO 8601. */
  readonly receivedAt: string | null;
  /** Size of the raw message in bytes. */
  readonly size: number;
  readonly messageId: string | null;
  /** The Date header, ISO 8601. */
  readonly date: string | null;
  readonly from: Address[];
  readonly to: Address[];
  readonly cc: Address[];
  readonly replyTo: Address[];
  readonly subject: string | null;
  readonly text: string | null;
  readonly html: string | null;
  readonly inReplyTo: string | null;
  readonly references: string[];
  readonly attachments: MessageDocumentAttachment[];
  readonly parseError: string | null;
  /** Where the raw message is, relative to the document; null when it was not stored. */
  readonly rawPath: string | null;
}

/** The document the directory handler writes as message.json. */
export type DirectoryMessageDocument = MessageDocument;

export interface MessageDocumentOptions {
  /** Defaults to "message.eml", the directory handler's layout. */
  readonly rawPath?: string | null;
}

/**
 * Builds the document for `message`. `attachmentPaths[i]` is where attachment i was stored,
 * relative to the document (null or missing: not stored).
 */
export function toMessageDocument(
  message: DeliverableMessage,
  attachmentPaths: readonly (string | null)[],
  options: MessageDocumentOptions = {},
): MessageDocument {
  const parsed = message.parsed;
  return {
    schema: MESSAGE_DOCUMENT_SCHEMA,
    id: message.id,
    queue: { name: message.queue.name, address: message.queue.address },
    source: { folder: message.source.folder, uidValidity: message.source.uidValidity, uid: message.source.uid },
    receivedAt: isoOrNull(message.internalDate),
    size: message.raw.length,
    messageId: parsed.messageId ?? null,
    date: parsed.date ?? null,
    from: addresses(parsed.from),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    replyTo: addresses(parsed.replyTo),
    subject: parsed.subject ?? null,
    text: parsed.text ?? null,
    html: parsed.html ?? null,
    inReplyTo: parsed.inReplyTo ?? null,
    references: [...parsed.references],
    attachments: parsed.attachments.map((attachment, index) => ({
      filename: attachment.filename,
      originalFilename: attachment.originalFilename ?? null,
      contentType: attachment.contentType,
      size: attachment.size,
      sha256: attachment.sha256,
      contentId: attachment.contentId ?? null,
      inline: attachment.inline,
      path: attachmentPaths[index] ?? null,
    })),
    parseError: parsed.parseError ?? null,
    rawPath: options.rawPath === undefined ? "message.eml" : options.rawPath,
  };
}

/** Copies only name and address, so nothing else a parser attached ends up in the document. */
function addresses(list: readonly Address[]): Address[] {
  return list.map(({ name, address }) => ({ name, address }));
}

function isoOrNull(date: Date | undefined): string | null {
  return date !== undefined && !Number.isNaN(date.getTime()) ? date.toISOString() : null;
}
