import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";

import { DEFAULT_ENRICHERS, type Enricher } from "../../src/enrich/enrich.js";
import { HeaderView } from "../../src/enrich/headers.js";
import { messagePriority } from "../../src/enrich/priority.js";
import { createDirectoryHandler } from "../../src/handlers/directory.js";
import { toMessageDocument, type MessageDocument } from "../../src/handlers/message-document.js";
import type { DeliverableMessage, ParsedMessage } from "../../src/interfaces.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { customerMail, fixture, parse } from "./helpers.js";
import { rawMessageFromBuffer } from "../../src/spool/raw-message.js";

/** The fields each enricher is responsible for (attachments: what TNEF adds). */
const FIELDS: Record<string, (keyof ParsedMessage)[]> = {
  tnef: [],
  conversation: ["conversation"],
  kind: ["kind"],
  priority: ["priority"],
  "safe-html": ["safeHtml", "remoteContentBlocked"],
  "text-from-html": ["textFromHtml"],
  "reply-text": ["replyText", "replyTextReliable"],
};

describe("every enricher's failure is contained", () => {
  it("the standard enrichers are the ones this test knows", () => {
    expect(DEFAULT_ENRICHERS.map((enricher) => enricher.name).sort()).toEqual(Object.keys(FIELDS).sort());
  });

  it.each(DEFAULT_ENRICHERS.map((enricher) => enricher.name))(
    "%s throws: the message is parsed and delivered without its fields, the others still run",
    async (name) => {
      const enrichers: Enricher[] = DEFAULT_ENRICHERS.map((enricher) =>
        enricher.name === name
          ? {
              name,
              enrich: () => {
                throw new Error("boom\nwith a second line");
              },
            }
          : enricher,
      );
      const parsed = await new MailparserParser({ enrichers }).parse(fixture("chains/outlook/2-reply.eml"));
      expect(parsed.enrichmentErrors).toEqual([{ enricher: name, error: "failed: boom with a second line" }]);
      expect(parsed.subject).toBe("RE: [#4711] Invoice 2024-0117 shows the wrong VAT rate");
      for (const [other, fields] of Object.entries(FIELDS)) {
        for (const field of fields) {
          if (other === name) expect(parsed[field], field).toBeUndefined();
          else if (field !== "safeHtml" && field !== "remoteContentBlocked") expect(parsed[field], field).toBeDefined(); // this message has no HTML
        }
      }
    },
  );

  it("HTML nested deeper than the parsers can bear is not processed, and that is noted", async () => {
    const deep = `${"<div>".repeat(5000)}deep${"</div>".repeat(5000)}`;
    const parsed = await parse(customerMail({ contentType: 'multipart/mixed; boundary="m"', body: ["--m", "Content-Type: text/html", "", deep, "--m--"] }));
    expect(parsed.safeHtml).toBeUndefined();
    expect(parsed.html).toBe(deep);
    expect(parsed.enrichmentErrors).toEqual([
      { enricher: "safe-html", error: "HTML nested deeper than 512 levels; not processed" },
      { enricher: "text-from-html", error: "HTML nested deeper than 512 levels; not processed" },
    ]);
    expect(parsed.conversation).toBeDefined();
  });

  it("HTML over the size limit is not sanitised, and that is noted", async () => {
    const parsed = await new MailparserParser({ maxHtmlLengthToConvert: 100 }).parse(fixture("chains/outlook/1-first.eml"));
    expect(parsed.safeHtml).toBeUndefined();
    expect(parsed.enrichmentErrors).toContainEqual({ enricher: "safe-html", error: expect.stringMatching(/^HTML of \d+ characters is over the limit of 100/) });
  });

  it("a message reduced to its headers still gets its conversation, kind and priority", async () => {
    const parser = new MailparserParser();
    const parsed = await parser.parseHeadersOnly(fixture("auto-replies/exchange-oof.eml"), "MIME parse failed: test");
    expect(parsed.parseError).toBe("MIME parse failed: test");
    expect(parsed.kind?.type).toBe("auto-reply");
    expect(parsed.conversation?.source).toBe("references");
    expect(parsed.priority).toBe("normal");
    expect(parsed.enrichmentErrors).toEqual([]);
  });
});

