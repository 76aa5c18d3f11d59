import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import type { ParsedMessage } from "../../src/interfaces.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/mail/", import.meta.url));

/** The fixtures and their sha256 (see test/fixtures/mail/README.md): a line-ending conversion must fail loudly. */
const FIXTURE_SHA256: Record<string, string> = {
  "mikel-mail/emails/attachment_emails/attachment_pdf.eml": "1659a6d5b24beadd9f8726254281e3a0ef33818af0a137a57b74c822585f28ef",
  "mikel-mail/emails/attachment_emails/attachment_nonascii_filename.eml": "01af7f5a2d13eaa3396e485771fa04b36d17db647488298ffbaa138ff0a3f428",
  "mikel-mail/emails/multi_charset/japanese_iso_2022.eml": "82004fe1135e935d53ce728024672ecad5cacc0acacf93db1e7098013b0275ad",
  "mikel-mail/emails/plain_emails/raw_email_reply.eml": "f88ed2d5ce3d4c3549905387485e812adca301a907a5d4aed1dd7d37747a3335",
  "mikel-mail/emails/plain_emails/raw_email_with_bad_date.eml": "c96ef8735b51e7fc7b07ed61ea45366c8e2886a49230e4c81e3f3a3aa9d9fab9",
  "mikel-mail/emails/error_emails/invalid_subject_characters.eml": "551411035f25c2bcd7a724e2dbc6b8ddde62ccb7e57ade7b2da679c7af73a6a3",
  "mimekit/dkim/multipart-no-end-boundary.msg": "4383a9247780d9967903573c24623afad4bfd7c093350f0c66d8b2e0f5517203",
  "php-mime-mail-parser/issue115": "9b35437845c7a9f3a720f1ea186b77ffc3aa7040ab742091a0022a1cbecf5ef0",
  "php-mime-mail-parser/issue116": "aeb819670eb255721f106b2840074e71236b4cf25360b0d0e9d8b243659b7f90",
  "php-mime-mail-parser/issue212": "c777e2b97e35a098ff219472f4bcc8ee6b295e4cd7f8c62235925a911e4d84af",
  "php-mime-mail-parser/m0026": "3c03c923452f2934716ffd49c621e7ff1b431c908205f010e09cafe2852c157b",
  "php-mime-mail-parser/m0124": "1d2608e2c8d1b9154370d4a1f3ed5fd32518053d4a87837279a341a8b2d435b3",
};

