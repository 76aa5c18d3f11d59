/**
 * MessageParser on top of mailparser: collectMail (./collect-mail.ts, its simpleParser with big
 * attachments written to scratch files) for the body, simpleParser for a headers-only parse.
 *
 * What mailparser does on its own that we correct for:
 * - an unparseable Date header becomes the current time; we report no date instead;
 * - html is `false` (or unset, with keepCidLinks) when there is none; we leave it absent;
 * - references is a string for one id and an array for more; we always give an array;
 * - address groups nest; we flatten them to mailboxes;
 * - a Subject in raw 8-bit that is not UTF-8 comes out as U+FFFD; we read it as windows-1252.
 * It rejects (rather than degrading) on a header block over 1 MB or more than 1000 MIME parts;
 * parse() rejects only when a scratch file cannot be written (ScratchWriteError: the state
 * directory's trouble, retried); otherwise it falls back to the top-level headers and sets parseError.
 * Every result then goes through the enrichers (src/enrich/: conversation, kind, priority,
 * safe HTML, reply text, TNEF), whose failures are contained and listed in enrichmentErrors.
 */
import { isUtf8 } from "node:buffer";
import type { Readable } from "node:stream";
import { simpleParser } from "mailparser";
import type { AddressObject, EmailAddress, ParsedMail, SimpleParserOptions } from "mailparser";

import type { Address, MessageParser, ParseFileOptions, ParsedAttachment, ParsedMessage } from "../interfaces.js";
import { safeFileName, uniqueFileName } from "../support/safe-filename.js";
import type { Enricher } from "../enrich/enrich.js";
import { enrichParsedMail, type ParsedMailEnrichment } from "../enrich/enrich-parsed-mail.js";
import { hasPlainTextBody, hasPlainTextBodyIn } from "../enrich/plain-text-body.js";
import { enrichersReadContentOf } from "../enrich/reads-content.js";
import { contentFingerprint } from "./content-fingerprint.js";
import { collectMail, ScratchWriteError, type CollectedMail, type SpillOptions } from "./collect-mail.js";

export interface MailparserParserOptions {
  /**
   * HTML longer than this (in characters) is not converted to text for an HTML-only message,
   * nor sanitised; the html is kept and enrichmentErrors says why text is missing.
   * html-to-text costs about 0.2 s per MB of ordinary HTML.
   */
  readonly maxHtmlLengthToConvert?: number;
  /** Replaces the standard enrichers (src/enrich/enrich.ts); for tests. */
  readonly enrichers?: readonly Enricher[];
}

/**
 * With a scratch directory, an attachment growing past this is written there rather than held:
 * a 37 MB attachment then costs a file, not 2 x 37 MB in the worker plus 37 MB in the daemon.
 */
const SPILL_ABOVE_BYTES = 1024 * 1024;

/** When the full parse fails, at most this much of the message start is read again for its headers (mailparser's own limit is 1 MB). */
const FALLBACK_HEADER_BYTES = 256 * 1024;
const MAX_REASON_LENGTH = 200;

export class MailparserParser implements MessageParser {
  private readonly options: SimpleParserOptions;
  private readonly enrichment: ParsedMailEnrichment;

  constructor(options: MailparserParserOptions = {}) {
    // Sanitising costs about what converting to text does; the same limit bounds both.
    this.enrichment = {
      maxHtmlLength: options.maxHtmlLengthToConvert ?? 5_000_000,
      ...(options.enrichers === undefined ? {} : { enrichers: options.enrichers }),
    };
    this.options = {
      // cid: references stay as they are: handlers store the images as attachments next to
      // the HTML, and data: URLs would double the size of every message with a logo.
      keepCidLinks: true,
      skipImageLinks: true,
      // An HTML-only message still gets a text body, which is what agents and search read, but
      // from the text-from-html enricher, after our exact nesting check and with bounded quote
      // marks (src/enrich/html-text.ts): mailparser's own conversion is quadratic on `<p><li>`
      // nesting and on deep blockquotes.
      skipHtmlToText: true,
      maxHtmlLengthToParse: options.maxHtmlLengthToConvert ?? 5_000_000,
      // textAsHtml is not used, and building it linkifies the whole text (about 40 ms per MB).
      // This also keeps plain-text parts out of `html`, so html is only what the sender wrote as HTML.
      skipTextToHtml: true,
      skipTextLinks: true,
      // We hash with sha256 ourselves; mailparser's default md5 would be wasted work.
      checksumAlgo: false,
      // A DSN's message/delivery-status part stays an attachment (not appended to `text`), so
      // the bounce enricher can read its recipients and agents see it as a file.
      keepDeliveryStatus: true,
    };
  }

