import { describe, expect, it } from "vitest";

import { parseDeliveryStatus } from "../../src/enrich/delivery-status.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { WORST_CASE_CLASSES } from "../../tools/testbed/hostile-messages.js";
import { customerMail, fixture, mail, parse, parseFixture } from "./helpers.js";

describe("auto-replies, one family of markers at a time", () => {
  it("Exchange out-of-office (Auto-Submitted, X-Auto-Response-Suppress, Inbox-Rules-Loop, localised subject)", async () => {
    const parsed = await parseFixture("auto-replies/exchange-oof.eml");
    expect(parsed.kind).toMatchObject({ type: "auto-reply", confidence: "high", suppressAutoReply: true });
    expect(parsed.kind?.reasons).toEqual(["Auto-Submitted: auto-generated"]);
  });

  it("Gmail vacation responder (Auto-Submitted: auto-replied, Precedence: bulk)", async () => {
    const parsed = await parseFixture("auto-replies/gmail-vacation.eml");
    expect(parsed.kind?.type).toBe("auto-reply");
    expect(parsed.kind?.reasons).toEqual(["Auto-Submitted: auto-replied", "Precedence: bulk"]);
  });

  it.each([
    ["Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"],
    ["Auto-Submitted: auto-generated (failure)", "Auto-Submitted: auto-generated (failure)"],
    ["Auto-Submitted: auto-notified; owner-email=x@example.net", "Auto-Submitted: auto-notified; owner-email=x@example.net"],
    ["X-Autoreply: yes", "X-Autoreply: yes"],
    ["X-Autorespond: Out of office", "X-Autorespond: Out of office"],
    ["X-Autoresponder: vacation", "X-Autoresponder: vacation"],
    ["Precedence: auto_reply", "Precedence: auto_reply"],
    ["Precedence: junk", "Precedence: junk"],
    ["Precedence: bulk", "Precedence: bulk"],
  ])("%s alone makes an auto-reply (high)", async (header, reason) => {
    const parsed = await parse(customerMail({ headers: [header] }));
    expect(parsed.kind).toMatchObject({ type: "auto-reply", confidence: "high", reasons: [reason], suppressAutoReply: true });
  });

  it.each([
    "Automatic reply: My order",
    "Automatische Antwort: Ihre Bestellung",
    "Réponse automatique : Votre commande",
    "Respuesta automática: Su pedido",
    "Out of Office: My order",
  ])("subject %j with a weak header is an auto-reply, with low confidence", async (subject) => {
    const parsed = await parse(customerMail({ subject, headers: ["X-Auto-Response-Suppress: All"] }));
    expect(parsed.kind).toMatchObject({ type: "auto-reply", confidence: "low", suppressAutoReply: true });
    expect(parsed.kind?.reasons[0]).toMatch(/^Subject: /);
  });

  it("an out-of-office subject a person typed, with no header marker, stays normal (low confidence)", async () => {
    const parsed = await parse(customerMail({ subject: "Automatic reply: why did I get this?" }));
    expect(parsed.kind).toMatchObject({ type: "normal", confidence: "low", suppressAutoReply: true });
  });

  it.each([
    // Exchange asks receivers not to auto-reply; lists and ticket systems put it on everything.
    ["X-Auto-Response-Suppress: OOF, DR, RN, NRN", true],
    // Also on mail an inbox rule forwarded: a customer's mail forwarded into the queue.
    ["X-MS-Exchange-Inbox-Rules-Loop: agent@contoso.example", true],
    // A customer writing through a Google Group.
    ["Precedence: list", true],
    ["Auto-Submitted: no", false],
    ["X-Auto-Response-Suppress: None", false],
    ["X-Autoreply: no", false],
  ])("%s alone leaves a customer's mail normal", async (header, suppress) => {
    const parsed = await parse(customerMail({ headers: [header] }));
    expect(parsed.kind?.type).toBe("normal");
    expect(parsed.kind?.suppressAutoReply).toBe(suppress);
  });

  it("a plain customer mail is normal, high confidence, and may be answered automatically", async () => {
    const parsed = await parseFixture("chains/gmail/1-first.eml");
    expect(parsed.kind).toEqual({ type: "normal", confidence: "high", reasons: [], suppressAutoReply: false });
  });

  it("a read receipt (multipart/report; report-type=disposition-notification) is an auto-reply", async () => {
    const parsed = await parseFixture("corpus/mimekit/messages/disposition-notification.txt");
    expect(parsed.kind?.type).toBe("auto-reply");
    expect(parsed.kind?.reasons[0]).toMatch(/read receipt/);
  });
});