describe("priority", () => {
  it.each([
    ["X-Priority: 1 (Highest)", "high"],
    ["X-Priority: 2", "high"],
    ["X-Priority: 3 (Normal)", "normal"],
    ["X-Priority: 5 (Lowest)", "low"],
    ["Importance: High", "high"],
    ["Importance: low", "low"],
    ["X-MSMail-Priority: High", "high"],
    ["Priority: urgent", "high"],
    ["Priority: non-urgent", "low"],
    ["X-Priority: 5\nImportance: high", "low"],
    ["X-Priority: garbage\nImportance: high", "high"],
    ["", "normal"],
  ])("%j -> %s", (block, expected) => {
    expect(messagePriority(HeaderView.fromBlock(block))).toBe(expected);
  });

  it("a real Outlook message sent with high importance", async () => {
    expect((await parse(fixture("chains/outlook/1-first.eml"))).priority).toBe("high");
  });
});

describe("in the message document", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  function deliverable(raw: Buffer, parsed: ParsedMessage): DeliverableMessage {
    return {
      id: "m1",
      queue: { name: "support", address: "support@contoso.example" },
      source: { kind: "imap", folder: "INBOX", item: "7:42", uidValidity: "7", uid: 42 },
      raw: rawMessageFromBuffer(raw),
      parsed,
    };
  }

  it("carries every enrichment, as message.json on disk", async () => {
    const raw = fixture("corpus/mimekit/messages/bounce.txt");
    const root = await mkdtemp(join(tmpdir(), "mailfetchd-enrich-"));
    dirs.push(root);
    await createDirectoryHandler({ path: root }).deliver(deliverable(raw, await parse(raw)), {
      signal: new AbortController().signal,
      logger: pino({ level: "silent" }),
      attempt: 1,
    });
    const document = JSON.parse(await readFile(join(root, "support", "m1", "message.json"), "utf8")) as MessageDocument;
    expect(document.kind).toEqual({
      type: "bounce",
      confidence: "high",
      reasons: ["Content-Type: multipart/report; report-type=delivery-status", "message/delivery-status part"],
      suppressAutoReply: true,
      bounce: {
        reportingMta: "hmail.jitbit.com",
        recipients: [
          {
            address: "netec.test@netecgc.com",
            action: "failed",
            status: "5.1.1",
            diagnostic: "550 5.1.1 <netec.test@netecgc.com>: Recipient address rejected: User unknown",
          },
        ],
      },
      calendar: null,
    });
    expect(document.conversation).toEqual({
      key: expect.stringMatching(/^c[0-9a-f]{31}$/),
      source: "references",
      rootMessageId: "20220126090648.12632412e9@hmail.jitbit.com",
      threadIndexKey: null,
      subjectKey: expect.stringMatching(/^c[0-9a-f]{31}$/),
      normalizedSubject: "undelivered mail returned to sender",
    });
    expect(document.priority).toBe("normal");
    expect(document.source).toEqual({ kind: "imap", folder: "INBOX", item: "7:42", uidValidity: "7", uid: 42 });
    expect(document.queue).toEqual({ name: "support", address: "support@contoso.example" });
    expect(document.enrichmentErrors).toEqual([]);
    expect(typeof document.replyText).toBe("string");
    expect(document.safeHtml).toBeNull(); // no HTML in this one
    expect(document.textFromHtml).toBe(false);
  });

  it("absent enrichments are null, never missing", () => {
    const bare: ParsedMessage = { from: [], to: [], cc: [], replyTo: [], references: [], attachments: [] };
    const document = toMessageDocument(deliverable(Buffer.from(""), bare), []) as unknown as Record<string, unknown>;
    for (const key of ["conversation", "kind", "priority", "safeHtml", "remoteContentBlocked", "textFromHtml", "replyText", "replyTextReliable"]) {
      expect(document, key).toHaveProperty(key, null);
    }
    expect(document.enrichmentErrors).toEqual([]);
  });

  it("is the same for every delivery attempt (the directory handler's idempotency)", async () => {
    const raw = fixture("chains/gmail/2-reply.eml");
    const written: string[] = [];
    for (const attempt of [1, 2]) {
      const root = await mkdtemp(join(tmpdir(), "mailfetchd-enrich-"));
      dirs.push(root);
      await createDirectoryHandler({ path: root }).deliver(deliverable(raw, await parse(raw)), {
        signal: new AbortController().signal,
        logger: pino({ level: "silent" }),
        attempt,
      });
      written.push(await readFile(join(root, "support", "m1", "message.json"), "utf8"));
    }
    expect(written[1]).toBe(written[0]);
    expect(written[0]).not.toContain('"attempt"');
  });
});