  async parse(raw: Buffer, options: ParseFileOptions = {}): Promise<ParsedMessage> {
    let mail: CollectedMail;
    try {
      mail = await collectMail(raw, this.options, spillOptions(options));
    } catch (error) {
      if (error instanceof ScratchWriteError) throw error;
      return this.parseHeadersOnly(raw, `MIME parse failed: ${reason(error)}`);
    }
    try {
      // Enrichment never rejects; this catch is for the mapping.
      return await enrichParsedMail(mail, toParsedMessage(mail, true), { ...this.enrichment, plainTextBody: () => hasPlainTextBody(raw) });
    } catch (error) {
      // Mapping is our code on mailparser's output; a surprise there must not lose the message either.
      return this.parseHeadersOnly(raw, `MIME mapping failed: ${reason(error)}`);
    }
  }

  /**
   * Like parse(), reading the message from a stream, so it is never whole in memory (a worker
   * parsing a 50 MB spool file holds its parts, not also its raw bytes). `open` gives the
   * message from its start; it is called again for the header block when the full parse fails.
   */
  async parseStream(open: () => Readable, options: ParseFileOptions = {}): Promise<ParsedMessage> {
    let mail: CollectedMail;
    try {
      mail = await collectMail(open(), this.options, spillOptions(options));
    } catch (error) {
      if (error instanceof ScratchWriteError) throw error;
      return this.parseHeadersOnly(await readStart(open(), FALLBACK_HEADER_BYTES + 1), `MIME parse failed: ${reason(error)}`);
    }
    try {
      // Re-reads the file for its MIME headers only when it has both html and text.
      return await enrichParsedMail(mail, toParsedMessage(mail, true), { ...this.enrichment, plainTextBody: () => hasPlainTextBodyIn(open()) });
    } catch (error) {
      return this.parseHeadersOnly(await readStart(open(), FALLBACK_HEADER_BYTES + 1), `MIME mapping failed: ${reason(error)}`);
    }
  }

  /** The top-level headers alone, when the whole message could not be parsed (or took too long). */
  async parseHeadersOnly(raw: Buffer, parseError: string): Promise<ParsedMessage> {
    const empty: ParsedMessage = { from: [], to: [], cc: [], replyTo: [], references: [], attachments: [], parseError };
    try {
      const mail = await simpleParser(headerBlock(raw), this.options);
      // The headers still give the conversation, the kind and the priority.
      return await enrichParsedMail(mail, { ...toParsedMessage(mail, false), parseError }, this.enrichment);
    } catch {
      return empty;
    }
  }
}

function spillOptions(options: ParseFileOptions): SpillOptions | undefined {
  if (options.scratchDir === undefined) return undefined;
  return { dir: options.scratchDir, aboveBytes: SPILL_ABOVE_BYTES, keepInMemory: enrichersReadContentOf };
}

/** At most `limit` bytes from the start of `stream`, which is then closed; empty when unreadable. */
async function readStart(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= limit) break;
    }
  } catch {
    // An unreadable message still gets a ParsedMessage: empty, with the parse error set.
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, limit);
}

/** The header block of `raw` (up to FALLBACK_HEADER_BYTES, cut at a line end) followed by an empty body. */
function headerBlock(raw: Buffer): Buffer {
  const head = raw.subarray(0, FALLBACK_HEADER_BYTES);
  const crlf = head.indexOf("\r\n\r\n");
  const lf = head.indexOf("\n\n");
  const ends = [crlf, lf].filter((index) => index >= 0);
  let end: number;
  if (ends.length > 0) end = Math.min(...ends);
  else if (raw.length <= FALLBACK_HEADER_BYTES) end = head.length;
  else end = Math.max(head.lastIndexOf("\n"), 0);
  return Buffer.concat([head.subarray(0, end), Buffer.from("\r\n\r\n")]);
}

