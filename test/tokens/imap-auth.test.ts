/**
 * The IMAP side of sign-in, on the real Dovecot (XOAUTH2, tokens checked by introspection
 * against the stand-in): a shared mailbox opened by a delegate, a delegate without access, a
 * Graph-scope token, and the token check being unavailable. Each failure maps to a queue state
 * and a fix naming the admin guide step.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { ImapMailbox } from "../../src/imap/imap-mailbox.js";
import { queueStateOf } from "../../src/tokens/identity-errors.js";
import { failure, startTokenFixture, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const SHARED = "support@example.test";
const DELEGATE = "alex@example.test";
const OUTSIDER = "sam@example.test";
const OWNER = "owner@example.test";

let fx: TokenFixture;

beforeAll(async () => {
  fx = await startTokenFixture();
  // The shared mailbox has no sign-in of its own (in Microsoft 365 its account is disabled).
  fx.bed.identity.addUser({ username: DELEGATE, password: "alex-Pa55word!", mailboxes: [SHARED] });
  fx.bed.identity.addUser({ username: OUTSIDER, password: "sam-Pa55word!" });
  fx.bed.identity.addUser({ username: OWNER, password: "owner-Pa55word!" });
  await fx.bed.dovecot.deliver(
    SHARED,
    "From: a@example.test\r\nTo: support@example.test\r\nSubject: for the shared mailbox\r\nMessage-ID: <shared-1@example.test>\r\n\r\nhello\r\n",
  );
});

afterAll(async () => {
  await fx?.close();
});

async function login(queue: QueueConfig): Promise<number> {
  const { client } = await new ImapMailbox(queue, fx.provider(queue), fx.logger).connect();
  try {
    const mailbox = await client.mailboxOpen("INBOX", { readOnly: true });
    return mailbox.exists;
  } finally {
    await client.logout();
  }
}

function dovecotLog(): string {
  return readFileSync(fx.bed.dovecot.logFile, "utf8");
}

describe("shared mailboxes", () => {
  it("signs in as signIn.user and opens the queue address (XOAUTH2 user=) with that token", async () => {
    const [queue] = fx.queues([{ name: "support", address: SHARED, signInUser: DELEGATE, password: "alex-Pa55word!" }]);
    const since = fx.bed.identity.tokenRequests.length;

    expect(await login(queue!)).toBe(1);

    expect(fx.bed.identity.tokenRequests.slice(since)).toEqual([expect.objectContaining({ grantType: "password", username: DELEGATE, outcome: 200 })]);
    expect(dovecotLog()).toMatch(new RegExp(`imap-login: Info: Login: user=<${SHARED}>, method=XOAUTH2`));
  });

  it("a sign-in user without access to the mailbox is refused at IMAP login: misconfigured, with the fix", async () => {
    const [queue] = fx.queues([{ name: "support-outsider", address: SHARED, signInUser: OUTSIDER, password: "sam-Pa55word!" }]);

    const error = await failure(login(queue!));

    expect(error.code).toBe("IMAP_AUTH_REJECTED");
    expect(queueStateOf(error.code)).toBe("misconfigured");
    expect(error.fix).toMatch(/admin guide section 3/);
    // Exchange would say "User is authenticated but not connected"; Dovecot logs the mismatch.
    expect(dovecotLog()).toContain(`Username '${SHARED}' did not match '${OUTSIDER}'`);
  });
});

describe("IMAP-side authentication failures", () => {
  it("a Graph-scope token is rejected by IMAP: misconfigured, naming the IMAP permission and admin guide step 10", async () => {
    const [loaded] = fx.queues([{ name: "graph", address: OWNER, password: "owner-Pa55word!" }]);
    // The config loader refuses this scope; a token for it is what operators of peer systems end up with.
    const queue = { ...loaded!, identity: { ...loaded!.identity, scopes: ["IMAP.AccessAsUser.All", "offline_access"] } };

    const error = await failure(login(queue));

    expect(error.code).toBe("IMAP_AUTH_REJECTED");
    expect(queueStateOf(error.code)).toBe("misconfigured");
    expect(error.message).toContain("AUTHENTICATE failed");
    expect(error.fix).toMatch(/IMAP\.AccessAsUser\.All of Office 365 Exchange Online/);
    expect(error.fix).toMatch(/admin guide section 2\.2 step 10/);
  });

  it("the token check unavailable (NO [UNAVAILABLE]): retrying, and not mistaken for a bad token", async () => {
    const [queue] = fx.queues([{ name: "owner", address: OWNER, password: "owner-Pa55word!" }]);
    await login(queue!);
    fx.bed.identity.setIntrospectionDown(true);
    try {
      const since = fx.bed.identity.tokenRequests.length;
      const error = await failure(login(queue!));
      expect(error.code).toBe("IMAP_AUTH_UNAVAILABLE");
      expect(error.retryable).toBe(true);
      expect(queueStateOf(error.code)).toBe("retrying");
      // A temporary failure is not a reason to burn a refresh token.
      expect(fx.bed.identity.tokenRequests.length).toBe(since);
    } finally {
      fx.bed.identity.setIntrospectionDown(false);
    }
  });
});
