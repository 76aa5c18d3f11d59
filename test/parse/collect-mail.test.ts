/**
 * Attachments spilled to scratch files while parsing (src/parse/collect-mail.ts): big ones go
 * to files with the right bytes, size and hash; small ones, and the ones the enrichers read
 * (calendar, delivery status, TNEF), stay in memory whatever their size.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { MailparserParser } from "../../src/parse/mail-parser.js";

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function part(contentType: string, filename: string, bytes: Buffer): string {
  const base64 = bytes.toString("base64").replace(/.{76}/g, "$&\r\n");
  return `--b\r\nContent-Type: ${contentType}; name="${filename}"\r\nContent-Disposition: attachment; filename="${filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64}\r\n`;
}

function message(parts: string[]): Buffer {
  return Buffer.from(
    `From: a@example.test\r\nTo: q@example.test\r\nSubject: files\r\nMessage-ID: <files@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n` +
      `--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n${parts.join("")}--b--\r\n`,
  );
}

describe("attachments spilled to scratch files", () => {
  const pdf = randomBytes(3 * 1024 * 1024);
  const small = randomBytes(200 * 1024);
  const calendar = Buffer.from(`BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n${"X-PAD:".padEnd(70, "x")}\r\n`.repeat(30_000) + "END:VCALENDAR\r\n");

  it("writes a big attachment to a file (right bytes, size, hash), keeps small and enricher-read ones in memory", async () => {
    const scratchDir = path.join(mkdtempSync(path.join(tmpdir(), "mailfetchd-collect-")), "m1");
    const raw = message([part("application/pdf", "big.pdf", pdf), part("image/png", "small.png", small), part("text/calendar", "invite.ics", calendar)]);
    const parsed = await new MailparserParser().parse(raw, { scratchDir });

    const [big, little, invite] = parsed.attachments;
    expect(big?.content).toBeUndefined();
    expect(path.dirname(big!.file!)).toBe(scratchDir);
    expect(readFileSync(big!.file!).equals(pdf)).toBe(true);
    expect(big).toMatchObject({ filename: "big.pdf", size: pdf.length, sha256: sha256(pdf) });

    expect(little?.file).toBeUndefined();
    expect(little?.content?.equals(small)).toBe(true);
    expect(little?.sha256).toBe(sha256(small));

    expect(calendar.length).toBeGreaterThan(1024 * 1024);
    expect(invite?.file).toBeUndefined();
    expect(invite?.content?.equals(calendar)).toBe(true);
    expect(readdirSync(scratchDir)).toHaveLength(1);
  });

  it("gives the same parse as without a scratch directory, only with the bytes moved", async () => {
    const raw = message([part("application/pdf", "big.pdf", pdf), part("image/png", "small.png", small)]);
    const scratchDir = path.join(mkdtempSync(path.join(tmpdir(), "mailfetchd-collect-")), "m2");
    const [withScratch, inMemory] = [await new MailparserParser().parse(raw, { scratchDir }), await new MailparserParser().parse(raw)];
    const strip = (attachments: typeof inMemory.attachments) => attachments.map(({ content: _c, file: _f, ...rest }) => rest);
    expect({ ...withScratch, attachments: strip(withScratch.attachments) }).toEqual({ ...inMemory, attachments: strip(inMemory.attachments) });
    expect(inMemory.attachments[0]?.content?.equals(pdf)).toBe(true);
  });

  it("creates no scratch directory when nothing is big", async () => {
    const scratchDir = path.join(mkdtempSync(path.join(tmpdir(), "mailfetchd-collect-")), "m3");
    const parsed = await new MailparserParser().parse(message([part("image/png", "small.png", small)]), { scratchDir });
    expect(parsed.attachments[0]?.content?.equals(small)).toBe(true);
    expect(existsSync(scratchDir)).toBe(false);
  });
});
