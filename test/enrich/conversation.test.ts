import { describe, expect, it } from "vitest";

import { conversationOf, messageIdIn } from "../../src/enrich/conversation.js";
import { HeaderView } from "../../src/enrich/headers.js";
import { normalizeSubject } from "../../src/enrich/normalized-subject.js";
import { decodeThreadIndex } from "../../src/enrich/thread-index.js";
import type { Conversation, ParsedMessage } from "../../src/interfaces.js";
import { customerMail, parse, parseFixture } from "./helpers.js";

async function conversations(paths: readonly string[]): Promise<Conversation[]> {
  const result: Conversation[] = [];
  for (const path of paths) {
    const parsed = await parseFixture(path);
    expect(parsed.enrichmentErrors).toEqual([]);
    result.push(parsed.conversation!);
  }
  return result;
}

const KEY = /^c[0-9a-f]{31}$/;

describe("conversation key on real reply chains", () => {
  // Each chain: the customer's first mail (no References), then replies to the helpdesk's
  // answers, which are never fetched: each reply references the first mail and the answers.
  it.each([
    ["outlook", ["chains/outlook/1-first.eml", "chains/outlook/2-reply.eml", "chains/outlook/3-reply.eml"]],
    ["gmail", ["chains/gmail/1-first.eml", "chains/gmail/2-reply.eml", "chains/gmail/3-reply.eml"]],
    ["apple", ["chains/apple/1-first.eml", "chains/apple/2-reply.eml", "chains/apple/3-reply.eml"]],
  ])("%s: the first mail and every reply share one key", async (_client, paths) => {
    const chain = await conversations(paths);
    const [first, ...replies] = chain;
    expect(first!.key).toMatch(KEY);
    for (const reply of replies) expect(reply.key).toBe(first!.key);
    // The first mail is keyed by its own Message-ID, the replies by the root of References: the same id.
    expect(new Set(chain.map((conversation) => conversation.rootMessageId)).size).toBe(1);
    expect(chain.every((conversation) => conversation.source === "references")).toBe(true);
  });

  it("the three chains have three different keys", async () => {
    const keys = await conversations(["chains/outlook/1-first.eml", "chains/gmail/1-first.eml", "chains/apple/1-first.eml"]);
    expect(new Set(keys.map((conversation) => conversation.key)).size).toBe(3);
  });

  it("an unrelated message with the same subject from another sender gets another key", async () => {
    const [first, unrelated] = await conversations(["chains/apple/1-first.eml", "chains/unrelated-same-subject.eml"]);
    expect(unrelated!.normalizedSubject).toBe(first!.normalizedSubject);
    expect(unrelated!.key).not.toBe(first!.key);
    expect(unrelated!.subjectKey).not.toBe(first!.subjectKey);
  });

  it("Outlook: a reply that lost its References is keyed by Thread-Index, which its conversation carries as threadIndexKey", async () => {
    const [first, reply, lost] = await conversations([
      "chains/outlook/1-first.eml",
      "chains/outlook/2-reply.eml",
      "chains/outlook/4-reply-without-references.eml",
    ]);
    expect(lost!.source).toBe("thread-index");
    expect(lost!.rootMessageId).toBeUndefined();
    // Not the chain's key (nothing in the message names the first mail), but joinable by the documented alternate key.
    expect(lost!.key).not.toBe(first!.key);
    expect(first!.threadIndexKey).toBe(lost!.key);
    expect(reply!.threadIndexKey).toBe(lost!.key);
  });

  it("replies' subjects normalise to the first mail's, across Re:/RE:/AW: and the helpdesk's ticket tags", async () => {
    for (const client of ["outlook", "gmail", "apple"]) {
      const chain = await conversations([`chains/${client}/1-first.eml`, `chains/${client}/2-reply.eml`, `chains/${client}/3-reply.eml`]);
      expect(new Set(chain.map((conversation) => conversation.normalizedSubject)).size).toBe(1);
      expect(new Set(chain.map((conversation) => conversation.subjectKey)).size).toBe(1);
    }
  });
});

