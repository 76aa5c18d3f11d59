/**
 * Whether the sender wrote a text/plain body, or only HTML. mailparser fills `text` either
 * way (converting the HTML when there is no plain part) and does not say which; consumers
 * that index or quote `text` want to know (README "Safe HTML").
 *
 * Read from the MIME header blocks of the raw message, line by line, so it works on a
 * buffer and on a stream alike without holding the message: the message's header block, and
 * the header block after each boundary line of a multipart it declared. A text/plain part that
 * is not an attachment counts, and so does a part without a Content-Type (RFC 2045: text/plain).
 * Forwarded messages (message/rfc822) are not looked into: their text is not this one's.
 */
import type { Readable } from "node:stream";

/** A header line longer than this is cut when kept: only its start matters. */
const MAX_KEPT_LINE = 4096;
/** mailparser stops at 1000 parts; nesting is far shallower. */
const MAX_BOUNDARIES = 100;

export class PlainTextBodyDetector {
  private found = false;
  private inHeaders = true;
  private block = "";
  private readonly boundaries: string[] = [];
  private partial = "";

  /** Feeds the next bytes of the raw message; returns true as soon as a plain-text body is certain. */
  write(chunk: Buffer): boolean {
    if (this.found) return true;
    const text = this.partial + chunk.toString("latin1");
    let start = 0;
    while (start < text.length) {
      // In a body only lines starting with "--" matter: jump from one to the next (a 50 MB
      // base64 attachment is a million lines).
      if (!this.inHeaders && !text.startsWith("--", start)) {
        const next = text.indexOf("\n--", start);
        if (next === -1) {
          start = text.lastIndexOf("\n") + 1 || start;
          break;
        }
        start = next + 1;
      }
      const end = text.indexOf("\n", start);
      if (end === -1) break;
      this.line(text.slice(start, end).replace(/\r$/, ""));
      start = end + 1;
      if (this.found) return true;
    }
    this.partial = text.slice(start, start + MAX_KEPT_LINE);
    return false;
  }

  /** The answer, once the whole message has been written. */
  end(): boolean {
    if (!this.found && this.partial !== "") this.line(this.partial.replace(/\r$/, ""));
    if (!this.found && this.inHeaders) this.closeBlock();
    return this.found;
  }

  private line(line: string): void {
    if (this.inHeaders) {
      if (line.trim() === "") {
        this.closeBlock();
        this.inHeaders = false;
      } else if (/^[ \t]/.test(line)) {
        this.block += ` ${line.trim().slice(0, MAX_KEPT_LINE)}`;
      } else {
        this.block += `\n${line.slice(0, MAX_KEPT_LINE)}`;
      }
    } else if (line.startsWith("--")) {
      // After a boundary, a part's header block follows; after a closing one ("--b--"), the epilogue.
      const opens = this.boundaries.some((boundary) => line.startsWith(boundary) && line.slice(boundary.length).trim() === "");
      if (opens) {
        this.inHeaders = true;
        this.block = "";
      }
    }
  }

  private closeBlock(): void {
    const contentType = /\ncontent-type:[ \t]*"?([^;\s"]*)/i.exec(this.block)?.[1]?.toLowerCase();
    const attachment = /\ncontent-disposition:[ \t]*"?attachment\b/i.test(this.block);
    if ((contentType === undefined || contentType === "text/plain") && !attachment) this.found = true;
    if (contentType?.startsWith("multipart/")) {
      const boundary = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(this.block);
      const value = boundary?.[1] ?? boundary?.[2];
      if (value !== undefined && this.boundaries.length < MAX_BOUNDARIES) this.boundaries.push(`--${value}`);
    }
    this.block = "";
  }
}

/** Slices of the raw message fed at a time: no string as large as the message is built. */
const SLICE_BYTES = 64 * 1024;

export function hasPlainTextBody(raw: Buffer): boolean {
  const detector = new PlainTextBodyDetector();
  for (let offset = 0; offset < raw.length; offset += SLICE_BYTES) {
    if (detector.write(raw.subarray(offset, offset + SLICE_BYTES))) return true;
  }
  return detector.end();
}

/** The same, reading a stream (which is then destroyed); undefined when the stream fails. */
export async function hasPlainTextBodyIn(stream: Readable): Promise<boolean | undefined> {
  const detector = new PlainTextBodyDetector();
  try {
    for await (const chunk of stream) {
      if (detector.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), "latin1"))) return true;
    }
    return detector.end();
  } catch {
    return undefined;
  } finally {
    stream.destroy();
  }
}
