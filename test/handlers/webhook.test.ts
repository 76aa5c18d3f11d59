/**
 * The webhook handler against a real HTTP receiver on loopback; signatures are checked by the
 * receiver with its own implementation of the spec. The Deliverer tests run on a real SQLite
 * spool. Only the status policy and Retry-After parsing are tested as pure logic.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import type { ServerOptions } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

import { isRetryable, MailfetchdError, PermanentError } from "../../src/errors.js";
import { DaemonEvents } from "../../src/events.js";
import { parseSigningSecrets, signWebhook } from "../../src/handlers/standard-webhooks.js";
import { METADATA_VALUE_MAX_BYTES } from "../../src/handlers/metadata-bounds.js";
import { createWebhookHandler, type WebhookHandlerOptions } from "../../src/handlers/webhook.js";
import { MAX_RETRY_AFTER_MS, parseRetryAfter, verdictFor } from "../../src/handlers/webhook-response.js";
import type { DeliverableMessage, DeliveryContext } from "../../src/interfaces.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { Deliverer } from "../../src/queue/deliverer.js";
import { Spool } from "../../src/spool/spool.js";
import { SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import { openStateDatabase, type StateDatabase } from "../../src/store/sqlite/database.js";
import { verifyStandardWebhook, WebhookReceiver, type Script } from "../../tools/testbed/helpers/webhook-receiver.js";
import { rawMessageFromBuffer } from "../../src/spool/raw-message.js";
import { failureOf } from "./failure-of.js";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { acceptImap } from "../../tools/testbed/helpers/imap-messages.js";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const QUEUE = { name: "support", address: "support@contoso.example" };
const SMALL = Buffer.from("small attachment\n");
const LARGE = randomBytes(3000);

// 8-bit Latin-1 in the body: the raw format must sign bytes, not a UTF-8 re-encoding.
const RAW = Buffer.concat([
  Buffer.from(
    [
      "Message-ID: <webhook-test-1@example.test>",
      "Date: Fri, 01 Mar 2024 08:00:00 +0000",
      "From: Customer <customer@example.test>",
      "To: support@contoso.example",
      "Subject: =?UTF-8?Q?R=C3=BCckfrage?= order 42",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain; charset=iso-8859-1",
      "Content-Transfer-Encoding: 8bit",
      "",
      "Gr",
    ].join("\r\n"),
    "latin1",
  ),
  Buffer.from([0xfc, 0xdf]), // "üß" in Latin-1: invalid as UTF-8
  Buffer.from(
    [
      "e",
      "--b1",
      'Content-Type: text/plain; name="small.txt"',
      'Content-Disposition: attachment; filename="small.txt"',
      "Content-Transfer-Encoding: base64",
      "",
      SMALL.toString("base64"),
      "--b1",
      'Content-Type: application/octet-stream; name="large.bin"',
      'Content-Disposition: attachment; filename="large.bin"',
      "Content-Transfer-Encoding: base64",
      "",
      ...(LARGE.toString("base64").match(/.{1,76}/g) ?? []),
      "--b1--",
      "",
    ].join("\r\n"),
  ),
]);

let message: DeliverableMessage;
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  message = {
    id: "m0123456789abcdef0123456789abcde",
    queue: QUEUE,
    source: { kind: "imap", folder: "INBOX", item: "1700000000:42", uidValidity: "1700000000", uid: 42 },
    internalDate: new Date("2024-03-01T08:00:05Z"),
    raw: rawMessageFromBuffer(RAW),
    parsed: await new MailparserParser().parse(RAW),
  };
});

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function receiver(script?: Script, serverOptions?: ServerOptions): Promise<WebhookReceiver> {
  const r = await WebhookReceiver.start(script, serverOptions);
  receivers.push(r);
  return r;
}

function context(overrides: Partial<DeliveryContext> = {}): DeliveryContext {
  return { signal: new AbortController().signal, logger: pino({ level: "silent" }), attempt: 1, ...overrides };
}

function handler(url: string, options: Partial<WebhookHandlerOptions> = {}) {
  return createWebhookHandler({ url, secret: SECRET, ...options });
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

describe("webhook handler: what the receiver gets", () => {
  it("POSTs the message document, signed so an independent verifier accepts it, with the message id as webhook-id", async () => {
    const r = await receiver();
    await handler(r.url(), { headers: { "X-Tenant": "contoso" }, inlineAttachmentsUpTo: 1024 }).deliver(message, context({ attempt: 3 }));

    expect(r.requests).toHaveLength(1);
    const request = r.requests[0]!;
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/hook");
    expect(verifyStandardWebhook(request, SECRET)).toBeUndefined();
    expect(request.headers["webhook-id"]).toBe(message.id);
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.headers["x-tenant"]).toBe("contoso");
    expect(request.headers["x-mailfetchd-queue"]).toBe("support");
    expect(request.headers["x-mailfetchd-uid"]).toBe("42");
    expect(request.headers["x-mailfetchd-source"]).toBe("imap");
    expect(request.headers["x-mailfetchd-item"]).toBe("1700000000:42");
    expect(request.headers["x-mailfetchd-attempt"]).toBe("3");
    expect(request.headers["x-mailfetchd-message-id"]).toBe("<webhook-test-1@example.test>");

    const document = JSON.parse(request.body.toString("utf8"));
    expect(document.schema).toBe("mailfetchd.message/1");
    expect(document.id).toBe(message.id);
    expect(document.queue).toEqual(QUEUE);
    expect(document.source).toEqual({ kind: "imap", folder: "INBOX", item: "1700000000:42", uidValidity: "1700000000", uid: 42 });
    expect(document.subject).toBe("Rückfrage order 42");
    expect(document.text).toContain("Grüße");
    expect(document.rawPath).toBeNull();
    // Up to the limit inline, above it by reference: metadata and hash, no bytes.
    const [small, large] = document.attachments;
    expect(small).toMatchObject({ filename: "small.txt", size: SMALL.length, sha256: sha256(SMALL), path: null });
    expect(Buffer.from(small.content, "base64")).toEqual(SMALL);
    expect(large).toMatchObject({ filename: "large.bin", size: LARGE.length, sha256: sha256(LARGE), content: null, path: null });
  });

  it("a signature over another body, id or key does not verify (the verifier can say no)", async () => {
    const r = await receiver();
    await handler(r.url()).deliver(message, context());
    const request = r.requests[0]!;
    expect(verifyStandardWebhook({ ...request, body: Buffer.concat([request.body, Buffer.from(" ")]) }, SECRET)).toBe("no signature matches");
    expect(verifyStandardWebhook({ ...request, headers: { ...request.headers, "webhook-id": "m-other" } }, SECRET)).toBe("no signature matches");
    expect(verifyStandardWebhook(request, `whsec_${randomBytes(32).toString("base64")}`)).toBe("no signature matches");
  });

  it("raw format: the MIME byte for byte as message/rfc822, signed over those bytes, metadata in headers", async () => {
    const r = await receiver();
    await handler(r.url(), { format: "raw" }).deliver(message, context());
    const request = r.requests[0]!;
    expect(request.headers["content-type"]).toBe("message/rfc822");
    expect(request.body.equals(RAW)).toBe(true);
    expect(verifyStandardWebhook(request, SECRET)).toBeUndefined();
    expect(request.headers["x-mailfetchd-queue-address"]).toBe("support@contoso.example");
    expect(request.headers["x-mailfetchd-uidvalidity"]).toBe("1700000000");
    expect(request.headers["x-mailfetchd-folder"]).toBe("INBOX");
  });

  it("percent-encodes metadata that is not printable ASCII, so decodeURIComponent restores it", async () => {
    const r = await receiver();
    const folder = "Posteingang/Rückläufer 100%";
    await handler(r.url(), { format: "raw" }).deliver({ ...message, source: { ...message.source, folder } }, context());
    const header = r.requests[0]!.headers["x-mailfetchd-folder"] as string;
    expect(header).toMatch(/^[\x20-\x7e]+$/);
    expect(decodeURIComponent(header)).toBe(folder);
  });

  it("without a secret the request carries webhook-id and webhook-timestamp but no signature", async () => {
    const r = await receiver();
    await createWebhookHandler({ url: r.url() }).deliver(message, context());
    const headers = r.requests[0]!.headers;
    expect(headers["webhook-id"]).toBe(message.id);
    expect(headers["webhook-timestamp"]).toMatch(/^\d+$/);
    expect(headers["webhook-signature"]).toBeUndefined();
  });
});

describe("webhook handler: bounded metadata headers and size limits", () => {
  async function withMessageId(messageId: string): Promise<DeliverableMessage> {
    const raw = Buffer.from(RAW.toString("latin1").replace("<webhook-test-1@example.test>", messageId), "latin1");
    return { ...message, raw: rawMessageFromBuffer(raw), parsed: await new MailparserParser().parse(raw) };
  }

  it("a 20 KB Message-ID stays out of the headers (a real receiver would answer 431) and is delivered, whole in the body", async () => {
    const longId = `<${"x".repeat(20_000)}@example.test>`;
    const long = await withMessageId(longId);
    // node:http's default 16 KB header limit: it answers 431 itself, before any handler runs.
    const r = await receiver();
    await handler(r.url()).deliver(long, context());
    expect(r.requests).toHaveLength(1);
    const request = r.requests[0]!;
    expect(request.headers["x-mailfetchd-message-id"]).toBeUndefined();
    expect(request.headers["x-mailfetchd-omitted"]).toBe("message-id");
    expect(request.headers["x-mailfetchd-queue"]).toBe("support");
    expect(JSON.parse(request.body.toString("utf8")).messageId).toBe(longId);
    expect(verifyStandardWebhook(request, SECRET)).toBeUndefined();
  });

  it("a Message-ID at the bound is still sent", async () => {
    const id = `<${"y".repeat(METADATA_VALUE_MAX_BYTES - 15)}@example.test>`;
    expect(id.length).toBe(METADATA_VALUE_MAX_BYTES);
    const r = await receiver();
    await handler(r.url()).deliver(await withMessageId(id), context());
    expect(r.requests[0]!.headers["x-mailfetchd-message-id"]).toBe(id);
    expect(r.requests[0]!.headers["x-mailfetchd-omitted"]).toBeUndefined();
  });

  it("431 from a receiver with a small header limit is retried, never dead-lettered, and the log names the cause", async () => {
    const r = await receiver(undefined, { maxHeaderSize: 600 });
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const error = await failureOf(handler(r.url(), { headers: { "X-Tenant": "t".repeat(400) } }).deliver(message, context({ logger })));
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(error).not.toBeInstanceOf(PermanentError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toMatch(/answered HTTP 431.*header fields too large \(\d+ bytes of headers\).*retried \(never dead-lettered\)/);
    expect((error as MailfetchdError).fix).toContain("header size limit");
    const warned = lines.map((line) => JSON.parse(line) as { level: number; status?: number; msg: string }).find((line) => line.status === 431);
    expect(warned?.level).toBe(40);
    expect(warned?.msg).toContain("refused the size of our request");
  });

  it("413 from a receiver is retried with the inline limit in the fix", async () => {
    const r = await receiver(() => ({ status: 413, body: "payload too large" }));
    const error = await failureOf(handler(r.url(), { inlineAttachmentsUpTo: 4096 }).deliver(message, context()));
    expect(error).not.toBeInstanceOf(PermanentError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toMatch(/HTTP 413: "payload too large": it finds the request body too large \(\d+ bytes\)/);
    expect((error as MailfetchdError).fix).toContain("inlineAttachmentsUpTo (now 4096 bytes)");
  });
});

describe("webhook handler: what an answer means", () => {
  it("500 is retried, then 200 delivers: the same webhook-id both times, each attempt validly signed", async () => {
    const r = await receiver((_, index) => (index === 0 ? { status: 500, body: "database down" } : { status: 200 }));
    const webhook = handler(r.url());
    const error = await failureOf(webhook.deliver(message, context({ attempt: 1 })));
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(error).not.toBeInstanceOf(PermanentError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toContain(`127.0.0.1:${r.port}`);
    expect((error as Error).message).toContain("500");
    expect((error as Error).message).toContain("database down");

    await webhook.deliver(message, context({ attempt: 2 }));
    expect(r.requests.map((q) => q.headers["webhook-id"])).toEqual([message.id, message.id]);
    for (const request of r.requests) expect(verifyStandardWebhook(request, SECRET)).toBeUndefined();
  });

  it("410 is final: a PermanentError naming host and status, with a short excerpt of the answer", async () => {
    const r = await receiver(() => ({ status: 410, body: `Gone: this endpoint was retired. ${"x".repeat(5000)}` }));
    const error = await failureOf(handler(r.url()).deliver(message, context()));
    expect(error).toBeInstanceOf(PermanentError);
    expect(isRetryable(error)).toBe(false);
    const text = (error as Error).message;
    expect(text).toContain(`127.0.0.1:${r.port}`);
    expect(text).toContain("410");
    expect(text).toContain("Gone: this endpoint was retired.");
    expect(text.length).toBeLessThan(600);
  });

  it("an error reason never carries a header value read from a file, even when the receiver echoes it", async () => {
    const token = `Bearer ${randomBytes(24).toString("hex")}`;
    const r = await receiver((request) => ({ status: 400, body: `bad token ${String(request.headers.authorization)}` }));
    const error = await failureOf(handler(r.url(), { headers: { Authorization: token }, secretValues: [token] }).deliver(message, context()));
    expect(r.requests[0]!.headers.authorization).toBe(token);
    expect((error as Error).message).toContain("bad token [redacted]");
    expect((error as Error).message).not.toContain(token.slice(7));
  });

  it("429 with Retry-After: retryable, and the wait the receiver asked for travels with the error", async () => {
    const r = await receiver(() => ({ status: 429, headers: { "Retry-After": "7" } }));
    const error = await failureOf(handler(r.url()).deliver(message, context()));
    expect(isRetryable(error)).toBe(true);
    expect((error as MailfetchdError).code).toBe("HANDLER_FAILED");
    expect((error as MailfetchdError).retryAfterMs).toBe(7000);
  });

  it("a receiver that does not answer in time: the request is aborted and the message retried", async () => {
    const r = await receiver(() => ({ status: 200, hang: true }));
    const error = await failureOf(handler(r.url(), { timeoutMs: 200 }).deliver(message, context()));
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toContain("did not answer within 0.2s");
  });

  it("shutdown: the context's signal aborts a request in flight with the signal's reason", async () => {
    const r = await receiver(() => ({ status: 200, hang: true }));
    const stop = new AbortController();
    const delivery = failureOf(handler(r.url(), { timeoutMs: 60_000 }).deliver(message, context({ signal: stop.signal })));
    await r.received(1);
    const reason = new Error("daemon stopping");
    stop.abort(reason);
    expect(await delivery).toBe(reason);
  });

  it("nothing listening: retryable, saying what to check", async () => {
    const r = await receiver();
    const url = r.url();
    await r.close();
    receivers.splice(receivers.indexOf(r), 1);
    const error = await failureOf(handler(url).deliver(message, context()));
    expect(isRetryable(error)).toBe(true);
    expect((error as MailfetchdError).message).toContain("ECONNREFUSED");
    expect((error as MailfetchdError).fix).toContain("Nothing listens");
  });

  it("a redirect to another origin is not followed: the other host receives nothing, the message waits", async () => {
    const other = await receiver();
    const r = await receiver(() => ({ status: 307, headers: { Location: other.url("/elsewhere") } }));
    const error = await failureOf(handler(r.url()).deliver(message, context()));
    expect(other.requests).toHaveLength(0);
    expect(r.requests).toHaveLength(1);
    expect(isRetryable(error)).toBe(true);
    expect((error as MailfetchdError).message).toContain(`http://127.0.0.1:${other.port}`);
    expect((error as MailfetchdError).fix).toContain("set the handler's url");
  });

  it("a same-origin redirect is followed with the same signed body", async () => {
    const r = await receiver((request) => (request.path === "/hook" ? { status: 308, headers: { Location: "/hook/" } } : { status: 204 }));
    await handler(r.url()).deliver(message, context());
    expect(r.requests.map((q) => [q.method, q.path])).toEqual([
      ["POST", "/hook"],
      ["POST", "/hook/"],
    ]);
    expect(r.requests[1]!.body.equals(r.requests[0]!.body)).toBe(true);
    expect(verifyStandardWebhook(r.requests[1]!, SECRET)).toBeUndefined();
  });

  it("a redirect loop ends with an error, not for ever", async () => {
    const r = await receiver((request) => ({ status: 302, headers: { Location: request.path === "/a" ? "/b" : "/a" } }));
    const error = await failureOf(handler(r.url("/a")).deliver(message, context()));
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toContain("redirected more than");
    expect(r.requests.length).toBe(6);
  });
});

describe("webhook handler through the Deliverer and a real spool", () => {
  let db: StateDatabase | undefined;
  let deliverer: Deliverer | undefined;
  afterEach(async () => {
    await deliverer?.stop();
    db?.close();
    deliverer = db = undefined;
  });

  async function pipeline(url: string) {
    const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-webhook-"));
    db = openStateDatabase(dir);
    const spool = new Spool(new SqliteStateStore(db, dir), dir);
    const events = new DaemonEvents();
    const webhook = handler(url);
    deliverer = new Deliverer(QUEUE, {
      spool,
      parser: new MailparserParser(),
      handlers: new Map([["webhook", webhook]]),
      events,
      logger: pino({ level: "silent" }),
    });
    await acceptImap(spool, QUEUE, { handlers: ["webhook"] }, { folder: "INBOX", uidValidity: "9", uid: 1, size: RAW.length, raw: RAW });
    return { spool, events, id: await expectedStableId(QUEUE.address, RAW) };
  }

  it("a 500 is retried with backoff until the receiver takes the message", async () => {
    const r = await receiver((_, index) => ({ status: index === 0 ? 500 : 200 }));
    const { events, id } = await pipeline(r.url());
    const delivered = new Promise<{ attempt: number }>((resolve) => events.once("delivered", resolve));
    deliverer!.start();
    expect((await delivered).attempt).toBe(2);
    expect(r.requests.map((q) => q.headers["webhook-id"])).toEqual([id, id]);
  });

  it("Retry-After is a floor for the next attempt, above the backoff's own first step", async () => {
    const r = await receiver(() => ({ status: 503, headers: { "Retry-After": "30" } }));
    const { events, spool } = await pipeline(r.url());
    const failed = new Promise<{ retryInMs: number }>((resolve) => events.once("delivery-failed", resolve));
    const before = Date.now();
    deliverer!.start();
    expect((await failed).retryInMs).toBe(30_000);
    expect(await spool.nextDueAt(QUEUE.name)).toBeGreaterThanOrEqual(before + 30_000);
  });

  it("a 4xx parks the message as a dead letter after one attempt", async () => {
    const r = await receiver(() => ({ status: 422, body: "unknown queue" }));
    const { events } = await pipeline(r.url());
    const dead = new Promise<{ reason: string }>((resolve) => events.once("dead-lettered", resolve));
    deliverer!.start();
    expect((await dead).reason).toContain("422");
    expect(r.requests).toHaveLength(1);
  });
});

describe("Standard Webhooks signing (pure)", () => {
  it("reproduces the spec's published test vector", () => {
    const keys = parseSigningSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
    const headers = signWebhook(keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, Buffer.from('{"test": 2432232314}'));
    expect(headers).toEqual({
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
  });

  it("signs with every key in the file (rotation), each verifiable on its own", () => {
    const second = `whsec_${randomBytes(32).toString("base64")}`;
    const body = Buffer.from("{}");
    const { "webhook-signature": signature, "webhook-timestamp": timestamp } = signWebhook(
      parseSigningSecrets(`${SECRET}\n\n${second}\n`),
      message.id,
      Date.now() / 1000,
      body,
    );
    expect(signature!.split(" ")).toHaveLength(2);
    for (const secret of [SECRET, second]) {
      expect(
        verifyStandardWebhook(
          { method: "POST", path: "/", body, headers: { "webhook-id": message.id, "webhook-timestamp": timestamp, "webhook-signature": signature } },
          secret,
        ),
      ).toBeUndefined();
    }
  });

  it("refuses keys that are not the spec's form, without echoing them", () => {
    const bare = randomBytes(32).toString("base64");
    const cases: Array<[string, RegExp]> = [
      ["", /empty/],
      [bare, /does not start with "whsec_"/],
      ["whsec_not*base64!", /not valid base64/],
      [`whsec_${randomBytes(16).toString("base64")}`, /16 bytes; the spec wants 24 to 64/],
      [`whsec_${randomBytes(65).toString("base64")}`, /65 bytes/],
    ];
    for (const [text, problem] of cases) {
      let message = "";
      try {
        parseSigningSecrets(text);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(problem);
      expect(message).toContain("openssl rand -base64 32");
      if (text.length > 8) expect(message).not.toContain(text.slice(6, 20));
    }
  });
});

describe("webhook status policy and Retry-After (pure)", () => {
  it("2xx and 303 deliver; 408, 425, 429 and 5xx retry; other 4xx reject; 301/302/307/308 redirect", () => {
    expect([200, 201, 202, 204, 299, 303].map(verdictFor)).toEqual(Array(6).fill("delivered"));
    expect([408, 425, 429, 500, 502, 503, 504, 300, 304].map(verdictFor)).toEqual(Array(9).fill("retry"));
    expect([400, 401, 403, 404, 409, 410, 422].map(verdictFor)).toEqual(Array(7).fill("reject"));
    expect([413, 414, 431].map(verdictFor)).toEqual(Array(3).fill("too-large"));
    expect([301, 302, 307, 308].map(verdictFor)).toEqual(Array(4).fill("redirect"));
  });

  it("reads delay-seconds and HTTP-dates, never negative, capped", () => {
    const now = Date.parse("2024-03-01T08:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Fri, 01 Mar 2024 08:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Fri, 01 Mar 2024 07:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("999999", now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
