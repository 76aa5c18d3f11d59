/**
 * The JSON form of a delivered message, as the directory handler writes it to message.json
 * (and as other handlers may send it). Absent scalars are null, never missing, so consumers
 * see the same shape for every message. Attachment contents and the raw message are not in
 * it: they are referenced by path.
 */
import type { Address, Conversation, DeliverableMessage, EnrichmentError, MessageKind } from "../interfaces.js";
import type { SourceKind } from "../source/message-location.js";

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
  /** For a file unpacked from a winmail.dat: the container's filename. */
  readonly extractedFrom: string | null;
}

/** The conversation (README "Conversation key"); absent fields are null. */
export interface MessageDocumentConversation {
  readonly key: string;
  readonly source: Conversation["source"];
  readonly rootMessageId: string | null;
  readonly threadIndexKey: string | null;
  readonly subjectKey: string;
  readonly normalizedSubject: string;
}

/** The kind (README "Kind"); bounce and calendar are null unless the type is theirs. */
export interface MessageDocumentKind {
  readonly type: MessageKind["type"];
  readonly confidence: MessageKind["confidence"];
  readonly reasons: string[];
  readonly suppressAutoReply: boolean;
  readonly bounce: {
    readonly reportingMta: string | null;
    readonly recipients: { address: string; action: string | null; status: string | null; diagnostic: string | null }[];
  } | null;
  readonly calendar: { readonly method: string } | null;
}

export interface MessageDocument {
  readonly schema: typeof MESSAGE_DOCUMENT_SCHEMA;
  /** The stable message id (the idempotency key). */
  readonly id: string;
  readonly queue: { readonly name: string; readonly address: string };
  /**
   * Where the message came from: `kind` ("imap"), `folder` and `item` (the source's own id,
   * opaque) for every source; `uidValidity` and `uid` for IMAP queues, null otherwise.
   */
  readonly source: {
    readonly kind: SourceKind;
    readonly folder: string;
    readonly item: string;
    readonly uidValidity: string | null;
    readonly uid: number | null;
  };
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
  /** `html` sanitised for display (README "Safe HTML"). */
  readonly safeHtml: string | null;
  /** Whether sanitising removed remote images or styles. */
  readonly remoteContentBlocked: boolean | null;
  /** True when only HTML was sent and `text` was converted from it; null when unknown. */
  readonly textFromHtml: boolean | null;
  /** `text` without the quoted history (README "Reply text"). */
  readonly replyText: string | null;
  readonly replyTextReliable: boolean | null;
  readonly inReplyTo: string | null;
  readonly references: string[];
  readonly conversation: MessageDocumentConversation | null;
  readonly kind: MessageDocumentKind | null;
  readonly priority: "high" | "normal" | "low" | null;
  readonly attachments: MessageDocumentAttachment[];
  readonly parseError: string | null;
  /** Enrichers that failed on this message: their fields are null. */
  readonly enrichmentErrors: EnrichmentError[];
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
    source: {
      kind: message.source.kind,
      folder: message.source.folder,
      item: message.source.item,
      uidValidity: message.source.uidValidity ?? null,
      uid: message.source.uid ?? null,
    },
    receivedAt: isoOrNull(message.internalDate),
    size: message.raw.size,
    messageId: parsed.messageId ?? null,
    date: parsed.date ?? null,
    from: addresses(parsed.from),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    replyTo: addresses(parsed.replyTo),
    subject: parsed.subject ?? null,
    text: parsed.text ?? null,
    html: parsed.html ?? null,
    safeHtml: parsed.safeHtml ?? null,
    remoteContentBlocked: parsed.remoteContentBlocked ?? null,
    textFromHtml: parsed.textFromHtml ?? null,
    replyText: parsed.replyText ?? null,
    replyTextReliable: parsed.replyTextReliable ?? null,
    inReplyTo: parsed.inReplyTo ?? null,
    references: [...parsed.references],
    conversation: conversationDocument(parsed.conversation),
    kind: kindDocument(parsed.kind),
    priority: parsed.priority ?? null,
    attachments: parsed.attachments.map((attachment, index) => ({
      filename: attachment.filename,
      originalFilename: attachment.originalFilename ?? null,
      contentType: attachment.contentType,
      size: attachment.size,
      sha256: attachment.sha256,
      contentId: attachment.contentId ?? null,
      inline: attachment.inline,
      path: attachmentPaths[index] ?? null,
      extractedFrom: attachment.extractedFrom ?? null,
    })),
    parseError: parsed.parseError ?? null,
    enrichmentErrors: (parsed.enrichmentErrors ?? []).map(({ enricher, error }) => ({ enricher, error })),
    rawPath: options.rawPath === undefined ? "message.eml" : options.rawPath,
  };
}

function conversationDocument(conversation: Conversation | undefined): MessageDocumentConversation | null {
  if (conversation === undefined) return null;
  return {
    key: conversation.key,
    source: conversation.source,
    rootMessageId: conversation.rootMessageId ?? null,
    threadIndexKey: conversation.threadIndexKey ?? null,
    subjectKey: conversation.subjectKey,
    normalizedSubject: conversation.normalizedSubject,
  };
}

function kindDocument(kind: MessageKind | undefined): MessageDocumentKind | null {
  if (kind === undefined) return null;
  return {
    type: kind.type,
    confidence: kind.confidence,
    reasons: [...kind.reasons],
    suppressAutoReply: kind.suppressAutoReply,
    bounce:
      kind.bounce === undefined
        ? null
        : {
            reportingMta: kind.bounce.reportingMta ?? null,
            recipients: kind.bounce.recipients.map((recipient) => ({
              address: recipient.address,
              action: recipient.action ?? null,
              status: recipient.status ?? null,
              diagnostic: recipient.diagnostic ?? null,
            })),
          },
    calendar: kind.calendar === undefined ? null : { method: kind.calendar.method },
  };
}

/** Copies only name and address, so nothing else a parser attached ends up in the document. */
function addresses(list: readonly Address[]): Address[] {
  return list.map(({ name, address }) => ({ name, address }));
}

function isoOrNull(date: Date | undefined): string | null {
  return date !== undefined && !Number.isNaN(date.getTime()) ? date.toISOString() : null;
}