/** With the body (text, html, attachments) only from collectMail; a headers-only parse has none. */
function toParsedMessage(mail: CollectedMail, withBody: true): ParsedMessage;
function toParsedMessage(mail: ParsedMail, withBody: false): ParsedMessage;
function toParsedMessage(mail: ParsedMail, withBody: boolean): ParsedMessage {
  const textConversionError = withBody && mail.textConversionError ? `HTML not converted to text: ${reason(mail.textConversionError)}` : undefined;
  const parsed: ParsedMessage = {
    messageId: nonEmptyString(mail.messageId),
    date: headerDate(mail),
    from: flattenAddresses(mail.from),
    to: flattenAddresses(mail.to),
    cc: flattenAddresses(mail.cc),
    replyTo: flattenAddresses(mail.replyTo),
    subject: decodeSubject(mail),
    text: withBody ? bodyText(mail) : undefined,
    html: withBody && typeof mail.html === "string" ? mail.html : undefined,
    inReplyTo: nonEmptyString(mail.inReplyTo),
    references: [mail.references ?? []].flat().filter((id): id is string => typeof id === "string" && id !== ""),
    attachments: withBody ? toAttachments((mail as CollectedMail).attachments) : [],
    ...(textConversionError === undefined ? {} : { parseError: textConversionError }),
  };
  return withBody ? { ...parsed, contentFingerprint: contentFingerprint(parsed) } : parsed;
}

/**
 * The text parts, or undefined when there is no text (the enricher then converts the HTML).
 * With skipHtmlToText mailparser gives "" for an HTML-only message; "" alongside HTML is no
 * text a sender wrote either.
 */
function bodyText(mail: ParsedMail): string | undefined {
  if (typeof mail.text !== "string") return undefined;
  return mail.text.trim() === "" && typeof mail.html === "string" ? undefined : mail.text;
}

/**
 * The Date header as ISO 8601, from the raw header line: mailparser replaces a date it cannot
 * parse with the current time, which would make a broken message look freshly sent.
 */