function fixture(path: string): Buffer {
  return readFileSync(FIXTURES + path);
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

/** A message from lines joined with CRLF; `latin1` keeps \xNN escapes as single raw bytes. */
function message(lines: string[], encoding: "utf8" | "latin1" = "utf8"): Buffer {
  return Buffer.from(lines.join("\r\n"), encoding);
}

const parser = new MailparserParser();

/** Every ParsedMessage has this shape, however broken the input. */
function expectWellFormed(parsed: ParsedMessage): void {
  for (const list of [parsed.from, parsed.to, parsed.cc, parsed.replyTo]) {
    expect(Array.isArray(list)).toBe(true);
    for (const address of list) {
      expect(typeof address.name).toBe("string");
      expect(typeof address.address).toBe("string");
    }
  }
  expect(Array.isArray(parsed.references)).toBe(true);
  expect(Array.isArray(parsed.attachments)).toBe(true);
  if (parsed.html !== undefined) expect(typeof parsed.html).toBe("string");
  if (parsed.date !== undefined) expect(new Date(parsed.date).toISOString()).toBe(parsed.date);
  for (const attachment of parsed.attachments) {
    expect(attachment.size).toBe(attachment.content!.length);
    expect(attachment.sha256).toBe(sha256(attachment.content!));
  }
}

describe("fixtures", () => {
  it.each(Object.entries(FIXTURE_SHA256))("%s is byte-exact", (path, expected) => {
    expect(sha256(fixture(path))).toBe(expected);
  });
});

describe("MailparserParser on real messages", () => {
  it("maps a multipart/mixed message with a PDF attachment", async () => {
    const parsed = await parser.parse(fixture("mikel-mail/emails/attachment_emails/attachment_pdf.eml"));
    expectWellFormed(parsed);
    expect(parsed.messageId).toBe("<xxxx@xxxx.com>");
    expect(parsed.date).toBe("2005-05-10T17:26:39.000Z"); // Tue, 10 May 2005 11:26:39 -0600
    expect(parsed.from).toEqual([{ name: "Test Tester", address: "xxxx@xxxx.com" }]);
    expect(parsed.to).toEqual([
      { name: "", address: "xxxx@xxxx.com" },
      { name: "", address: "xxxx@xxxx.com" },
    ]);
    expect(parsed.replyTo).toEqual([{ name: "Test Tester", address: "xxxx@xxxx.com" }]);
    expect(parsed.cc).toEqual([]);
    expect(parsed.subject).toBe("Another PDF with 🎉 Unicode chars in it 🍿");
    expect(parsed.text).toContain("Just attaching another PDF");
    expect(parsed.html).toBeUndefined();
    expect(parsed.parseError).toBeUndefined();

    expect(parsed.attachments).toHaveLength(1);
    const [pdf] = parsed.attachments;
    expect(pdf).toMatchObject({
      filename: "broken.pdf",
      originalFilename: "broken.pdf",
      contentType: "application/pdf",
      size: 1026,
      sha256: "c7d1b9b20df8a2bf2f1e0d00d84bcb56d05e56a044be7f3616f6e99f4a18bd0d",
      inline: false,
    });
    expect(pdf?.contentId).toBeUndefined();
    expect(pdf?.content!.subarray(0, 8).toString("latin1")).toBe("%PDF-1.4");
  });

  it("keeps a raw 8-bit UTF-8 attachment name and decodes an ISO-8859-1 body", async () => {
    const parsed = await parser.parse(fixture("mikel-mail/emails/attachment_emails/attachment_nonascii_filename.eml"));
    expectWellFormed(parsed);
    expect(parsed.text).toBe("This is the first part.");
    expect(parsed.attachments.map((a) => [a.filename, a.originalFilename, a.content!.toString()])).toEqual([["ciële.txt", "ciële.txt", "Hi there.\r\n"]]);
  });

  it("decodes an iso-2022-jp body and a UTF-8 encoded-word subject; no Message-ID or Date stays absent", async () => {
    const parsed = await parser.parse(fixture("mikel-mail/emails/multi_charset/japanese_iso_2022.eml"));
    expectWellFormed(parsed);
    expect(parsed.subject).toBe("まみむめも");
    expect(parsed.text).toBe("すみません。\n\n");
    expect(parsed.to).toEqual([{ name: "みける", address: "raasdnil@gmail.com" }]);
    expect(parsed.messageId).toBeUndefined();
    expect(parsed.date).toBeUndefined();
    expect(parsed.parseError).toBeUndefined();
  });

  it("decodes an iso-2022-jp encoded-word subject", async () => {
    const parsed = await parser.parse(fixture("php-mime-mail-parser/issue116"));
    expect(parsed.subject).toBe("ЖД№41 от 28.09.2016");
    expect(parsed.text).toBe("toto\n\n");
  });

  it("decodes a windows-1250 subject split over two encoded words", async () => {
    const parsed = await parser.parse(fixture("php-mime-mail-parser/issue212"));
    expect(parsed.subject).toBe("Automatyczna odpowiedź: Piotrze, test z 6 miesięcy nauki ciągle na Ciebie czeka");
  });

  it("reads a raw 8-bit Latin-1 subject as windows-1252 instead of U+FFFD, and a windows-1252 encoded word", async () => {
    const parsed = await parser.parse(fixture("mikel-mail/emails/error_emails/invalid_subject_characters.eml"));
    expect(parsed.subject).toBe("Formação FrenetikPolis: Mega Campanha Final Verão | Cursos de Setembro");
    expect(parsed.from).toEqual([{ name: "Formação Frenetikpolis", address: "info@formacaofrenetik.info" }]);
    expect(parsed.to.map((a) => a.address)).toEqual(["martin@internet.ao", "iris@internet.ao", "support@maxnet.ao"]);
  });

  it("keeps cid: links in the HTML and marks the related images inline", async () => {
    const parsed = await parser.parse(fixture("php-mime-mail-parser/issue115"));
    expectWellFormed(parsed);
    expect(parsed.html).toContain('src="cid:same1"');
    expect(parsed.html).not.toContain("data:image");
    expect(parsed.text).toContain("This is an HTML message.");
    expect(
      parsed.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, contentId: a.contentId, inline: a.inline, size: a.size })),
    ).toEqual([
      { filename: "logo.jpg", contentType: "image/gif", contentId: "same1", inline: true, size: 2695 },
      { filename: "background.jpg", contentType: "image/gif", contentId: "same1", inline: true, size: 18255 },
      { filename: "attachment.txt", contentType: "text/plain", contentId: undefined, inline: false, size: 2229 },
    ]);
    // JPEG magic: the base64 was decoded, not passed through
    expect(parsed.attachments[0]?.content!.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
  });

  it("maps a reply's In-Reply-To and References", async () => {
    const parsed = await parser.parse(fixture("mikel-mail/emails/plain_emails/raw_email_reply.eml"));
    expect(parsed.messageId).toBe("<473FFE27.20003@xxx.org>");
    expect(parsed.subject).toBe("Re: Test reply email");
    expect(parsed.inReplyTo).toBe("<348F04F142D69C21-291E56D292BC@xxxx.net>");
    expect(parsed.references).toEqual(["<473FF3B8.9020707@xxx.org>", "<348F04F142D69C21-291E56D292BC@xxxx.net>"]);
    expect(parsed.date).toBe("2007-11-18T08:56:07.000Z");
  });

  it("reports no date for an unparseable Date header (mailparser would say 'now')", async () => {
    const parsed = await parser.parse(fixture("mikel-mail/emails/plain_emails/raw_email_with_bad_date.eml"));
    expect(parsed.date).toBeUndefined();
    expect(parsed.messageId).toBe("<000001c81a67$a4450700$0100007f@localhost>");
    expect(parsed.parseError).toBeUndefined();
  });

  it("gives two attachments with the same name distinct file names", async () => {
    const parsed = await parser.parse(fixture("php-mime-mail-parser/m0026"));
    expect(parsed.attachments.map((a) => [a.filename, a.originalFilename])).toEqual([
      ["ATT00001.txt", "ATT00001.txt"],
      ["ATT00001 (2).txt", "ATT00001.txt"],
    ]);
    // ks_c_5601-1987 body (plain ASCII content) decoded without error
    expect(parsed.text).toContain("My traveling companions!");
  });

  it("strips the path from an attachment named 1234/../../1234.txt", async () => {
    const parsed = await parser.parse(fixture("php-mime-mail-parser/m0124"));
    expectWellFormed(parsed);
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]).toMatchObject({ filename: "1234.txt", originalFilename: "1234/../../1234.txt", size: 0, sha256: sha256(Buffer.alloc(0)) });
    expect(parsed.from[0]?.name).toBe('ФГУП "СибНИА им.С.А.Чаплыгина""');
  });

  it("parses a multipart whose closing boundary is missing", async () => {
    const parsed = await parser.parse(fixture("mimekit/dkim/multipart-no-end-boundary.msg"));
    expectWellFormed(parsed);
    expect(parsed.subject).toBe("Multipart message without closing boundary");
    expect(parsed.text).toBe("Multipart message without closing boundary\n");
    expect(parsed.html).toContain('<div dir="ltr">Multipart message without closing boundary<br></div>');
    expect(parsed.parseError).toBeUndefined();
  });
});

