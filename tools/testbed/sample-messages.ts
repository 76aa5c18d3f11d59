/**
 * Deterministic sample email for tests, the demo and benchmarks: the shapes a contact-centre
 * mailbox really receives, including the awkward ones (legacy charsets, encoded-word headers,
 * inline images, hostile attachment names). The same seed gives the same bytes on every run.
 *
 * Every message is valid MIME with CRLF line endings; base64 and quoted-printable lines stay
 * within 76 characters.
 */
import { createHash } from "node:crypto";
import {
  base64Lines,
  encodedWordB,
  encodedWordQ,
  encodedWordsUtf8,
  latin1,
  quotedPrintable,
  quotedString,
  rfc2231Continuations,
  rfc2231Value,
  windows1252,
} from "./mime-encoding.js";

export const SAMPLE_SHAPES = [
  "plain-ascii",
  "plain-utf8",
  "html-alternative",
  "html-inline-image",
  "attachments",
  "encoded-words",
  "reply",
  "hostile-filenames",
] as const;

export type SampleShape = (typeof SAMPLE_SHAPES)[number];

export interface SampleMessage {
  readonly raw: Buffer;
  /** The Message-ID header value, angle brackets included ("<...>"). */
  readonly messageId: string;
  /** The subject as a reader sees it, encoded-words decoded. */
  readonly subject: string;
  readonly shape: SampleShape;
  /** Attachment file names as the sender wrote them (decoded), in order; inline images included. */
  readonly attachmentFilenames: readonly string[];
  /** For replies: the Message-ID this answers. */
  readonly inReplyTo?: string;
}

export interface SampleOptions {
  /** Different seeds give different Message-IDs, so runs and mailboxes never collide. */
  readonly seed: string;
  /** The To address (the queue mailbox). */
  readonly to: string;
}

const CRLF = "\r\n";
const START_DATE = Date.UTC(2024, 2, 1, 8, 0, 0);

/** A 1x1 transparent PNG: the smallest valid image for the inline-image shape. */
const TINY_PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
/** "日本語のテスト" in ISO-2022-JP (made with iconv; Node cannot encode it). */
const JAPANESE_ISO_2022_JP = Buffer.from("GyRCRnxLXDhsJE4lRiU5JUgbKEI=", "base64");
const JAPANESE_TEXT = "日本語のテスト";
const HOSTILE_FILENAMES = ["../../etc/passwd", "..\\..\\evil.bat", "CON.txt"] as const;

export function sampleMessages(count: number, options: SampleOptions): SampleMessage[] {
  const messages: SampleMessage[] = [];
  for (let index = 0; index < count; index += 1) {
    const shape = SAMPLE_SHAPES[index % SAMPLE_SHAPES.length] as SampleShape;
    messages.push(buildSample(shape, index, options, messages[index - 1]));
  }
  return messages;
}

interface Parts {
  readonly subjectHeader: string;
  readonly subject: string;
  readonly fromHeader?: string;
  readonly extraHeaders?: string[];
  /** The MIME entity: its Content-* headers, an empty line, the body. One char per byte. */
  readonly entity: string;
  readonly attachmentFilenames?: string[];
  readonly inReplyTo?: string;
}

interface BuildContext {
  readonly number: number;
  readonly random: () => number;
  readonly boundary: string;
  readonly previous?: SampleMessage;
}

function buildSample(shape: SampleShape, index: number, options: SampleOptions, previous?: SampleMessage): SampleMessage {
  const seedHash = createHash("sha256").update(options.seed).digest("hex").slice(0, 12);
  const messageId = `<${index + 1}.${seedHash}@testbed.mailfetchd.invalid>`;
  const number = index + 1;
  const random = seededRandom(`${options.seed}:${index}`);
  const parts = SHAPE_BUILDERS[shape]({ number, random, boundary: `=_testbed_${seedHash}_${number}`, previous });
  const header = [
    `Return-Path: <customer${number}@example.com>`,
    `Message-ID: ${messageId}`,
    `Date: ${rfc5322Date(new Date(START_DATE + index * 60_000))}`,
    `From: ${parts.fromHeader ?? `Customer ${number} <customer${number}@example.com>`}`,
    `To: ${options.to}`,
    `Subject: ${parts.subjectHeader}`,
    ...(parts.extraHeaders ?? []),
    "MIME-Version: 1.0",
  ].join(CRLF);
  return {
    raw: Buffer.from(`${header}${CRLF}${parts.entity}`, "latin1"),
    messageId,
    subject: parts.subject,
    shape,
    attachmentFilenames: parts.attachmentFilenames ?? [],
    ...(parts.inReplyTo ? { inReplyTo: parts.inReplyTo } : {}),
  };
}

