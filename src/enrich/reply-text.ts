/**
 * The visible reply: the text above the quoted history (README "Reply text").
 *
 * Cut at the first of: an Outlook separator ("-----Original Message-----" and translations)
 * or forward header, an Outlook header block ("From: / Sent: / To: / Subject:", localised,
 * with or without the line of underscores above it), an "On ... wrote:" attribution (Gmail,
 * Apple Mail, Thunderbird; several languages, wrapped or not), or a block of ">"-quoted lines
 * that runs to the end. A forwarded message counts as quoted history.
 *
 * Not reliable, so the full text is given with reliable=false, when: the quote is interleaved
 * with answers ("> question" / answer / "> question"), nothing stands above the cut
 * (bottom-posting), or the message is a reply and no marker was found at all. Signatures stay:
 * they carry the customer's phone number.
 *
 * email-reply-parser (npm) was considered: it matches whole texts with unbounded patterns
 * (slow on hostile input unless the native re2 is installed), recognises Outlook header blocks
 * only when the From line carries an address, and removes signatures.
 */
import { isAttributionAt, isHeaderBlockAt, isQuotedLine, isSeparatorLine, isUnderscoreLine, MAX_MARKER_LINE_LENGTH } from "./quote-markers.js";

export interface ReplyText {
  readonly text: string;
  readonly reliable: boolean;
}

/** Quoted history starts within the first lines of any real reply; past this, stop looking. */
const MAX_LINES_SCANNED = 5000;

/**
 * @param isReply whether the message says it answers another (In-Reply-To, References, a "Re:"
 *   subject): then finding no marker means one was missed, not that there is none.
 */
export function extractReplyText(text: string, isReply: boolean): ReplyText {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const cut = quoteStart(lines);
  if (cut === "interleaved") return { text, reliable: false };
  if (cut === undefined) return { text, reliable: !isReply };
  const reply = lines.slice(0, cut).join("\n").replace(/\s+$/u, "");
  if (reply.trim() === "") return { text, reliable: false };
  return { text: reply, reliable: true };
}

function quoteStart(lines: readonly string[]): number | "interleaved" | undefined {
  const limit = Math.min(lines.length, MAX_LINES_SCANNED);
  for (let index = 0; index < limit; index++) {
    const line = lines[index] ?? "";
    if (line.length > MAX_MARKER_LINE_LENGTH) continue;
    if (isSeparatorLine(line)) return index;
    if (isUnderscoreLine(line) && (isHeaderBlockAt(lines, index + 1) || isHeaderBlockAt(lines, index + 2))) return index;
    if (isHeaderBlockAt(lines, index)) return index;
    if (isAttributionAt(lines, index)) return index;
    if (isQuotedLine(line)) return quotedToTheEnd(lines, index) ? index : "interleaved";
  }
  return undefined;
}

/** Whether every non-blank line from `start` on is quoted (or is a marker of more history). */
function quotedToTheEnd(lines: readonly string[], start: number): boolean {
  for (let index = start; index < lines.length; index++) {
    const line = lines[index] ?? "";
    if (line.trim() === "" || isQuotedLine(line)) continue;
    if (line.length <= MAX_MARKER_LINE_LENGTH && (isSeparatorLine(line) || isHeaderBlockAt(lines, index) || isAttributionAt(lines, index))) return true;
    return false;
  }
  return true;
}
