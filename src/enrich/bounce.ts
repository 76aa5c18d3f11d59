/**
 * Bounces (non-delivery reports), README "Kind":
 * - high confidence: a DSN (RFC 3464): multipart/report; report-type=delivery-status (or
 *   global-delivery-status, RFC 6533) with its machine-readable part, parsed for the failed
 *   recipients, their action, status and diagnostic;
 * - low confidence: the non-standard bounces some MTAs still send as plain text, recognised by
 *   a sender such as MAILER-DAEMON or postmaster together with a null Return-Path or a bounce
 *   subject ("Undeliverable:", "Mail delivery failed", ...), or by both of the latter.
 *   Recipients come from X-Failed-Recipients (Exim) when present.
 */
import type { BounceRecipient, ParsedMessage } from "../interfaces.js";
import { hasNullReturnPath } from "./auto-reply-markers.js";
import { parseDeliveryStatus } from "./delivery-status.js";
import type { EnrichmentSource } from "./enrichment-source.js";

export interface Bounce {
  readonly confidence: "high" | "low";
  readonly reasons: string[];
  readonly recipients: BounceRecipient[];
  readonly reportingMta?: string;
}

export const DELIVERY_STATUS_TYPES = new Set(["message/delivery-status", "message/global-delivery-status"]);
const DAEMON_LOCAL_PARTS = /^(?:mailer[-_]?daemon|mail[-_]?daemon|postmaster|mdaemon)$/i;
const DAEMON_NAMES = /\b(?:mail delivery (?:system|subsystem)|mailer[-_ ]daemon)\b/i;
// Subjects of the common non-standard and DSN bounces (MTAs and Exchange in several languages).
const BOUNCE_SUBJECT =
  /^(?:undeliverable|undelivered mail|undelivered message|delivery status notification \((?:failure|delay)\)|mail delivery failed|returned mail|delivery failure|failure notice|message not delivered|delivery has failed|non remis|non distribuable|unzustellbar|nicht zustellbar|no se puede entregar|non recapitabile|onbestelbaar|kan niet worden bezorgd|olevererbart|ikke leveret|nie można dostarczyć|nedoručitelné|не доставлено)/i;
/** Recipients reported per message, from DSN parts or X-Failed-Recipients. */
const MAX_FAILED_RECIPIENTS = 1000;

export function detectBounce(message: ParsedMessage, source: EnrichmentSource): Bounce | undefined {
  const reportType = (source.contentType.params["report-type"] ?? "").toLowerCase();
  const isReport = source.contentType.contentType === "multipart/report";
  const statusParts = message.attachments.filter((attachment) => DELIVERY_STATUS_TYPES.has(attachment.contentType));

  if ((isReport && (reportType === "delivery-status" || reportType === "global-delivery-status")) || statusParts.length > 0) {
    const reasons = isReport ? [`Content-Type: multipart/report; report-type=${reportType || "(none)"}`] : [];
    if (statusParts.length > 0) reasons.push(`${statusParts[0]!.contentType} part`);
    // mailparser puts the status part into `text` unless told to keep it; read that then.
    const texts = statusParts.length > 0 ? statusParts.map((part) => () => part.content?.toString("utf8") ?? "") : [() => message.text ?? ""];
    const recipients: BounceRecipient[] = [];
    let reportingMta: string | undefined;
    for (const text of texts) {
      // Per message, not per part: 1000 status parts of 1000 recipients each were a million.
      if (recipients.length >= MAX_FAILED_RECIPIENTS) break;
      const report = parseDeliveryStatus(text());
      reportingMta ??= report.reportingMta;
      recipients.push(...report.recipients.slice(0, MAX_FAILED_RECIPIENTS - recipients.length));
    }
    return { confidence: "high", reasons, recipients, ...(reportingMta === undefined ? {} : { reportingMta }) };
  }

  const sender = message.from[0];
  const localPart = (sender?.address ?? "").split("@", 1)[0] ?? "";
  const fromDaemon = DAEMON_LOCAL_PARTS.test(localPart) || DAEMON_NAMES.test(sender?.name ?? "");
  const nullReturnPath = hasNullReturnPath(source.headers);
  const bounceSubject = BOUNCE_SUBJECT.test((message.subject ?? "").trim());
  if (!((fromDaemon && (nullReturnPath || bounceSubject)) || (nullReturnPath && bounceSubject))) return undefined;

  const reasons = [
    ...(fromDaemon ? [`From: ${sender?.address || sender?.name}`] : []),
    ...(nullReturnPath ? ["Return-Path: <>"] : []),
    ...(bounceSubject ? [`Subject: ${(message.subject ?? "").trim().slice(0, 80)}`] : []),
  ];
  return { confidence: "low", reasons, recipients: failedRecipients(source) };
}

/** Exim's X-Failed-Recipients: a comma-separated address list. */
function failedRecipients(source: EnrichmentSource): BounceRecipient[] {
  const recipients: BounceRecipient[] = [];
  for (const value of source.headers.all("x-failed-recipients")) {
    for (const entry of value.split(",")) {
      const address = entry.trim().replace(/^<|>$/g, "");
      if (address.includes("@") && recipients.length < MAX_FAILED_RECIPIENTS) recipients.push({ address, action: "failed" });
    }
  }
  return recipients;
}
