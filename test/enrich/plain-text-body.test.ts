import { Readable } from "node:stream";

import { describe, expect, it } from "vitest";

import { hasPlainTextBody, hasPlainTextBodyIn } from "../../src/enrich/plain-text-body.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { customerMail, fixture, mail, parse } from "./helpers.js";

const htmlOnly = customerMail({ contentType: "text/html; charset=utf-8", body: "<p>Only <b>HTML</b> here</p>" });
const alternative = customerMail({
  contentType: 'multipart/alternative; boundary="alt"',
  body: ["--alt", "Content-Type: text/plain", "", "Plain words", "--alt", "Content-Type: text/html", "", "<p>HTML words</p>", "--alt--"],
});
const htmlWithTextAttachment = customerMail({
  contentType: 'multipart/mixed; boundary="mix"',
  body: [
    "--mix",
    "Content-Type: text/html",
    "",
    "<p>See the log</p>",
    "--mix",
    "Content-Type: text/plain",
    'Content-Disposition: attachment; filename="log.txt"',
    "",
    "log lines",
    "--mix--",
    "Content-Type: text/plain", // epilogue: not a part
    "",
  ],
});
const forwardedPlainInsideHtml = customerMail({
  contentType: 'multipart/mixed; boundary="fw"',
  body: [
    "--fw",
    "Content-Type: text/html",
    "",
    "<p>Forwarding</p>",
    "--fw",
    "Content-Type: message/rfc822",
    "",
    "Subject: old",
    "Content-Type: text/plain",
    "",
    "old text",
    "--fw--",
  ],
});

describe("hasPlainTextBody", () => {
  it.each([
    ["HTML only", htmlOnly, false],
    ["text and HTML alternatives", alternative, true],
    ["HTML with a .txt attachment", htmlWithTextAttachment, false],
    ["HTML with a forwarded plain-text message", forwardedPlainInsideHtml, false],
    ["no Content-Type at all (RFC 2045: text/plain)", mail(["From: a@example.net", "Subject: x"], "hi"), true],
  ])("%s: %s", async (_name, raw, expected) => {
    expect(hasPlainTextBody(Buffer.from(raw))).toBe(expected);
    // The same from a stream cut into tiny chunks, as the parser worker reads a spool file.
    const bytes = Buffer.from(raw);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 7) }, (_, index) => bytes.subarray(index * 7, index * 7 + 7));
    expect(await hasPlainTextBodyIn(Readable.from(chunks))).toBe(expected);
  });

  it("a failing stream gives 'unknown'", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("disk gone"));
      },
    });
    expect(await hasPlainTextBodyIn(failing)).toBeUndefined();
  });
});

describe("textFromHtml through the parser", () => {
  it("HTML as the whole message: mailparser's text, marked as converted", async () => {
    const parsed = await parse(htmlOnly);
    expect(parsed.text).toBe("Only HTML here");
    expect(parsed.textFromHtml).toBe(true);
  });

  it("HTML with attachments and no text part: converted here (mailparser leaves text empty)", async () => {
    const parsed = await parse(htmlWithTextAttachment);
    expect(parsed.text).toBe("See the log");
    expect(parsed.textFromHtml).toBe(true);
    expect(parsed.replyText).toBe("See the log");
  });

  it("text written by the sender is not marked", async () => {
    const parsed = await parse(alternative);
    expect(parsed.text).toBe("Plain words");
    expect(parsed.textFromHtml).toBe(false);
  });

  it("parseStream re-reads the file's headers for it", async () => {
    const parser = new MailparserParser();
    const fromStream = await parser.parseStream(() => Readable.from([Buffer.from(htmlOnly)]));
    expect(fromStream.textFromHtml).toBe(true);
    const real = fixture("chains/outlook/1-first.eml");
    expect((await parser.parseStream(() => Readable.from([real]))).textFromHtml).toBe(false);
  });
});
