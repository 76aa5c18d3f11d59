/**
 * Runs the enrichers over a parsed message, each on its own: one that throws (a bug, a message
 * nobody foresaw) costs only its own fields, and is noted in enrichmentErrors. The parse as a
 * whole never fails because of an enricher, so the message is always delivered.
 *
 * Order matters: TNEF first (it adds attachments), then the ones that read attachments.
 */
import type { EnrichmentError, ParsedMessage } from "../interfaces.js";
import { conversationOf } from "./conversation.js";
import type { EnrichmentSource } from "./enrichment-source.js";
import { exceedsHtmlNestingDepth, MAX_HTML_NESTING_DEPTH } from "./html-nesting.js";
import { htmlToPlainText } from "./html-text.js";
import { messageKind } from "./message-kind.js";
import { normalizeSubject } from "./normalized-subject.js";
import { messagePriority } from "./priority.js";
import { extractReplyText } from "./reply-text.js";
import { sanitizeMessageHtml } from "./safe-html.js";
import { unpackTnefAttachments } from "./tnef-attachments.js";

export type EnrichedFields = Partial<
  Pick<
    ParsedMessage,
    "attachments" | "conversation" | "kind" | "priority" | "safeHtml" | "remoteContentBlocked" | "text" | "textFromHtml" | "replyText" | "replyTextReliable"
  >
>;

export interface EnrichmentContext {
  readonly source: EnrichmentSource;
  /** HTML longer than this (characters) is not sanitised: safeHtml is left out and noted. */
  readonly maxHtmlLength: number;
  /** Problems that did not stop the enricher (a truncated winmail.dat); noted like failures. */
  readonly warn: (warning: string) => void;
}

export interface Enricher {
  readonly name: string;
  enrich(message: ParsedMessage, context: EnrichmentContext): EnrichedFields;
}

export const DEFAULT_ENRICHERS: readonly Enricher[] = [
  {
    name: "tnef",
    enrich(message, context) {
      const unpacked = unpackTnefAttachments(message.attachments);
      unpacked.warnings.forEach(context.warn);
      return { attachments: unpacked.attachments };
    },
  },
  { name: "conversation", enrich: (message, context) => ({ conversation: conversationOf(message, context.source) }) },
  { name: "kind", enrich: (message, context) => ({ kind: messageKind(message, context.source) }) },
  { name: "priority", enrich: (_message, context) => ({ priority: messagePriority(context.source.headers) }) },
  {
    name: "safe-html",
    enrich(message, context) {
      if (message.html === undefined || !htmlWithinLimits(message.html, context)) return {};
      const safe = sanitizeMessageHtml(message.html, message.attachments);
      return { safeHtml: safe.html, remoteContentBlocked: safe.remoteContentBlocked };
    },
  },
  {
    // Every HTML-only message gets its text here (mailparser is told not to convert: its own
    // depth check misses `<p><li>` nesting, and its converter's quote marks grow without
    // bound), after the nesting check, with quote marks and list indentation bounded
    // (html-text.ts). This also covers HTML in a multipart/mixed or /related with no text part,
    // which mailparser never converted.
    name: "text-from-html",
    enrich(message, context) {
      if (message.html === undefined) return message.text === undefined ? {} : { textFromHtml: false };
      if (message.text === undefined) {
        if (!htmlWithinLimits(message.html, context)) return {};
        return { text: htmlToPlainText(message.html), textFromHtml: true };
      }
      const plain = context.source.hasPlainTextBody;
      return plain === undefined ? {} : { textFromHtml: !plain };
    },
  },
  {
    name: "reply-text",
    enrich(message) {
      if (message.text === undefined) return {};
      const reply = extractReplyText(message.text, looksLikeReply(message));
      return { replyText: reply.text, replyTextReliable: reply.reliable };
    },
  },
];

/** At most this many notes per enricher: a broken winmail.dat must not fill the document. */
const MAX_NOTES_PER_ENRICHER = 10;
const MAX_NOTE_LENGTH = 300;

export interface EnrichOptions {
  readonly maxHtmlLength: number;
  readonly enrichers?: readonly Enricher[];
}

export function enrichMessage(base: ParsedMessage, source: EnrichmentSource, options: EnrichOptions): ParsedMessage {
  let message = base;
  const errors: EnrichmentError[] = [];
  for (const enricher of options.enrichers ?? DEFAULT_ENRICHERS) {
    let notes = 0;
    const note = (error: string): void => {
      if (notes++ < MAX_NOTES_PER_ENRICHER) errors.push({ enricher: enricher.name, error: oneLine(error) });
    };
    try {
      message = { ...message, ...enricher.enrich(message, { source, maxHtmlLength: options.maxHtmlLength, warn: note }) };
    } catch (error) {
      note(`failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { ...message, enrichmentErrors: errors };
}

/** Longer or deeper HTML would block the event loop (htmlparser2 is quadratic in depth); noted, not processed. */
function htmlWithinLimits(html: string, context: EnrichmentContext): boolean {
  if (html.length > context.maxHtmlLength) {
    context.warn(`HTML of ${html.length} characters is over the limit of ${context.maxHtmlLength}; not processed`);
    return false;
  }
  if (exceedsHtmlNestingDepth(html)) {
    context.warn(`HTML nested deeper than ${MAX_HTML_NESTING_DEPTH} levels; not processed`);
    return false;
  }
  return true;
}

function looksLikeReply(message: ParsedMessage): boolean {
  if (message.inReplyTo !== undefined || message.references.length > 0) return true;
  const subject = (message.subject ?? "").normalize("NFKC").replace(/\s+/gu, " ").trim().toLowerCase();
  return subject !== "" && normalizeSubject(message.subject) !== subject;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim() || "unknown error";
  return line.length > MAX_NOTE_LENGTH ? `${line.slice(0, MAX_NOTE_LENGTH - 1)}…` : line;
}
