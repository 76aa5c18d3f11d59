/**
 * The markers of automatically sent mail (out-of-office, autoresponders, ticket receipts),
 * split by how much they prove (README "Kind"):
 *
 * - strong: headers whose only purpose is to say "a program sent this": Auto-Submitted other
 *   than "no" (RFC 3834), X-Autoreply / X-Autorespond / X-Autoresponder, Precedence
 *   auto_reply / bulk / junk. One is enough.
 * - weak: headers that also appear on mail a person sent, so one alone never makes a message
 *   an auto-reply: X-Auto-Response-Suppress (it asks the *receiver* not to auto-reply; Exchange
 *   puts it on its own OOF replies, but mailing lists and ticket systems put it on everything),
 *   X-MS-Exchange-Inbox-Rules-Loop (also on mail an inbox rule forwarded, i.e. real customer
 *   mail forwarded to the queue), Precedence: list (a customer writing through a Google Group),
 *   and a null Return-Path.
 * - subject: the Exchange/Outlook out-of-office subject prefixes ("Automatic reply:" in many
 *   languages). A person can type them, so they count only together with a weak header.
 */
import type { HeaderView } from "./headers.js";

export interface AutoReplyMarkers {
  readonly strong: string[];
  readonly weak: string[];
  /** The out-of-office subject prefix found, if any. */
  readonly subject?: string;
  /** X-Auto-Response-Suppress asks for no OOF / auto-reply (or all): the sender does not want one. */
  readonly suppressRequested: boolean;
}

const AUTOREPLY_HEADERS = ["x-autoreply", "x-autorespond", "x-autoresponder", "x-autoreply-from", "x-mail-autoreply"];
const STRONG_PRECEDENCE = new Set(["auto_reply", "bulk", "junk"]);
const NEGATIVE_VALUES = new Set(["no", "false", "0", "none", "off"]);

// Exchange/Outlook "Automatic reply:" in the languages of its UI, and the common others.
// Compared lower-case at the start of the subject, colon optional-spaced.
const OUT_OF_OFFICE_SUBJECT_PREFIXES = [
  "automatic reply",
  "auto reply",
  "autoreply",
  "auto-reply",
  "auto response",
  "autoresponse",
  "out of office",
  "out of the office",
  "automatische antwort",
  "abwesenheitsnotiz",
  "réponse automatique",
  "respuesta automática",
  "risposta automatica",
  "automatisch antwoord",
  "resposta automática",
  "autosvar",
  "automaattinen vastaus",
  "automatické odpověď",
  "automatická odpověď",
  "odpowiedź automatyczna",
  "automatikus válasz",
  "otomatik yanıt",
  "automatski odgovor",
  "автоматический ответ",
  "αυτόματη απάντηση",
  "自动答复",
  "自動回覆",
  "自動応答",
  "자동 회신",
];

export function autoReplyMarkers(headers: HeaderView, subject: string | undefined): AutoReplyMarkers {
  const strong: string[] = [];
  const weak: string[] = [];

  const autoSubmitted = headers.first("auto-submitted");
  if (autoSubmitted !== undefined) {
    const token = firstToken(autoSubmitted);
    if (token !== "" && token !== "no") strong.push(`Auto-Submitted: ${autoSubmitted}`);
  }
  for (const name of AUTOREPLY_HEADERS) {
    const value = headers.first(name);
    if (value !== undefined && !NEGATIVE_VALUES.has(firstToken(value))) strong.push(`${canonicalName(name)}: ${value}`);
  }
  for (const name of ["precedence", "x-precedence"]) {
    const value = headers.first(name);
    if (value === undefined) continue;
    const token = firstToken(value);
    if (STRONG_PRECEDENCE.has(token)) strong.push(`${canonicalName(name)}: ${value}`);
    else if (token === "list") weak.push(`${canonicalName(name)}: ${value}`);
  }

  const suppress = headers.first("x-auto-response-suppress");
  const suppressTokens = (suppress ?? "")
    .toLowerCase()
    .split(/[\s,;]+/)
    .filter((token) => token !== "");
  const suppressRequested = suppressTokens.some((token) => token === "all" || token === "oof" || token === "autoreply");
  if (suppressRequested) weak.push(`X-Auto-Response-Suppress: ${suppress}`);
  const rulesLoop = headers.first("x-ms-exchange-inbox-rules-loop");
  if (rulesLoop !== undefined) weak.push(`X-MS-Exchange-Inbox-Rules-Loop: ${rulesLoop}`);
  if (hasNullReturnPath(headers)) weak.push("Return-Path: <>");

  const outOfOffice = outOfOfficeSubjectPrefix(subject);
  return { strong, weak, ...(outOfOffice === undefined ? {} : { subject: outOfOffice }), suppressRequested };
}

/** Return-Path "<>": the message may not be bounced or replied to (DSNs, RFC 3834 responses). */
export function hasNullReturnPath(headers: HeaderView): boolean {
  const value = headers.first("return-path");
  return value !== undefined && /^<\s*>$/.test(value.trim());
}

function outOfOfficeSubjectPrefix(subject: string | undefined): string | undefined {
  const text = (subject ?? "").normalize("NFKC").trim().toLowerCase();
  for (const prefix of OUT_OF_OFFICE_SUBJECT_PREFIXES) {
    if (text.startsWith(prefix) && /^\s*[:：]/u.test(text.slice(prefix.length)))
      return subject!
        .trim()
        .slice(0, prefix.length + 2)
        .trim();
  }
  return undefined;
}

/** "auto-replied; owner-email=..." -> "auto-replied"; "Bulk (list)" -> "bulk". */
function firstToken(value: string): string {
  return (value.toLowerCase().split(/[\s;(]/, 1)[0] ?? "").trim();
}

function canonicalName(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_match, dash: string, letter: string) => dash + letter.toUpperCase());
}
