/**
 * What kind of message this is, for routing: a bounce, an automatic reply, a calendar
 * message, or normal mail a person wrote. Routing can drop or divert the first two instead of
 * opening a case, and must never answer any message with suppressAutoReply: that is how
 * mail loops between an acknowledgement and an autoresponder are avoided (README "Kind").
 *
 * Order, first that applies:
 *   bounce (DSN: high; non-standard: low) > auto-reply (strong marker, or a read receipt /
 *   feedback report: high) > calendar > auto-reply (out-of-office subject + a weak
 *   header: low) > normal.
 * A message with weak markers only stays normal, with confidence "low": losing a customer's
 * mail to a wrong "auto-reply" is worse than opening one case for an out-of-office reply.
 */
import type { MessageKind, ParsedMessage } from "../interfaces.js";
import { autoReplyMarkers } from "./auto-reply-markers.js";
import { detectBounce } from "./bounce.js";
import { calendarMethod } from "./calendar.js";
import type { EnrichmentSource } from "./enrichment-source.js";

/** multipart/report types that a program sends about an earlier message, other than DSNs. */
const AUTOMATIC_REPORT_TYPES: Readonly<Record<string, string>> = {
  "disposition-notification": "read receipt (multipart/report; report-type=disposition-notification)",
  "feedback-report": "abuse report (multipart/report; report-type=feedback-report)",
};

export function messageKind(message: ParsedMessage, source: EnrichmentSource): MessageKind {
  const markers = autoReplyMarkers(source.headers, message.subject);
  const anyMarker = markers.strong.length > 0 || markers.weak.length > 0 || markers.subject !== undefined;

  const bounce = detectBounce(message, source);
  if (bounce !== undefined) {
    return {
      type: "bounce",
      confidence: bounce.confidence,
      reasons: bounce.reasons,
      suppressAutoReply: true,
      bounce: { recipients: bounce.recipients, ...(bounce.reportingMta === undefined ? {} : { reportingMta: bounce.reportingMta }) },
    };
  }

  const reportType = (source.contentType.params["report-type"] ?? "").toLowerCase();
  const report = source.contentType.contentType === "multipart/report" ? AUTOMATIC_REPORT_TYPES[reportType] : undefined;
  const strong = [...(report === undefined ? [] : [report]), ...markers.strong];
  if (strong.length > 0) return { type: "auto-reply", confidence: "high", reasons: strong, suppressAutoReply: true };

  const method = calendarMethod(message, source);
  if (method !== undefined) {
    return {
      type: "calendar",
      confidence: "high",
      reasons: [`text/calendar; method=${method}`],
      suppressAutoReply: anyMarker,
      calendar: { method },
    };
  }

  if (markers.subject !== undefined && markers.weak.length > 0) {
    return { type: "auto-reply", confidence: "low", reasons: [`Subject: ${markers.subject}`, ...markers.weak], suppressAutoReply: true };
  }
  return {
    type: "normal",
    confidence: anyMarker ? "low" : "high",
    reasons: [...(markers.subject === undefined ? [] : [`Subject: ${markers.subject}`]), ...markers.weak],
    suppressAutoReply: anyMarker,
  };
}
