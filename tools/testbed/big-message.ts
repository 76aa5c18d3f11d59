/**
 * One big message, as the big-message test and benchmark need it: an HTML-only body of a few
 * MB (html-to-text is the costly part of parsing) and one base64 attachment filling the rest.
 */
import { createHash } from "node:crypto";
import { base64LinesBuffer, decodedSizeFor, seededBytes, seededHtml } from "./generated-mime.js";

export interface BigMessage {
  readonly raw: Buffer;
  readonly messageId: string;
  readonly attachmentFilename: string;
  readonly attachmentSize: number;
  readonly attachmentSha256: string;
}

export function bigMessage(options: { seed: string; to: string; totalBytes: number; htmlBytes: number }): BigMessage {
  const { seed, to } = options;
  const messageId = `<big-${createHash("sha256").update(seed).digest("hex").slice(0, 16)}@bench.example.test>`;
  const boundary = `=_big_${seed.replace(/[^a-z0-9]/gi, "")}`;
  const htmlPart = base64LinesBuffer(Buffer.from(seededHtml(`${seed}:html`, options.htmlBytes), "utf8"));
  const head = Buffer.from(
    [
      `From: "Großkunde GmbH" <orders@customer.example.test>`,
      `To: <${to}>`,
      `Subject: =?UTF-8?B?${Buffer.from("Große Bestellung mit Anhang").toString("base64")}?=`,
      `Date: Tue, 05 Mar 2024 10:00:00 +0000`,
      `Message-ID: ${messageId}`,
      `MIME-Version: 1.0`,
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      ``,
      `--${boundary}`,
      `Content-Type: text/html; charset=utf-8`,
      `Content-Transfer-Encoding: base64`,
      ``,
      ``,
    ].join("\r\n"),
  );
  const attachmentFilename = "scan-archive.bin";
  const attachmentHead = Buffer.from(
    [
      ``,
      `--${boundary}`,
      `Content-Type: application/octet-stream; name="${attachmentFilename}"`,
      `Content-Disposition: attachment; filename="${attachmentFilename}"`,
      `Content-Transfer-Encoding: base64`,
      ``,
      ``,
    ].join("\r\n"),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const room = options.totalBytes - head.length - htmlPart.length - attachmentHead.length - tail.length;
  const attachment = seededBytes(`${seed}:attachment`, decodedSizeFor(room));
  const raw = Buffer.concat([head, htmlPart, attachmentHead, base64LinesBuffer(attachment), tail]);
  return {
    raw,
    messageId,
    attachmentFilename,
    attachmentSize: attachment.length,
    attachmentSha256: createHash("sha256").update(attachment).digest("hex"),
  };
}
