/**
 * The stable id from a message's decoded content (real parser): the same for every rendering
 * of one message, different for messages that differ in anything a person reads.
 */
import { describe, expect, it } from "vitest";
import { imapLocation } from "../../src/imap/imap-location.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { readHeaders, spoolKey, stableIdFromBytes, stableIdFromContent, stableIdFromHeaders } from "../../src/spool/stable-id.js";
import { baseContent, render, variants } from "../../tools/testbed/message-renderings.js";

const parser = new MailparserParser();
const idOf = async (raw: Buffer, queue = "q@contoso.com") => {
  const parsed = await parser.parse(raw);
  expect(parsed.parseError).toBeUndefined();
  return stableIdFromContent(queue, parsed.contentFingerprint!);
};

describe("stable id", () => {
  const base = baseContent("unit", "q@contoso.com");

  it("is the same for every rendering of one message (boundaries, transfer encodings, charsets, folding, line ends)", async () => {
    const a = await idOf(render(base, "a"));
    expect(a).toMatch(/^m[0-9a-f]{31}$/);
    expect(render(base, "a").equals(render(base, "b"))).toBe(false);
    expect(await idOf(render(base, "b"))).toBe(a);
    expect(await idOf(render(base, "a-lf"))).toBe(a);
    // The queue address is compared without case.
    expect(await idOf(render(base, "b"), "Q@Contoso.com")).toBe(a);
  });

  it("differs for messages that share Message-ID, Date and From but differ in one thing a person reads", async () => {
    const ids = new Map<string, string>([["base", await idOf(render(base, "a"))]]);
    for (const [name, variant] of Object.entries(variants(base))) ids.set(name, await idOf(render(variant, "a")));
    expect(new Set(ids.values()).size).toBe(ids.size);
  });

  it("differs between queues", async () => {
    expect(await idOf(render(base, "a"), "other@contoso.com")).not.toBe(await idOf(render(base, "a")));
  });

  it("has fallbacks of their own for an unparsed body and a message kept as headers only", () => {
    expect(stableIdFromBytes("q@contoso.com", "ab".repeat(32))).toMatch(/^m[0-9a-f]{31}$/);
    expect(stableIdFromBytes("q@contoso.com", "ab".repeat(32))).not.toBe(stableIdFromBytes("q@contoso.com", "cd".repeat(32)));
    const head = render(base, "a");
    const other = render(variants(base).subject!, "a");
    expect(stableIdFromHeaders("q@contoso.com", head, 100)).not.toBe(stableIdFromHeaders("q@contoso.com", other, 100));
    expect(stableIdFromHeaders("q@contoso.com", head, 100)).not.toBe(stableIdFromHeaders("q@contoso.com", head, 101));
  });

  it("spool keys differ per location and never look like a stable id", () => {
    const at = (uid: number, uidValidity = "1") => spoolKey("support", imapLocation({ folder: "INBOX", uidValidity, uid }));
    expect(at(1)).toMatch(/^s[0-9a-f]{31}$/);
    expect(new Set([at(1), at(2), at(1, "2"), spoolKey("sales", imapLocation({ folder: "INBOX", uidValidity: "1", uid: 1 }))]).size).toBe(4);
  });

  it("reads headers of an empty message and of one without a header/body separator", () => {
    expect(readHeaders(Buffer.alloc(0)).size).toBe(0);
    expect(readHeaders(Buffer.from("Message-ID: <x@y>")).get("message-id")).toBe("<x@y>");
  });

  it("reads the header block only, whichever line ends end it, and folded headers whole", () => {
    // Only the header block is decoded now (issue 17): the body's header-like lines must stay out.
    const body = `X-In-Body: no\r\n${"filler line\r\n".repeat(30_000)}`;
    for (const [eol, blank] of [
      ["\r\n", "\r\n\r\n"],
      ["\n", "\n\n"],
      ["\r\n", "\r\n\n"],
      ["\n", "\n\r\n"],
    ] as const) {
      const headers = readHeaders(Buffer.from(`Subject: a${eol} folded${eol}Message-ID: <m@x>${eol}To: q@x${blank}${body}`));
      expect([...headers]).toEqual([
        ["subject", "a folded"],
        ["message-id", "<m@x>"],
        ["to", "q@x"],
      ]);
    }
    // No blank line within the scan limit: everything scanned is the header block.
    expect(readHeaders(Buffer.from(`Subject: b\r\nX-Long: ${"y".repeat(300 * 1024)}`)).get("subject")).toBe("b");
  });
});