describe("bounces", () => {
  it("a real DSN relayed through Exchange Online, its recipient block base64-wrapped by a gateway", async () => {
    const parsed = await parseFixture("corpus/mimekit/messages/bounce.txt");
    expect(parsed.kind).toMatchObject({ type: "bounce", confidence: "high", suppressAutoReply: true });
    expect(parsed.kind?.bounce?.reportingMta).toBe("hmail.jitbit.com");
    expect(parsed.kind?.bounce?.recipients).toEqual([
      {
        address: "netec.test@netecgc.com",
        action: "failed",
        status: "5.1.1",
        diagnostic: "550 5.1.1 <netec.test@netecgc.com>: Recipient address rejected: User unknown",
      },
    ]);
    // The machine-readable part stays available to agents as a file.
    expect(parsed.attachments.map((attachment) => attachment.contentType)).toContain("message/delivery-status");
  });

  it("a DSN with several recipients", async () => {
    const parsed = await parseFixture("corpus/mikel-mail/multi_address_bounce1.eml");
    expect(parsed.kind?.type).toBe("bounce");
    const recipients = parsed.kind?.bounce?.recipients ?? [];
    expect(recipients.length).toBeGreaterThan(1);
    for (const recipient of recipients) {
      expect(recipient.address).toContain("@");
      expect(recipient.action).toBe("failed");
      expect(recipient.status).toMatch(/^5\.\d+\.\d+$/);
    }
  });

  it("a DSN whose blocks have no blank line between them", async () => {
    const parsed = await parseFixture("corpus/mimekit/messages/delivery-status-no-blank-line.txt");
    expect(parsed.kind?.bounce?.recipients).toEqual([{ address: "newsletter-request@imusic.com", action: "failed", diagnostic: "500 (err.nosuchuser)" }]);
  });

  it("a non-standard bounce from MAILER-DAEMON with a null Return-Path (low confidence, X-Failed-Recipients)", async () => {
    const raw = mail(
      [
        "Return-Path: <>",
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>",
        "To: support@contoso.example",
        "Subject: Mail delivery failed: returning message to sender",
        "X-Failed-Recipients: gone@example.org, <also-gone@example.org>",
        "Date: Tue, 5 Mar 2024 10:00:00 +0000",
        "Message-ID: <bounce-1@mx.example.net>",
      ],
      ["This message was created automatically by mail delivery software.", "", "  gone@example.org", "    Unrouteable address"],
    );
    const parsed = await parse(raw);
    expect(parsed.kind).toMatchObject({ type: "bounce", confidence: "low", suppressAutoReply: true });
    expect(parsed.kind?.bounce?.recipients).toEqual([
      { address: "gone@example.org", action: "failed" },
      { address: "also-gone@example.org", action: "failed" },
    ]);
  });

  it("an Exchange-style 'Undeliverable:' with a null Return-Path is a bounce even from an ordinary sender name", async () => {
    const raw = mail([
      "Return-Path: <>",
      "From: Microsoft Outlook <postmaster@contoso.example>",
      "To: support@contoso.example",
      "Subject: Undeliverable: Your ticket",
    ]);
    expect((await parse(raw)).kind?.type).toBe("bounce");
  });

  it("a customer who writes about an undeliverable parcel is not a bounce", async () => {
    const parsed = await parse(customerMail({ subject: "Undeliverable parcel, please help" }));
    expect(parsed.kind?.type).toBe("normal");
  });
});

