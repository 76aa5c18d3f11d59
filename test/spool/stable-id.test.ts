import { describe, expect, it } from "vitest";
import { identifyMessage, readHeaders } from "../../src/spool/stable-id.js";

const message = (headers: string, body = "Hello\r\n") => Buffer.from(`${headers}\r\n\r\n${body}`, "latin1");

describe("stable id", () => {
  const base = "Message-ID: <abc@example.com>\r\nDate: Tue, 3 Nov 2026 10:00:00 +0100\r\nFrom: Ann <ann@example.com>\r\nSubject: hi";

  it("is the same for the same message re-rendered (other boundaries, header order, folding)", () => {
    const a = identifyMessage("q@contoso.com", message(base, "body one"));
    const b = identifyMessage(
      "Q@contoso.com",
      message("Subject: hi\r\nFrom: \"Ann\"\r\n <ANN@example.com>\r\nDate: Tue, 03 Nov 2026 09:00:00 +0000 (UTC)\r\nMessage-Id: <ABC@example.com>", "body two"),
    );
    expect(a.id).toBe(b.id);
    expect(a.id).toMatch(/^m[0-9a-f]{31}$/);
    expect(a.headerMessageId).toBe("abc@example.com");
    expect(a.contentSha256).not.toBe(b.contentSha256);
  });

  it("differs between queues and between messages", () => {
    const a = identifyMessage("q@contoso.com", message(base));
    expect(identifyMessage("other@contoso.com", message(base)).id).not.toBe(a.id);
    expect(identifyMessage("q@contoso.com", message(base.replace("abc@", "abd@"))).id).not.toBe(a.id);
    expect(identifyMessage("q@contoso.com", message(base.replace("ann@", "bob@"))).id).not.toBe(a.id);
  });

  it("falls back to the content hash without a Message-ID", () => {
    const a = identifyMessage("q@contoso.com", message("Subject: x", "one"));
    const b = identifyMessage("q@contoso.com", message("Subject: x", "two"));
    expect(a.headerMessageId).toBeUndefined();
    expect(a.id).not.toBe(b.id);
    expect(identifyMessage("q@contoso.com", message("Subject: x", "one")).id).toBe(a.id);
  });

  it("handles an empty message and one without a header/body separator", () => {
    expect(identifyMessage("q@contoso.com", Buffer.alloc(0)).id).toMatch(/^m[0-9a-f]{31}$/);
    expect(readHeaders(Buffer.from("Message-ID: <x@y>")).get("message-id")).toBe("<x@y>");
  });
});
