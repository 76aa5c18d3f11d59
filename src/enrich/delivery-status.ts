/**
 * The message/delivery-status part of a DSN (RFC 3464): a block of per-message fields, then
 * one block per recipient (Final-Recipient, Action, Status, Diagnostic-Code), blocks
 * separated by blank lines. Real MTAs get the blank lines wrong both ways (none at all,
 * several in a row), so a new recipient also starts at a recipient field the current
 * block already has. Some gateways re-encode the per-recipient blocks as base64 inside the
 * part (a "Content-Transfer-Encoding: base64" field, then the blob); those are decoded.
 */
import type { BounceRecipient } from "../interfaces.js";

export interface DeliveryStatusReport {
  readonly reportingMta?: string;
  readonly recipients: BounceRecipient[];
}

/** A DSN is a few hundred bytes per recipient; the rest of a larger part is not read. */
const MAX_TEXT_LENGTH = 256 * 1024;
const MAX_RECIPIENTS = 1000;
const MAX_FIELD_LENGTH = 1000;

interface RecipientDraft {
  final?: string;
  original?: string;
  action?: string;
  status?: string;
  diagnostic?: string;
}

export function parseDeliveryStatus(text: string): DeliveryStatusReport {
  let reportingMta: string | undefined;
  const drafts: RecipientDraft[] = [];
  let current: RecipientDraft | undefined;

  for (const line of unfold(decodeEmbeddedBase64(text.slice(0, MAX_TEXT_LENGTH)))) {
    if (line.trim() === "") {
      current = undefined;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line
      .slice(colon + 1)
      .trim()
      .slice(0, MAX_FIELD_LENGTH);
    switch (name) {
      case "reporting-mta":
        if (current === undefined) reportingMta ??= typedValue(value);
        break;
      case "final-recipient":
      case "original-recipient": {
        const key = name === "final-recipient" ? "final" : "original";
        // RFC 3464 puts Original- before Final-Recipient, Postfix after it: only a repeat starts the next recipient.
        const startsNew = current === undefined || current[key] !== undefined;
        if (startsNew) {
          if (drafts.length >= MAX_RECIPIENTS) return finish(reportingMta, drafts);
          current = {};
          drafts.push(current);
        }
        current![key] = address(value);
        break;
      }
      case "action":
        if (current !== undefined) current.action = value.toLowerCase().split(/[\s(]/, 1)[0];
        break;
      case "status":
        if (current !== undefined) current.status = /\d\.\d{1,3}\.\d{1,3}/.exec(value)?.[0] ?? value;
        break;
      case "diagnostic-code":
        if (current !== undefined) current.diagnostic = typedValue(value).replace(/\s+/g, " ");
        break;
    }
  }
  return finish(reportingMta, drafts);
}

function finish(reportingMta: string | undefined, drafts: readonly RecipientDraft[]): DeliveryStatusReport {
  const recipients: BounceRecipient[] = [];
  for (const draft of drafts) {
    const recipientAddress = draft.final ?? draft.original;
    if (recipientAddress === undefined || recipientAddress === "") continue;
    recipients.push({
      address: recipientAddress,
      ...(draft.action ? { action: draft.action } : {}),
      ...(draft.status ? { status: draft.status } : {}),
      ...(draft.diagnostic ? { diagnostic: draft.diagnostic } : {}),
    });
  }
  return { ...(reportingMta ? { reportingMta } : {}), recipients };
}

/**
 * Replaces a base64 blob that follows a "Content-Transfer-Encoding: base64" field and a blank
 * line with its decoded text (one level only: the decoded text is not searched again).
 */
function decodeEmbeddedBase64(text: string): string {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const marker = lines.findIndex((line) => /^content-transfer-encoding:\s*base64\s*$/i.test(line));
  if (marker === -1) return text;
  let start = marker + 1;
  while (start < lines.length && lines[start]!.trim() !== "") start++;
  start++;
  let end = start;
  while (end < lines.length && /^[A-Za-z0-9+/]+={0,2}$/.test(lines[end]!.trim())) end++;
  if (end === start) return text;
  const decoded = Buffer.from(lines.slice(start, end).join(""), "base64").toString("utf8");
  return [...lines.slice(0, marker), "", decoded, ...lines.slice(end)].join("\n");
}

function unfold(text: string): string[] {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/\n(?=[ \t]+\S)/g, " ")
    .split("\n");
}

/** "rfc822; user@example.com" -> "user@example.com"; "dns; mx.example.com" -> "mx.example.com". */
function typedValue(value: string): string {
  const semicolon = value.indexOf(";");
  return (semicolon >= 0 ? value.slice(semicolon + 1) : value).trim();
}

function address(value: string): string {
  return typedValue(value).replace(/^<|>$/g, "").trim();
}