describe("calendar", () => {
  it("a real Google Calendar invitation: text/calendar; method=REQUEST", async () => {
    const parsed = await parseFixture("corpus/postal-mime/calendar-event.eml");
    expect(parsed.kind).toMatchObject({ type: "calendar", calendar: { method: "REQUEST" }, suppressAutoReply: false });
  });

  it.each(["REPLY", "CANCEL"])("an Outlook meeting %s", async (method) => {
    const raw = customerMail({
      subject: method === "REPLY" ? "Accepted: Review call" : "Canceled: Review call",
      contentType: `text/calendar; charset="utf-8"; method=${method}`,
      body: ["BEGIN:VCALENDAR", `METHOD:${method}`, "PRODID:Microsoft Exchange Server 2010", "VERSION:2.0", "END:VCALENDAR"],
    });
    expect((await parse(raw)).kind).toMatchObject({ type: "calendar", calendar: { method } });
  });

  it("a calendar body part after a winmail.dat (whose unpacked files come between the MIME parts)", async () => {
    const raw = customerMail({
      contentType: 'multipart/mixed; boundary="b2"',
      body: [
        "--b2",
        "Content-Type: text/plain",
        "",
        "The meeting is cancelled.",
        "--b2",
        'Content-Type: application/ms-tnef; name="winmail.dat"',
        "Content-Transfer-Encoding: base64",
        "",
        ...(fixture("corpus/mimekit/tnef/two-files.tnef")
          .toString("base64")
          .match(/.{1,76}/g) ?? []),
        "--b2",
        "Content-Type: text/calendar; charset=utf-8",
        "",
        "BEGIN:VCALENDAR",
        "METHOD:CANCEL",
        "END:VCALENDAR",
        "--b2--",
      ],
    });
    const parsed = await parse(raw);
    expect(parsed.attachments.filter((attachment) => attachment.extractedFrom !== undefined)).toHaveLength(2);
    expect(parsed.kind).toMatchObject({ type: "calendar", calendar: { method: "CANCEL" } });
  });

  it("an .ics a customer attaches (no method parameter) leaves the message normal", async () => {
    const raw = customerMail({
      contentType: 'multipart/mixed; boundary="b1"',
      body: [
        "--b1",
        "Content-Type: text/plain",
        "",
        "Here is my appointment.",
        "--b1",
        'Content-Type: text/calendar; name="appointment.ics"',
        'Content-Disposition: attachment; filename="appointment.ics"',
        "",
        "BEGIN:VCALENDAR",
        "METHOD:PUBLISH",
        "END:VCALENDAR",
        "--b1--",
      ],
    });
    expect((await parse(raw)).kind?.type).toBe("normal");
  });
});

describe("parseDeliveryStatus", () => {
  it("RFC 3464 order and Postfix order (Final- before Original-Recipient) give one recipient each", () => {
    const rfc = parseDeliveryStatus(
      "Reporting-MTA: dns; mx.example\n\nOriginal-Recipient: rfc822;a@example.org\nFinal-Recipient: rfc822;a@example.org\nAction: failed\nStatus: 5.1.1\n",
    );
    const postfix = parseDeliveryStatus(
      "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; a@example.org\nOriginal-Recipient: rfc822;a@example.org\nAction: failed\nStatus: 5.1.1\n",
    );
    expect(rfc.recipients).toEqual([{ address: "a@example.org", action: "failed", status: "5.1.1" }]);
    expect(postfix.recipients).toEqual(rfc.recipients);
  });

  it("folded Diagnostic-Code, delayed action, several recipients without blank lines", () => {
    const report = parseDeliveryStatus(
      [
        "Reporting-MTA: dns; mx.example",
        "Final-Recipient: rfc822; a@example.org",
        "Action: delayed (will retry)",
        "Status: 4.4.7",
        "Diagnostic-Code: smtp; 451 4.4.7 try",
        "   again later",
        "Final-Recipient: rfc822; <b@example.org>",
        "Action: failed",
        "Status: 5.0.0 (permanent failure)",
      ].join("\r\n"),
    );
    expect(report).toEqual({
      reportingMta: "mx.example",
      recipients: [
        { address: "a@example.org", action: "delayed", status: "4.4.7", diagnostic: "451 4.4.7 try again later" },
        { address: "b@example.org", action: "failed", status: "5.0.0" },
      ],
    });
  });

  it("garbage gives no recipients and does not throw", () => {
    expect(parseDeliveryStatus("\u0000\u0001 no fields here\n:::\nAction: failed\n").recipients).toEqual([]);
    expect(parseDeliveryStatus("Final-Recipient: rfc822; x@example.org\n".repeat(5000)).recipients).toHaveLength(1000);
  });
});

describe("delivery reports across many status parts (issue 13)", () => {
  it("reports at most 1000 recipients per message, whatever the number of status parts", async () => {
    const dsn = WORST_CASE_CLASSES.find((c) => c.klass === "delivery reports")!.make(2 * 1024 * 1024);
    const parsed = await new MailparserParser().parse(dsn);
    expect(parsed.attachments.filter((a) => a.contentType === "message/delivery-status").length).toBeGreaterThan(10);
    expect(parsed.kind?.type).toBe("bounce");
    expect(parsed.kind?.bounce?.recipients).toHaveLength(1000);
  });
});
