import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import { extractReplyText } from "../../src/enrich/reply-text.js";
import { parseFixture } from "./helpers.js";

const lines = (...text: string[]): string => text.join("\n");

describe("reply text of real reply chains", () => {
  it.each([
    [
      "chains/outlook/2-reply.eml",
      "Thanks, but the corrected invoice still shows 19 %. Our VAT ID is ATU12345678.\n\nJana Novak\nFabrikam GmbH | Accounts Payable\n+43 1 2345678",
    ],
    ["chains/outlook/3-reply.eml", "Vielen Dank, jetzt stimmt die Rechnung.\n\nJana Novak"],
    ["chains/outlook/4-reply-without-references.eml", "One more question: can you send the invoice by post as well?\n\nJana Novak"],
    ["chains/gmail/2-reply.eml", "I cleared the cache and tried in another browser: same result."],
    ["chains/gmail/3-reply.eml", "It works now, thank you!"],
    ["chains/apple/2-reply.eml", "Il numero di tracciamento non funziona sul sito del corriere.\n\nMaria"],
    ["chains/apple/3-reply.eml", "Arrivato, grazie!\n\nInviato da iPhone"],
  ])("%s", async (path, expected) => {
    const parsed = await parseFixture(path);
    expect(parsed.replyText).toBe(expected);
    expect(parsed.replyTextReliable).toBe(true);
    expect(parsed.text!.length).toBeGreaterThan(expected.length); // the full text stays beside it
  });

  it("a first message (nothing quoted) is its own reply text, reliably", async () => {
    const parsed = await parseFixture("chains/gmail/1-first.eml");
    expect(parsed.replyText).toBe(parsed.text);
    expect(parsed.replyTextReliable).toBe(true);
  });
});

