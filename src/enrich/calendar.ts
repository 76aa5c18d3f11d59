/**
 * Meeting invitations, replies and cancellations (iMIP, RFC 6047): a text/calendar part whose
 * Content-Type carries the iTIP method, as Outlook, Gmail and Apple Calendar send them.
 *
 * An .ics file a customer merely attaches ("here is my appointment") has no method parameter
 * and stays a normal message: it needs a person, not calendar handling.
 */
import type { ParsedMessage } from "../interfaces.js";
import type { EnrichmentSource } from "./enrichment-source.js";

export const CALENDAR_TYPES = new Set(["text/calendar", "application/ics"]);
const ITIP_METHOD = /^[A-Za-z-]{1,32}$/;
/** METHOD sits in the first lines of a VCALENDAR; no need to read a large one whole. */
const METHOD_SCAN_BYTES = 64 * 1024;

export function calendarMethod(message: ParsedMessage, source: EnrichmentSource): string | undefined {
  // attachmentParts describes the MIME parts; files unpacked from a winmail.dat sit between them.
  const mimeAttachments = message.attachments.filter((attachment) => attachment.extractedFrom === undefined);
  for (const [index, part] of source.attachmentParts.entries()) {
    if (!CALENDAR_TYPES.has(part.contentType)) continue;
    const parameter = part.params.method?.trim();
    if (parameter !== undefined && ITIP_METHOD.test(parameter)) return parameter.toUpperCase();
    // A text/calendar body part (not a named file) without the parameter: read METHOD itself.
    const attachment = mimeAttachments[index];
    if (part.contentType === "text/calendar" && attachment?.content !== undefined && attachment.originalFilename === undefined) {
      const method = /^METHOD:([A-Za-z-]{1,32})\r?$/m.exec(attachment.content.subarray(0, METHOD_SCAN_BYTES).toString("utf8"))?.[1];
      if (method !== undefined) return method.toUpperCase();
    }
  }
  return undefined;
}