function headerDate(mail: ParsedMail): string | undefined {
  const line = mail.headerLines?.find((header) => header.key === "date")?.line;
  if (line === undefined) return undefined;
  const value = line
    .slice(line.indexOf(":") + 1)
    .replace(/\r?\n/g, "")
    .trim();
  // Date.parse accepts almost anything with a number in it ("1" is 2001-01-01); a real Date
  // header has at least a day-month-year and an hh:mm time.
  if (!/\d{1,2}:\d{2}/.test(value) || !/\d{4}|\b\d{2}\b/.test(value)) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * The subject, with one repair: mailparser reads a raw 8-bit header as UTF-8, so a sender that
 * writes Latin-1 / windows-1252 bytes unencoded (old mailers, some ticket systems) gets U+FFFD
 * for every accented letter. When the raw value is not valid UTF-8 and has no encoded words,
 * windows-1252 (a superset of ISO-8859-1 for printable text) is the usual intent.
 */
function decodeSubject(mail: ParsedMail): string | undefined {
  const subject = mail.subject;
  if (typeof subject !== "string" || !subject.includes("\ufffd")) return typeof subject === "string" ? subject : undefined;
  const line = mail.headerLines?.find((header) => header.key === "subject")?.line;
  if (line === undefined) return subject;
  // headerLines holds the raw bytes as a binary (latin1) string.
  const value = line
    .slice(line.indexOf(":") + 1)
    .replace(/\r?\n(?=[ \t])/g, "")
    .trim();
  if (value.includes("=?")) return subject;
  const bytes = Buffer.from(value, "latin1");
  return isUtf8(bytes) ? subject : decodeWindows1252(bytes);
}

// windows-1252 differs from ISO-8859-1 only in 0x80-0x9F; the five undefined bytes stay C1 controls.
const WINDOWS_1252_HIGH =
  "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";

/** By hand: Node 20's TextDecoder("windows-1252") decodes 0x80-0x9F as ISO-8859-1 C1 controls, not as windows-1252. */
function decodeWindows1252(bytes: Buffer): string {
  let text = "";
  for (const byte of bytes) text += byte >= 0x80 && byte <= 0x9f ? WINDOWS_1252_HIGH[byte - 0x80] : String.fromCharCode(byte);
  return text;
}

function flattenAddresses(header: AddressObject | AddressObject[] | undefined): Address[] {
  const addresses: Address[] = [];
  const visit = (entry: EmailAddress): void => {
    if (entry.group !== undefined) {
      entry.group.forEach(visit);
      return;
    }
    const name = (entry.name ?? "").trim();
    const address = (entry.address ?? "").trim();
    if (name !== "" || address !== "") addresses.push({ name, address });
  };
  for (const object of [header ?? []].flat()) {
    for (const entry of object.value ?? []) visit(entry);
  }
  return addresses;
}

function toAttachments(attachments: CollectedMail["attachments"]): ParsedAttachment[] {
  const taken = new Set<string>();
  return attachments.map((attachment, index) => {
    // collectMail hashed the bytes on their way (and may have put them in a file).
    const { content, file, size, sha256 } = attachment.collected;
    const contentType = (attachment.contentType || "application/octet-stream").toLowerCase();
    const originalFilename = nonEmptyString(attachment.filename);
    const fallback = `attachment-${index + 1}${extensionFor(contentType)}`;
    const contentId = nonEmptyString(attachment.cid ?? attachment.contentId?.trim().replace(/^<|>$/g, "").trim());
    return {
      filename: uniqueFileName(safeFileName(originalFilename, fallback), taken),
      ...(originalFilename === undefined ? {} : { originalFilename }),
      contentType,
      size,
      sha256,
      ...(contentId === undefined ? {} : { contentId }),
      inline: attachment.contentDisposition?.toLowerCase() === "inline" || (attachment.related === true && contentId !== undefined),
      ...(file !== undefined ? { file } : { content }),
    };
  });
}

const EXTENSIONS: Readonly<Record<string, string>> = {
  "text/plain": ".txt",
  "text/html": ".html",
  "text/csv": ".csv",
  "text/calendar": ".ics",
  "application/ics": ".ics",
  "text/vcard": ".vcf",
  "text/x-vcard": ".vcf",
  "text/xml": ".xml",
  "application/xml": ".xml",
  "application/json": ".json",
  "text/rfc822-headers": ".txt",
  "message/rfc822": ".eml",
  "message/delivery-status": ".txt",
  "message/disposition-notification": ".txt",
  "message/feedback-report": ".txt",
  "application/pdf": ".pdf",
  "application/zip": ".zip",
  "application/gzip": ".gz",
  "application/rtf": ".rtf",
  "text/rtf": ".rtf",
  "application/ms-tnef": ".dat",
  "application/vnd.ms-tnef": ".dat",
  "application/vnd.ms-outlook": ".msg",
  "application/msword": ".doc",
  "application/vnd.ms-excel": ".xls",
  "application/vnd.ms-powerpoint": ".ppt",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
  "application/pkcs7-signature": ".p7s",
  "application/x-pkcs7-signature": ".p7s",
  "application/pkcs7-mime": ".p7m",
  "application/x-pkcs7-mime": ".p7m",
  "application/pgp-signature": ".asc",
  "application/pgp-encrypted": ".asc",
  "image/png": ".png",
  "image/jpeg": ".jpg",
  "image/jpg": ".jpg",
  "image/pjpeg": ".jpg",
  "image/gif": ".gif",
  "image/webp": ".webp",
  "image/bmp": ".bmp",
  "image/tiff": ".tif",
  "image/svg+xml": ".svg",
  "image/heic": ".heic",
  "audio/mpeg": ".mp3",
  "audio/wav": ".wav",
  "audio/x-wav": ".wav",
  "video/mp4": ".mp4",
};

function extensionFor(contentType: string): string {
  return EXTENSIONS[contentType] ?? "";
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const oneLine = message.replace(/\s+/g, " ").trim() || "unknown error";
  return oneLine.length > MAX_REASON_LENGTH ? `${oneLine.slice(0, MAX_REASON_LENGTH - 1)}…` : oneLine;
}
