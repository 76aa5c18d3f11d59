/**
 * The sample messages parse to what they claim (checked with mailparser, the parser the
 * product uses), are deterministic per seed, and are well-formed MIME on the wire.
 */
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import { SAMPLE_SHAPES, sampleMessages } from "../../tools/testbed/sample-messages.js";

const TO = "queue@contoso.example";

describe("sample messages", () => {
  const samples = sampleMessages(SAMPLE_SHAPES.length * 2, { seed: "sample-test", to: TO });

  it("cycles through every shape", () => {
    expect(samples.map((sample) => sample.shape)).toEqual([...SAMPLE_SHAPES, ...SAMPLE_SHAPES]);
  });

  it("is deterministic per seed and different across seeds", () => {
    const again = sampleMessages(samples.length, { seed: "sample-test", to: TO });
    expect(again.map((sample) => sample.raw.toString("base64"))).toEqual(samples.map((sample) => sample.raw.toString("base64")));
    const other = sampleMessages(1, { seed: "another seed", to: TO });
    expect(other[0]?.messageId).not.toBe(samples[0]?.messageId);
  });

  it("gives every message a unique Message-ID", () => {
    expect(new Set(samples.map((sample) => sample.messageId)).size).toBe(samples.length);
  });

  it("uses CRLF line endings only, with no line over 998 characters and base64 lines of at most 76", () => {
    for (const sample of samples) {
      const text = sample.raw.toString("latin1");
      expect(/(^|[^\r])\n/.test(text), `${sample.shape} has a bare LF`).toBe(false);
      expect(/\r(?!\n)/.test(text), `${sample.shape} has a bare CR`).toBe(false);
      for (const line of text.split("\r\n")) {
        expect(line.length).toBeLessThanOrEqual(998);
        if (/^[A-Za-z0-9+/]{60,}={0,2}$/.test(line)) expect(line.length).toBeLessThanOrEqual(76);
      }
    }
  });

  it.each(SAMPLE_SHAPES.map((shape, index) => [shape, index] as const))("parses %s to the subject, ids and attachments it declares", async (_shape, index) => {
    const sample = samples[index]!;
    const parsed = await simpleParser(sample.raw);
    expect(parsed.subject).toBe(sample.subject);
    expect(parsed.messageId).toBe(sample.messageId);
    expect(parsed.date?.toISOString()).toMatch(/^2024-03-01T08:/);
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value[0]?.address : undefined).toBe(TO);
    expect(parsed.attachments.map((attachment) => attachment.filename)).toEqual(sample.attachmentFilenames);
    if (sample.inReplyTo) {
      expect(parsed.inReplyTo).toBe(sample.inReplyTo);
      expect(parsed.references).toContain(sample.inReplyTo);
    }
  });

  it("decodes the charsets it promises", async () => {
    const byShape = (shape: string) => simpleParser(samples.find((sample) => sample.shape === shape)!.raw);

    const utf8 = await byShape("plain-utf8");
    expect(utf8.text).toContain("Grüße aus Köln!");
    expect(utf8.text).toContain("Ελληνικά");
    expect(utf8.text).toContain("日本語");

    const legacy = await byShape("encoded-words");
    expect(legacy.text).toContain("Grüße aus München, Straße"); // iso-8859-1
    expect(legacy.text).toContain("25 € – “as agreed”"); // windows-1252
    expect(legacy.from?.value[0]?.name).toBe("Jürgen Müller");

    // mailparser rewrites cid: links into data: URIs unless told to keep them.
    const inlineSample = samples.find((sample) => sample.shape === "html-inline-image")!;
    const inline = await simpleParser(inlineSample.raw, { keepCidLinks: true });
    const image = inline.attachments[0]!;
    expect(image.contentType).toBe("image/png");
    expect(image.contentDisposition).toBe("inline");
    expect(image.content.subarray(1, 4).toString("latin1")).toBe("PNG");
    expect(image.cid).toMatch(/^screenshot\d+@testbed\.mailfetchd\.invalid$/);
    expect(inline.html).toContain(`cid:${image.cid}`);

    const attachments = await byShape("attachments");
    expect(attachments.attachments[0]!.content.subarray(0, 5).toString("latin1")).toBe("%PDF-");
    expect(attachments.attachments[1]!.content.toString("utf8")).toContain("Grüße");

    const html = await byShape("html-alternative");
    expect(html.html).toContain("<b>");
    expect(html.text).toContain("please explain invoice");
  });
});