describe("MailparserParser on built messages", () => {
  it("decodes windows-1252 and iso-8859-1 bodies by their declared charset", async () => {
    const raw = message(
      [
        "From: Ren\xe9e <renee@example.com>",
        "Subject: =?iso-8859-1?Q?Caf=E9_cr=E8me?=",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        "",
        "--b",
        "Content-Type: text/plain; charset=windows-1252",
        "Content-Transfer-Encoding: 8bit",
        "",
        "\x80 5 \x93quoted\x94 \x96 na\xefve",
        "--b",
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Gr=FC=DFe aus K=F6ln",
        "--b--",
        "",
      ],
      "latin1",
    );
    const parsed = await parser.parse(raw);
    expect(parsed.subject).toBe("Café crème");
    // 0x80 is the euro sign and 0x93/0x94 curly quotes in windows-1252 (C1 controls in ISO-8859-1)
    expect(parsed.text).toContain("€ 5 “quoted” – naïve");
    expect(parsed.text).toContain("Grüße aus Köln");
  });

  it("flattens address groups and gives an empty name when there is none", async () => {
    const parsed = await parser.parse(
      message([
        "From: <alone@example.com>",
        'To: Team: a@example.com, "Bee, B." <b@example.com>;, c@example.com',
        "Cc: undisclosed-recipients:;",
        "Reply-To: =?utf-8?B?w4lxdWlwZQ==?= <team@example.com>",
        "Subject: groups",
        "",
        "body",
      ]),
    );
    expect(parsed.from).toEqual([{ name: "", address: "alone@example.com" }]);
    expect(parsed.to).toEqual([
      { name: "", address: "a@example.com" },
      { name: "Bee, B.", address: "b@example.com" },
      { name: "", address: "c@example.com" },
    ]);
    expect(parsed.cc).toEqual([]);
    expect(parsed.replyTo).toEqual([{ name: "Équipe", address: "team@example.com" }]);
  });

  it("always gives references as an array, one id included", async () => {
    const parsed = await parser.parse(message(["References: <one@example.com>", "Subject: x", "", "y"]));
    expect(parsed.references).toEqual(["<one@example.com>"]);
    const none = await parser.parse(message(["Subject: x", "", "y"]));
    expect(none.references).toEqual([]);
  });

  it.each([
    ["hour 27", "Tue, 06 Jun 2017 27:39:33 +0600"],
    ["no time", "1"],
    ["words", "yesterday at noon"],
    ["empty", ""],
  ])("reports no date for a %s Date header", async (_label, value) => {
    const parsed = await parser.parse(message([`Date: ${value}`, "Subject: x", "", "y"]));
    expect(parsed.date).toBeUndefined();
  });

  it("converts a folded Date header with a comment", async () => {
    const parsed = await parser.parse(message(["Date: Sun, 23 Sep 2001", " 20:14:35 -0700 (PDT)", "Subject: x", "", "y"]));
    expect(parsed.date).toBe("2001-09-24T03:14:35.000Z");
  });

  it("makes HTML-only mail readable as text and leaves html absent (not false) when there is none", async () => {
    const htmlOnly = await parser.parse(
      message(["Subject: x", "Content-Type: text/html; charset=utf-8", "", "<p>Hello <b>agent</b></p><p>Second paragraph</p>"]),
    );
    expect(htmlOnly.html).toBe("<p>Hello <b>agent</b></p><p>Second paragraph</p>");
    expect(htmlOnly.text).toContain("Hello agent");
    expect(htmlOnly.text).toContain("Second paragraph");

    const textOnly = await parser.parse(message(["Subject: x", "", "plain"]));
    expect(textOnly.html).toBeUndefined();
  });

  it("sanitises and numbers hostile and missing attachment names", async () => {
    const part = (headers: string[], body: string): string[] => ["--b", ...headers, "", body];
    const raw = message([
      "Subject: names",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      ...part(['Content-Type: application/octet-stream; name="..\\\\..\\\\evil.bat"', "Content-Disposition: attachment"], "one"),
      ...part(["Content-Type: application/pdf", "Content-Disposition: attachment; filename*=utf-8''%E2%80%AEfdp.exe"], "two"),
      ...part(["Content-Type: image/png", "Content-Disposition: attachment"], "three"),
      ...part(["Content-Type: application/x-unknown", "Content-Disposition: attachment"], "four"),
      ...part(['Content-Type: text/plain; name="CON.txt"', "Content-Disposition: attachment"], "five"),
      ...part(['Content-Type: text/plain; name="Report.TXT"', "Content-Disposition: attachment"], "six"),
      ...part(['Content-Type: text/plain; name="report.txt"', "Content-Disposition: attachment"], "seven"),
      "--b--",
      "",
    ]);
    const parsed = await parser.parse(raw);
    expectWellFormed(parsed);
    expect(parsed.attachments.map((a) => a.filename)).toEqual([
      "evil.bat",
      "fdp.exe",
      "attachment-3.png",
      "attachment-4",
      "_CON.txt",
      "Report.TXT",
      "report (2).txt",
    ]);
    expect(parsed.attachments[0]?.originalFilename).toBe("..\\..\\evil.bat");
    expect(parsed.attachments[1]?.originalFilename).toBe("\u202efdp.exe");
    expect(parsed.attachments[2]?.originalFilename).toBeUndefined();
  });

  it("does not throw on empty input, NUL bytes or random bytes", async () => {
    let seed = 42;
    const random = Buffer.alloc(64 * 1024);
    for (let i = 0; i < random.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      random[i] = seed >>> 16;
    }
    for (const raw of [Buffer.alloc(0), Buffer.alloc(4096), random, Buffer.from("\r\n\r\n\r\n"), Buffer.from("no colon here at all")]) {
      const parsed = await parser.parse(raw);
      expectWellFormed(parsed);
      expect(parsed.attachments).toEqual([]);
    }
  });

  it("survives a message with more parts than mailparser allows, keeping the top-level headers", async () => {
    const lines = [
      "From: Big Sender <big@example.com>",
      "Subject: too many parts",
      "Message-ID: <many@example.com>",
      "Date: Mon, 20 Oct 2014 07:15:27 +0000",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
    ];
    for (let i = 0; i < 1100; i++) lines.push("--b", "Content-Type: text/plain", "", `part ${i}`);
    lines.push("--b--", "");
    const parsed = await parser.parse(message(lines));
    expectWellFormed(parsed);
    expect(parsed.parseError).toMatch(/^MIME parse failed: /);
    expect(parsed.subject).toBe("too many parts");
    expect(parsed.from).toEqual([{ name: "Big Sender", address: "big@example.com" }]);
    expect(parsed.messageId).toBe("<many@example.com>");
    expect(parsed.date).toBe("2014-10-20T07:15:27.000Z");
    expect(parsed.text).toBeUndefined();
    expect(parsed.attachments).toEqual([]);
  });

  it("survives a header block larger than mailparser allows", async () => {
    const parsed = await parser.parse(Buffer.from(`Subject: huge\r\nX-Padding: ${"a".repeat(2_000_000)}\r\n\r\nbody`));
    expectWellFormed(parsed);
    expect(parsed.parseError).toMatch(/^MIME parse failed: .*header/i);
    // the fallback reads only the first 256 KB, cut at a line end: the Subject line survives
    expect(parsed.subject).toBe("huge");
    expect(parsed.text).toBeUndefined();
  });

  it("keeps the HTML and says why when HTML is too long to convert to text", async () => {
    const small = new MailparserParser({ maxHtmlLengthToConvert: 100 });
    const parsed = await small.parse(message(["Subject: long", "Content-Type: text/html", "", `<p>${"x".repeat(500)}</p>`]));
    expect(parsed.html).toBe(`<p>${"x".repeat(500)}</p>`);
    expect(parsed.text).toBeUndefined();
    expect(parsed.enrichmentErrors).toContainEqual({ enricher: "text-from-html", error: "HTML of 507 characters is over the limit of 100; not processed" });
    expect(parsed.subject).toBe("long");
  });
});
