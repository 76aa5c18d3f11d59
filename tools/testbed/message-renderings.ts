/**
 * One message's content rendered as MIME in two ways, as Exchange may serve the same message
 * differently over time (other boundaries, transfer encodings and charsets, header folding),
 * and variants that differ from it in one thing a person reads. For the stable-id tests: the
 * renderings must share an id, every variant must get one of its own.
 */
import { base64Lines, quotedPrintable } from "./mime-encoding.js";

export interface MessageContent {
  readonly messageId: string;
  readonly date: string;
  readonly from: string;
  readonly to: string;
  readonly cc?: string;
  readonly replyTo?: string;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  readonly attachment: { readonly name: string; readonly bytes: Buffer };
}

/** Shares Message-ID, Date and From with every variant below, as a web form or mass mailer does. */
export function baseContent(seed: string, to: string): MessageContent {
  return {
    messageId: `<form-${seed}@forms.example.test>`,
    date: "Thu, 5 Nov 2026 09:30:00 +0100",
    from: "Contact form <noreply@forms.example.test>",
    to,
    cc: "Sales <sales@example.test>",
    replyTo: "Kunde <kunde@example.test>",
    subject: "Anfrage über das Kontaktformular",
    text: "Guten Tag,\r\nich möchte meine Bestellung ändern.\r\n\r\nGrüße\r\nKunde\r\n",
    html: "<html><body><p>Guten Tag,</p><p>ich möchte meine Bestellung ändern.</p><p>Grüße<br>Kunde</p></body></html>\r\n",
    attachment: { name: "bestellung.pdf", bytes: Buffer.from(`%PDF-1.4 order for ${seed}\n`.repeat(40)) },
  };
}

/** Each differs from the base in one thing a person reads. */
export function variants(base: MessageContent): Record<string, MessageContent> {
  return {
    subject: { ...base, subject: `${base.subject} (2)` },
    body: { ...base, text: base.text.replace("ändern", "stornieren"), html: base.html.replace("ändern", "stornieren") },
    attachment: { ...base, attachment: { ...base.attachment, bytes: Buffer.concat([base.attachment.bytes, Buffer.from("page 2\n")]) } },
    to: { ...base, to: `other-${base.to}` },
    cc: { ...base, cc: "Support <support@example.test>" },
    replyTo: { ...base, replyTo: "Kundin <kundin@example.test>" },
  };
}

/**
 * "a": UTF-8, text quoted-printable, html base64, short folded headers, CRLF.
 * "b": what a re-rendering may look like: other boundaries, text base64 in ISO-8859-1, html
 *      quoted-printable, the subject as an encoded word folded elsewhere, other header order.
 * "a-lf": rendering "a" with bare LF line ends.
 */
export function render(content: MessageContent, style: "a" | "b" | "a-lf"): Buffer {
  if (style === "a-lf") return Buffer.from(render(content, "a").toString("latin1").replace(/\r\n/g, "\n"), "latin1");
  const a = style === "a";
  const mixed = a ? "=_mixed_A1" : "----=_Part_99_b2.mixed";
  const alternative = a ? "=_alt_A1" : "----=_Part_98_b2.alt";
  const textCharset = a ? "utf-8" : "iso-8859-1";
  const textBytes = Buffer.from(content.text, a ? "utf8" : "latin1");
  const subject = a ? `=?utf-8?Q?${qEncode(content.subject)}?=` : `=?iso-8859-1?B?${Buffer.from(content.subject, "latin1").toString("base64")}?=`;
  const headers = [
    ...(a ? [] : [`Subject: ${subject}`]),
    `Message-ID: ${content.messageId}`,
    `Date: ${content.date}`,
    a ? `From: ${content.from}` : `From:\r\n ${content.from}`,
    `To: ${content.to}`,
    ...(content.cc ? [a ? `Cc: ${content.cc}` : `CC:\r\n\t${content.cc}`] : []),
    ...(content.replyTo ? [`Reply-To: ${content.replyTo}`] : []),
    ...(a ? [`Subject: ${subject}`] : []),
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed;${a ? " " : "\r\n\t"}boundary="${mixed}"`,
  ];
  const textPart = a
    ? [`Content-Type: text/plain; charset=${textCharset}`, "Content-Transfer-Encoding: quoted-printable", "", quotedPrintable(textBytes)]
    : [`Content-Type: text/plain; charset="${textCharset}"`, "Content-Transfer-Encoding: base64", "", base64Lines(textBytes)];
  const htmlBytes = Buffer.from(content.html, "utf8");
  const htmlPart = a
    ? ["Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64", "", base64Lines(htmlBytes)]
    : ['Content-Type: text/html; charset="utf-8"', "Content-Transfer-Encoding: quoted-printable", "", quotedPrintable(htmlBytes)];
  const attachment = content.attachment.bytes.toString("base64");
  const attachmentPart = [
    `Content-Type: application/pdf; name="${content.attachment.name}"`,
    `Content-Disposition: attachment; filename="${content.attachment.name}"`,
    "Content-Transfer-Encoding: base64",
    "",
    // Another line length for the other rendering.
    a ? base64Lines(content.attachment.bytes) : (attachment.match(/.{1,64}/g) ?? []).join("\r\n"),
  ];
  const lines = [
    ...headers,
    "",
    `--${mixed}`,
    `Content-Type: multipart/alternative; boundary="${alternative}"`,
    "",
    `--${alternative}`,
    ...textPart,
    `--${alternative}`,
    ...htmlPart,
    `--${alternative}--`,
    `--${mixed}`,
    ...attachmentPart,
    `--${mixed}--`,
    "",
  ];
  return Buffer.from(lines.join("\r\n"), "latin1");
}

/** RFC 2047 Q encoding of UTF-8 text (as latin1 bytes for the header). */
function qEncode(text: string): string {
  return [...Buffer.from(text, "utf8")]
    .map((byte) => (/[A-Za-z0-9]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`))
    .join("");
}