describe("conversation rules", () => {
  it("without Message-ID, References, In-Reply-To or Thread-Index: normalised subject with the sender", async () => {
    const first = await parse(customerMail({ messageId: null, subject: "Order 123 missing" }));
    const again = await parse(customerMail({ messageId: null, subject: "RE: AW: Fwd: [#998] order 123   MISSING" }));
    const otherSender = await parse(customerMail({ messageId: null, subject: "Order 123 missing", from: "Other <other@example.org>" }));
    expect(first.conversation?.source).toBe("subject");
    expect(again.conversation?.key).toBe(first.conversation?.key);
    expect(otherSender.conversation?.key).not.toBe(first.conversation?.key);
    expect(first.conversation?.key).toBe(first.conversation?.subjectKey);
  });

  it("In-Reply-To alone gives the root when there are no References", async () => {
    const parsed = await parse(customerMail({ headers: ["In-Reply-To: <Answer-1@Support.Contoso.Example> (Support's message of 5 March)"] }));
    expect(parsed.conversation).toMatchObject({ source: "references", rootMessageId: "answer-1@support.contoso.example" });
  });

  it("References win over In-Reply-To, and the first of them is the root", async () => {
    const parsed = await parse(
      customerMail({ headers: ["References: <first@example.net> <answer@contoso.example>", "In-Reply-To: <answer@contoso.example>"] }),
    );
    expect(parsed.conversation?.rootMessageId).toBe("first@example.net");
    const first = await parse(customerMail({ messageId: "<first@example.net>" }));
    expect(first.conversation?.key).toBe(parsed.conversation?.key);
  });

  it("a root Thread-Index (no reply blocks) does not replace the message's own Message-ID", async () => {
    const parsed = await parse(customerMail({ messageId: "<own@example.net>", headers: ["Thread-Index: AdpuEoRcfh08KptPSm6NLF8LGp48Rw=="] }));
    expect(parsed.conversation).toMatchObject({ source: "references", rootMessageId: "own@example.net" });
    expect(parsed.conversation?.threadIndexKey).toMatch(KEY);
  });

  it("a Thread-Index on a message without any Message-ID keys it", async () => {
    const parsed = await parse(customerMail({ messageId: null, headers: ["Thread-Index: AdpuEoRcfh08KptPSm6NLF8LGp48Rw=="] }));
    expect(parsed.conversation?.source).toBe("thread-index");
  });

  it("is deterministic: the same message gives the same key in another parse", async () => {
    const raw = customerMail({ messageId: "<same@example.net>" });
    expect((await parse(raw)).conversation).toEqual((await parse(raw)).conversation);
  });

  it("the rules never give the same key for different material", () => {
    const headers = HeaderView.fromBlock("");
    const base: ParsedMessage = { from: [{ name: "", address: "a@example.net" }], to: [], cc: [], replyTo: [], references: [], attachments: [] };
    const byId = conversationOf({ ...base, messageId: "<x@y>" }, { headers });
    const bySubject = conversationOf({ ...base, subject: "x@y" }, { headers });
    expect(byId.key).not.toBe(bySubject.key);
  });

  it("Thread-Topic stands in for a missing Subject", () => {
    const headers = HeaderView.fromBlock("");
    const base: ParsedMessage = { from: [], to: [], cc: [], replyTo: [], references: [], attachments: [] };
    expect(conversationOf(base, { headers, threadTopic: "Broken invoice" }).normalizedSubject).toBe("broken invoice");
  });
});

describe("normalizeSubject", () => {
  it.each([
    ["RE: Invoice", "invoice"],
    ["Re: RE: AW: Aw: SV: Sv: Fwd: FW: WG: Antw: VS: TR: RIF: Odp: Invoice", "invoice"],
    ["Re[2]: Invoice", "invoice"],
    ["Re(3):Invoice", "invoice"],
    ["RE : Facture", "facture"],
    ["回复：发票", "发票"],
    ["ΑΠ: τιμολόγιο", "τιμολόγιο"],
    ["[#1234] Invoice", "invoice"],
    ["RE: [Ticket#123] Invoice", "invoice"],
    ["Invoice [Case 00123]", "invoice"],
    ["Invoice (#5521)", "invoice"],
    ["[EXTERNAL] RE: Invoice", "invoice"],
    ["  Invoice   2024-0117\t shows  ", "invoice 2024-0117 shows"],
    ["Reminder: invoice", "reminder: invoice"],
    ["Order (2 items) missing", "order (2 items) missing"],
    ["", ""],
  ])("%j -> %j", (subject, expected) => {
    expect(normalizeSubject(subject)).toBe(expected);
  });

  it("is bounded on a subject of thousands of prefixes: only its start is compared", () => {
    expect(normalizeSubject("Re: ".repeat(20) + "Invoice")).toBe("invoice");
    // 40 000 characters: cut to the first 1000 (250 prefixes), of which 50 rounds strip 50.
    expect(normalizeSubject("Re: ".repeat(10_000) + "Invoice")).toBe("re: ".repeat(200).trim());
  });
});

describe("decodeThreadIndex", () => {
  it("splits the 22-byte conversation header from the reply blocks", () => {
    const root = decodeThreadIndex("AdpuEoRcfh08KptPSm6NLF8LGp48Rw==");
    const reply = decodeThreadIndex("AdpuEoRcfh08KptPSm6NLF8LGp48RwAAOhBCAAA6EUI=");
    expect(root?.childBlocks).toBe(0);
    expect(reply?.childBlocks).toBe(2);
    expect(reply?.conversation.equals(root!.conversation)).toBe(true);
  });

  it.each([undefined, "", "not base64!", "AAAA", "QUJD"])("rejects %j", (value) => {
    expect(decodeThreadIndex(value)).toBeUndefined();
  });
});

describe("messageIdIn", () => {
  it.each([
    ["<A@B>", "a@b"],
    [" <a@b> <c@d>", "a@b"],
    ["a@b", "a@b"],
    ["garbage", undefined],
    ["<>", undefined],
    [undefined, undefined],
  ])("%j -> %j", (value, expected) => {
    expect(messageIdIn(value)).toBe(expected);
  });
});
