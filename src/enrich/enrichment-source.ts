/**
 * What the enrichers read besides the parsed message: the raw top-level headers, the MIME
 * parameters mailparser saw, and what was learnt from the raw bytes. Built once per message
 * from mailparser's output, so the enrichers themselves do not depend on mailparser's types.
 */
import type { ParsedMail } from "mailparser";

import { HeaderView } from "./headers.js";

export interface MimePartInfo {
  /** Lower-cased, without parameters. */
  readonly contentType: string;
  /** Parameter names lower-cased. */
  readonly params: Readonly<Record<string, string>>;
}

export interface EnrichmentSource {
  readonly headers: HeaderView;
  /** The message's own Content-Type. */
  readonly contentType: MimePartInfo;
  /** The Content-Type of each attachment mailparser found, by index into the parsed attachments. */
  readonly attachmentParts: readonly MimePartInfo[];
  /** Thread-Topic with encoded words decoded. */
  readonly threadTopic?: string;
  /** Whether the raw message has a text/plain body part (plain-text-body.ts); unknown when absent. */
  readonly hasPlainTextBody?: boolean;
}

const NO_PART: MimePartInfo = { contentType: "", params: {} };

export function sourceFromMailparser(mail: ParsedMail, hasPlainTextBody: boolean | undefined): EnrichmentSource {
  const threadTopic = mail.headers?.get("thread-topic");
  return {
    headers: HeaderView.fromLines(mail.headerLines),
    contentType: partInfo(mail.headers?.get("content-type")),
    attachmentParts: (mail.attachments ?? []).map((attachment) => partInfo(attachment.headers?.get("content-type"))),
    ...(typeof threadTopic === "string" && threadTopic.trim() !== "" ? { threadTopic: threadTopic.trim() } : {}),
    ...(hasPlainTextBody === undefined ? {} : { hasPlainTextBody }),
  };
}

/** mailparser gives Content-Type as { value, params } (a structured header). */
function partInfo(header: unknown): MimePartInfo {
  if (typeof header !== "object" || header === null) return NO_PART;
  const { value, params } = header as { value?: unknown; params?: unknown };
  const result: Record<string, string> = {};
  if (typeof params === "object" && params !== null) {
    for (const [name, param] of Object.entries(params)) if (typeof param === "string") result[name.toLowerCase()] = param;
  }
  return { contentType: typeof value === "string" ? value.trim().toLowerCase() : "", params: result };
}
