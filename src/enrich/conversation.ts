/**
 * The conversation key: the same for a customer's replies to the same case, so routing can
 * attach a reply to the case its conversation started. Deterministic: a function of the
 * message alone, no state. The rules, first that applies (README "Conversation key"):
 *
 * 1. references: the root of the conversation's Message-IDs: the first of References, else
 *    In-Reply-To. The customer's first mail has neither; the agent's reply (sent from the
 *    helpdesk, never fetched) references it; the customer's next reply has References
 *    [first, reply]. So the root of a reply is the first mail's Message-ID, and the first mail
 *    itself uses its own Message-ID (rule 3) to get the same key.
 * 2. thread-index: a reply or forward (a Thread-Index with reply blocks) that has no
 *    References or In-Reply-To, as Outlook sometimes sends: the 22-byte conversation header.
 * 3. references, with the message's own Message-ID as root: the first mail of a conversation.
 * 4. thread-index, for a message with a Thread-Index but no Message-ID at all.
 * 5. subject: the normalised subject together with the sender's address, when the message
 *    has no Message-ID, References, In-Reply-To or Thread-Index.
 *
 * Alongside the key, `threadIndexKey` and `subjectKey` give what rules 2 and 5 would give,
 * for consumers that want to join conversations whose clients dropped References.
 */
import { createHash } from "node:crypto";

import type { Conversation, ParsedMessage } from "../interfaces.js";
import type { HeaderView } from "./headers.js";
import { normalizeSubject } from "./normalized-subject.js";
import { decodeThreadIndex } from "./thread-index.js";

export interface ConversationInput {
  readonly headers: HeaderView;
  readonly threadTopic?: string;
}

export function conversationOf(message: ParsedMessage, input: ConversationInput): Conversation {
  const root = message.references.map(messageIdIn).find((id) => id !== undefined) ?? messageIdIn(message.inReplyTo);
  const ownId = messageIdIn(message.messageId);
  const threadIndex = decodeThreadIndex(input.headers.first("thread-index"));
  const threadIndexKey = threadIndex === undefined ? undefined : conversationKey("thread-index", threadIndex.conversation.toString("hex"));
  // Thread-Topic is Outlook's own normalised subject; it stands in when the Subject is missing.
  const normalizedSubject = normalizeSubject(message.subject ?? input.threadTopic);
  const sender = (message.from[0]?.address ?? "").trim().toLowerCase();
  const subjectKey = conversationKey("subject", sender, normalizedSubject);
  const common = { subjectKey, normalizedSubject, ...(threadIndexKey === undefined ? {} : { threadIndexKey }) };

  if (root !== undefined) return { key: conversationKey("mid", root), source: "references", rootMessageId: root, ...common };
  if (threadIndexKey !== undefined && threadIndex !== undefined && threadIndex.childBlocks > 0) {
    return { key: threadIndexKey, source: "thread-index", ...common };
  }
  if (ownId !== undefined) return { key: conversationKey("mid", ownId), source: "references", rootMessageId: ownId, ...common };
  if (threadIndexKey !== undefined) return { key: threadIndexKey, source: "thread-index", ...common };
  return { key: subjectKey, source: "subject", ...common };
}

/**
 * The first Message-ID in a header value, lower-cased, without angle brackets. Lower-cased
 * like the stable id (src/spool/stable-id.ts): gateways that change the case of an id exist;
 * two ids that differ only in case do not, in practice.
 */
export function messageIdIn(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bracketed = /<([^<>\s]{1,998})>/.exec(value);
  if (bracketed !== null) return bracketed[1]!.toLowerCase();
  // Some mailers omit the brackets; accept a lone token that looks like one.
  const bare = value.trim();
  return /^[^\s<>@]{1,500}@[^\s<>@]{1,500}$/.test(bare) ? bare.toLowerCase() : undefined;
}

/** "c" + 31 hex digits of SHA-256 over the rule name and its material: rules never collide. */
function conversationKey(rule: string, ...material: string[]): string {
  return `c${createHash("sha256")
    .update([rule, ...material].join("\n"))
    .digest("hex")
    .slice(0, 31)}`;
}