// Entities are Latin-1 strings (one char per byte) so encoded bytes pass through unchanged.
const SHAPE_BUILDERS: Record<SampleShape, (context: BuildContext) => Parts> = {
  "plain-ascii": ({ number, random }) => {
    const subject = `Order ${orderNumber(random)} has not arrived (${number})`;
    return {
      subjectHeader: subject,
      subject,
      entity: [
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        `Hello,${CRLF}${CRLF}my order has not arrived yet. Could you check, please?${CRLF}${CRLF}Thanks,${CRLF}Customer ${number}${CRLF}`,
      ].join(CRLF),
    };
  },

  "plain-utf8": ({ number }) => {
    const subject = `Grüße aus Köln – Ελληνικά – ${JAPANESE_TEXT} (${number})`;
    const longLine = "A long line that quoted-printable must soft-wrap, with non-ASCII (äöü ß) near the end. ".repeat(2);
    const body = `Grüße aus Köln!${CRLF}${CRLF}Ελληνικά: Καλημέρα σας.${CRLF}${JAPANESE_TEXT}: よろしくお願いします。${CRLF}${CRLF}${longLine}${CRLF}`;
    return {
      subjectHeader: encodedWordsUtf8(subject),
      subject,
      entity: ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable", "", quotedPrintable(Buffer.from(body, "utf8"))].join(
        CRLF,
      ),
    };
  },

  "html-alternative": ({ number, boundary }) => {
    const invoice = 1000 + number;
    const subject = `Question about invoice ${invoice}`;
    return {
      subjectHeader: subject,
      subject,
      entity: [
        `Content-Type: multipart/alternative; boundary="${boundary}"`,
        "",
        "This is a multi-part message in MIME format.",
        `--${boundary}`,
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        quotedPrintable(Buffer.from(`Dear team,${CRLF}${CRLF}please explain invoice ${invoice}.`, "utf8")),
        `--${boundary}`,
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        quotedPrintable(Buffer.from(`<html><body><p>Dear team,</p><p>please explain invoice <b>${invoice}</b>.</p></body></html>`, "utf8")),
        `--${boundary}--`,
        "",
      ].join(CRLF),
    };
  },

  "html-inline-image": ({ number, boundary }) => {
    const subject = `Screenshot of the error (${number})`;
    const contentId = `screenshot${number}@testbed.mailfetchd.invalid`;
    return {
      subjectHeader: subject,
      subject,
      attachmentFilenames: ["screenshot.png"],
      entity: [
        `Content-Type: multipart/related; type="text/html";${CRLF} boundary="${boundary}"`,
        "",
        `--${boundary}`,
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
        "",
        `<html><body><p>See the screenshot:</p>${CRLF}<img src="cid:${contentId}" alt="screenshot">${CRLF}</body></html>`,
        `--${boundary}`,
        'Content-Type: image/png; name="screenshot.png"',
        "Content-Transfer-Encoding: base64",
        `Content-ID: <${contentId}>`,
        'Content-Disposition: inline; filename="screenshot.png"',
        "",
        base64Lines(TINY_PNG),
        `--${boundary}--`,
        "",
      ].join(CRLF),
    };
  },

  attachments: ({ number, random, boundary }) => {
    const subject = `Documents for claim ${orderNumber(random)}`;
    const pdfName = `claim-${number}.pdf`;
    const textName = "Résumé – Grüße.txt";
    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "latin1"), randomBytesFrom(random, 3_000), Buffer.from("\n%%EOF\n", "latin1")]);
    return {
      subjectHeader: subject,
      subject,
      attachmentFilenames: [pdfName, textName],
      entity: [
        `Content-Type: multipart/mixed; boundary="${boundary}"`,
        "",
        `--${boundary}`,
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Please find the documents attached.",
        `--${boundary}`,
        `Content-Type: application/pdf; name="${pdfName}"`,
        "Content-Transfer-Encoding: base64",
        `Content-Disposition: attachment; filename="${pdfName}"`,
        "",
        base64Lines(pdf),
        `--${boundary}`,
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        // RFC 2231 with continuations, as Outlook writes long non-ASCII names.
        `Content-Disposition: attachment;${CRLF} ${rfc2231Continuations("filename", textName)}`,
        "",
        base64Lines(Buffer.from(`Grüße – notes for claim ${number}${CRLF}`, "utf8")),
        `--${boundary}--`,
        "",
      ].join(CRLF),
    };
  },

  "encoded-words": ({ number, boundary }) => {
    // Whitespace between adjacent encoded-words is dropped when decoding (RFC 2047 6.2), so
    // each word carries its own spaces.
    const words = [
      encodedWordQ("ISO-8859-1", latin1("Café ")),
      encodedWordB("UTF-8", Buffer.from("Grüße – Ελληνικά ", "utf8")),
      encodedWordB("iso-2022-jp", JAPANESE_ISO_2022_JP),
      encodedWordQ("windows-1252", windows1252(` €uro “quoted” ${number}`)),
    ];
    return {
      subjectHeader: words.join(`${CRLF} `),
      subject: `Café Grüße – Ελληνικά ${JAPANESE_TEXT} €uro “quoted” ${number}`,
      fromHeader: `${encodedWordQ("UTF-8", Buffer.from("Jürgen Müller", "utf8"))} <juergen${number}@example.com>`,
      entity: [
        `Content-Type: multipart/mixed; boundary="${boundary}"`,
        "",
        `--${boundary}`,
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        quotedPrintable(latin1(`Grüße aus München, Straße ${number}.`)),
        `--${boundary}`,
        "Content-Type: text/plain; charset=windows-1252",
        "Content-Transfer-Encoding: quoted-printable",
        "Content-Disposition: inline",
        "",
        quotedPrintable(windows1252("Price: 25 € – “as agreed”.")),
        `--${boundary}--`,
        "",
      ].join(CRLF),
    };
  },

  reply: ({ number, previous }) => {
    const original = previous?.messageId ?? `<original-${number}@example.com>`;
    const subject = `Re: ${previous?.subject ?? "Your ticket"}`;
    return {
      subjectHeader: /^[\x20-\x7e]*$/.test(subject) ? subject : `Re: ${encodedWordsUtf8(subject.slice(4))}`,
      subject,
      inReplyTo: original,
      extraHeaders: [`In-Reply-To: ${original}`, `References: <thread-root-${number}@example.com>${CRLF} ${original}`],
      entity: [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        // 8bit: raw UTF-8 bytes, written as Latin-1 characters one per byte.
        Buffer.from(`Thanks, that helps – Grüße.${CRLF}${CRLF}> Earlier message quoted here.${CRLF}`, "utf8").toString("latin1"),
      ].join(CRLF),
    };
  },

  "hostile-filenames": ({ boundary }) => {
    const subject = "Files from the customer portal";
    const [traversal, backslashes, deviceName] = HOSTILE_FILENAMES;
    const attachment = (disposition: string, content: string) => [
      `--${boundary}`,
      "Content-Type: application/octet-stream",
      "Content-Transfer-Encoding: base64",
      `Content-Disposition: ${disposition}`,
      "",
      base64Lines(Buffer.from(content, "utf8")),
    ];
    return {
      subjectHeader: subject,
      subject,
      attachmentFilenames: [...HOSTILE_FILENAMES],
      entity: [
        `Content-Type: multipart/mixed; boundary="${boundary}"`,
        "",
        `--${boundary}`,
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Three files attached.",
        ...attachment(`attachment; filename=${quotedString(traversal)}`, "root:x:0:0:not really:/root:/bin/sh\n"),
        // Backslashes via RFC 2231, so no parser's quoted-string quirks change the name.
        ...attachment(`attachment; filename*=${rfc2231Value(backslashes)}`, "@echo off\r\necho harmless\r\n"),
        ...attachment(`attachment; filename=${quotedString(deviceName)}`, "CON is a reserved device name on Windows.\n"),
        `--${boundary}--`,
        "",
      ].join(CRLF),
    };
  },
};

/** "Fri, 01 Mar 2024 08:00:00 +0000" */
function rfc5322Date(date: Date): string {
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${days[date.getUTCDay()]}, ${pad(date.getUTCDate())} ${months[date.getUTCMonth()]} ${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

function orderNumber(random: () => number): string {
  return `A-${Math.floor(random() * 900_000 + 100_000)}`;
}

function randomBytesFrom(random: () => number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

/** mulberry32: a tiny deterministic generator; cryptographic quality is not the point. */
function seededRandom(seed: string): () => number {
  let state = createHash("sha256").update(seed).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}
