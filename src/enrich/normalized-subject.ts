/**
 * A subject reduced to what stays the same across a conversation: without the reply and
 * forward prefixes mail clients add (in many languages, and repeatedly: "RE: AW: Fwd:"), the
 * ticket tags helpdesks add ("[#1234]", "[Ticket#123]", "(#5521)"), the tags mail
 * gateways add at the front ("[EXTERNAL]"), and differences in whitespace and case.
 */

// The prefixes, lower-case. Outlook, Gmail, Apple Mail, Thunderbird and helpdesks in the
// languages contact centres here meet most. Single letters ("r:") are in: Italian mobile
// clients write them. "Automatic reply:" is not: an auto-reply is a different message.
const REPLY_FORWARD_PREFIXES = [
  // replies
  "re",
  "aw",
  "sv",
  "svar",
  "vs",
  "antw",
  "antwort",
  "odp",
  "odg",
  "r",
  "ynt",
  "atb",
  "vá",
  "rif",
  "res",
  "ref",
  "отв",
  "ответ",
  "回复",
  "回覆",
  "答复",
  "返信",
  "답장",
  "απ",
  "σχετ",
  "השב",
  // forwards
  "fw",
  "fwd",
  "wg",
  "tr",
  "rv",
  "enc",
  "pd",
  "i",
  "vl",
  "ilt",
  "doorst",
  "пересл",
  "転送",
  "转发",
  "轉寄",
  "전달",
  "πρθ",
];
// "Re:", "RE :", "Re[2]:", "Re(3):", "Re：" (full-width colon), each followed by anything.
const PREFIX = new RegExp(
  `^(?:${[...new Set(REPLY_FORWARD_PREFIXES)]
    .sort((a, b) => b.length - a.length)
    .map(escapeRegExp)
    .join("|")})\\s*(?:\\[\\d{1,4}\\]|\\(\\d{1,4}\\))?\\s*[:：]\\s*`,
  "iu",
);
/** A tag anywhere that carries a ticket or case reference: "[#1234]", "[Ticket#123]", "[Case 00123]", "(#5521)". */
const TICKET_TAG = /\[[^[\]]{0,60}?[#\d][^[\]]{0,60}\]|\([^()]{0,60}?#[^()]{0,60}\)/gu;
/** A bracketed tag at the front without a number: "[EXTERNAL]", "[SPAM?]", "[Support]". */
const LEADING_TAG = /^\[[^[\]]{1,40}\]\s*/u;
/** Enough for any real subject; a longer one is compared on its start. */
const MAX_SUBJECT_LENGTH = 1000;
/** Prefix stacks longer than this are not real; the bound keeps the loop finite. */
const MAX_ROUNDS = 50;

export function normalizeSubject(subject: string | undefined): string {
  let text = (subject ?? "").normalize("NFKC").slice(0, MAX_SUBJECT_LENGTH).replace(/\s+/gu, " ").trim();
  text = text.replace(TICKET_TAG, " ").replace(/\s+/gu, " ").trim();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const stripped = text.replace(PREFIX, "").replace(LEADING_TAG, "").trim();
    if (stripped === text) break;
    text = stripped;
  }
  return text.toLowerCase();
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