describe("extractReplyText", () => {
  it.each([
    [
      "Outlook, English",
      lines(
        "Answer",
        "",
        "From: Support <s@contoso.example>",
        "Sent: Tuesday, March 5, 2024 11:02 AM",
        "To: Jana <j@f.example>",
        "Subject: Invoice",
        "",
        "old",
      ),
    ],
    [
      "Outlook, German, bold labels",
      lines("Antwort", "", "*Von:* Support <s@contoso.example>", "*Gesendet:* Dienstag, 5. März 2024 11:02", "*An:* Jana", "*Betreff:* Rechnung", "", "alt"),
    ],
    [
      "Outlook, French",
      lines("Réponse", "", "De : Support <s@contoso.example>", "Envoyé : mardi 5 mars 2024 11:02", "À : Jana", "Objet : Facture", "", "ancien"),
    ],
    ["Outlook, Spanish", lines("Respuesta", "", "De: Support", "Enviado: martes, 5 de marzo de 2024 11:02", "Para: Jana", "Asunto: Factura", "", "viejo")],
    [
      "Outlook, Dutch, no address on the From line",
      lines("Antwoord", "", "Van: Support", "Verzonden: dinsdag 5 maart 2024 11:02", "Aan: Jana", "Onderwerp: Factuur", "", "oud"),
    ],
    [
      "Outlook, underscores above the block",
      lines(
        "Answer",
        "",
        "________________________________",
        "From: Support",
        "Sent: Tuesday, March 5, 2024 11:02 AM",
        "To: Jana",
        "Subject: Invoice",
        "",
        "old",
      ),
    ],
    ["Outlook, -----Original Message-----", lines("Answer", "", "-----Original Message-----", "From: Support", "old")],
    ["Outlook, -----Ursprüngliche Nachricht-----", lines("Answer", "", "-----Ursprüngliche Nachricht-----", "Von: Support", "alt")],
    ["Gmail, wrapped attribution", lines("Answer", "", "On Tue, 5 Mar 2024 at 11:20, Contoso Support <", "support@contoso.example> wrote:", "", "> old")],
    ["Gmail, German", lines("Answer", "", "Am Di., 5. März 2024 um 11:20 Uhr schrieb Contoso Support <support@contoso.example>:", "", "> alt")],
    ["Gmail, French", lines("Answer", "", "Le mar. 5 mars 2024 à 11:20, Contoso Support <support@contoso.example> a écrit :", "", "> ancien")],
    ["Thunderbird, Polish", lines("Answer", "", "W dniu 5.03.2024 o 11:20, Contoso Support pisze:", "> stare")],
    [
      "Apple Mail, Italian, quoted attribution",
      lines("Answer", "", "> Il giorno 5 mar 2024, alle ore 14:30, Contoso Support <s@contoso.example> ha scritto:", ">", "> vecchio"),
    ],
    ["Gmail, forwarded message", lines("See below", "", "---------- Forwarded message ---------", "From: Someone <x@example.org>", "text")],
    ["Apple Mail, forwarded message", lines("See below", "", "Begin forwarded message:", "", "From: Someone <x@example.org>")],
    ["plain > quote to the end", lines("Answer", "", "> old line 1", "> old line 2", "")],
  ])("%s", (_style, text) => {
    const reply = extractReplyText(text, true);
    expect(reply.reliable).toBe(true);
    expect(["Answer", "Antwort", "Réponse", "Respuesta", "Antwoord", "See below"]).toContain(reply.text);
  });

  it("interleaved answers cannot be separated: full text, not reliable", () => {
    const text = lines("> Which invoice?", "2024-0117", "> Which VAT rate?", "20 %");
    expect(extractReplyText(text, true)).toEqual({ text, reliable: false });
  });

  it("bottom-posting (quote first, answer below) gives the full text, not reliable", () => {
    const text = lines("On Tue, 5 Mar 2024 at 11:20, Support <s@contoso.example> wrote:", "> old", "", "My answer below");
    expect(extractReplyText(text, true)).toEqual({ text, reliable: false });
  });

  it("a reply without any recognisable marker: full text, not reliable; a new message: reliable", () => {
    const text = "Thanks, that solved it.\n\nJana";
    expect(extractReplyText(text, true)).toEqual({ text, reliable: false });
    expect(extractReplyText(text, false)).toEqual({ text, reliable: true });
  });

  it("a sentence that merely mentions who wrote something is not an attribution", () => {
    const text = lines("Yesterday my colleague wrote:", "the parcel is damaged.");
    expect(extractReplyText(text, false)).toEqual({ text, reliable: true });
  });

  it("a customer's From: line in running text is not an Outlook header block", () => {
    const text = lines("Please change my address.", "From: Vienna", "To: Graz", "", "Thanks");
    expect(extractReplyText(text, false).text).toBe(text);
  });

  it("signatures stay in the reply (they carry the phone number)", () => {
    const reply = extractReplyText(lines("Answer", "--", "Jana Novak", "+43 1 2345678", "", "-----Original Message-----", "old"), true);
    expect(reply.text).toBe(lines("Answer", "--", "Jana Novak", "+43 1 2345678"));
  });

  it("stays bounded on hostile input: a megabyte line, and 100 000 short lines", () => {
    const long = `${"a".repeat(1_000_000)} wrote:`;
    expect(extractReplyText(long, true).reliable).toBe(false);
    const many = `${"On x wrote \n".repeat(100_000)}`;
    expect(extractReplyText(many, true).text).toBe(many);
  });
});

describe("hostile bodies (issue 13)", () => {
  it("has no pattern with two runs of spaces that can split one run between them (O(n^2) backtracking)", () => {
    // Regular expressions give no count of their steps to assert on; the shape is what makes them
    // quadratic, so the shape is what is checked (the bench's "reply and quote markers" and
    // "html attribute patterns" classes show the effect: 1.4 s for 400 KB of such lines before).
    for (const file of ["src/enrich/quote-markers.ts", "src/enrich/safe-html.ts"]) {
      const source = readFileSync(file, "utf8");
      expect(source, file).not.toMatch(/\\+s\*\\+\*\{0,2\}\\+s\*/);
      expect(source, file).not.toMatch(/\\+s\*\[[^\]]*\]\?\\+s\*/);
    }
  });

  it("still knows the bold-marked and spaced labels", () => {
    const text = "Thanks!\n\n*From:* Customer <c@example.com>\n*Sent :* Monday\nTo : support@example.com\nSubject: help\n\nold text";
    expect(extractReplyText(text, true)).toEqual({ text: "Thanks!", reliable: true });
  });
});
