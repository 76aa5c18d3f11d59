/**
 * POSTs each message to a URL, signed the Standard Webhooks way, with the message's stable id
 * as webhook-id: the receiver's idempotency key, the same on every retry and after restarts.
 *
 * What an answer means (see webhook-response.ts): 2xx delivered; 4xx final (dead letter)
 * except 408, 425, 429 and the size limits 413, 414, 431; 5xx, timeouts and network errors retried, no sooner than a
 * Retry-After says. Redirects are followed only within the URL's origin (scheme, host and
 * port): customer mail is never sent to a host nobody configured.
 *
 * Errors name the receiver's host and status, with a short, cleaned excerpt of its answer;
 * never the URL's path or query (they may carry a token), a header value, or the key.
 */
import { MailfetchdError, PermanentError } from "../errors.js";
import type { DeliverableMessage, DeliveryContext, Handler } from "../interfaces.js";
import { oneLine, withoutSecrets } from "./printable.js";
import { signWebhook, parseSigningSecrets } from "./standard-webhooks.js";
import { metadataHeaders, webhookPayload, type WebhookFormat } from "./webhook-body.js";
import { parseRetryAfter, verdictFor } from "./webhook-response.js";

export interface WebhookHandlerOptions {
  /** The handler's name in logs and status; default "webhook". */
  readonly name?: string;
  readonly url: string;
  /** The secret file's text: "whsec_..." lines (all of them sign; two during a key rotation). Unsigned when absent. */
  readonly secret?: string;
  readonly format?: WebhookFormat;
  readonly timeoutMs?: number;
  readonly inlineAttachmentsUpTo?: number;
  /** Extra static headers (already validated: no reserved names). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Values that must never appear in an error reason even if the receiver echoes them (header values read from files). */
  readonly secretValues?: readonly string[];
  readonly userAgent?: string;
}

export const WEBHOOK_DEFAULT_TIMEOUT_MS = 30_000;
export const WEBHOOK_DEFAULT_INLINE_LIMIT = 1024 * 1024;
/** Same-origin hops followed (e.g. "/hook" -> "/hook/"); more means a loop. */
const MAX_REDIRECTS = 5;
/** Bytes of a receiver's answer read for an error reason; the rest is discarded unread. */
const EXCERPT_BYTES = 1024;
const EXCERPT_CHARS = 200;

export function createWebhookHandler(options: WebhookHandlerOptions): Handler {
  const target = new URL(options.url);
  const keys = options.secret === undefined ? [] : parseSigningSecrets(options.secret);
  const format = options.format ?? "json";
  const timeoutMs = options.timeoutMs ?? WEBHOOK_DEFAULT_TIMEOUT_MS;
  const inlineLimit = options.inlineAttachmentsUpTo ?? WEBHOOK_DEFAULT_INLINE_LIMIT;
  const staticHeaders = Object.fromEntries(Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]));
  const hidden = [...(options.secretValues ?? []), ...(options.secret ? [options.secret.trim()] : [])];
  const clean = (text: string) => oneLine(withoutSecrets(text, hidden), EXCERPT_CHARS);

  return {
    name: options.name ?? "webhook",

    async deliver(message: DeliverableMessage, context: DeliveryContext): Promise<void> {
      context.signal.throwIfAborted();
      const { body, contentType } = await webhookPayload(message, format, inlineLimit);
      const headers = {
        ...staticHeaders,
        ...metadataHeaders(message, context.attempt),
        "content-type": contentType,
        "user-agent": options.userAgent ?? "mailfetchd",
        // Signed per attempt: the timestamp is the attempt's (replay protection), the id the message's.
        ...signWebhook(keys, message.id, Date.now() / 1000, body),
      };
      const deadline = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([context.signal, deadline]);

      let url = target;
      for (let hop = 0; ; hop++) {
        let response: Response;
        try {
          response = await fetch(url, { method: "POST", body, headers, redirect: "manual", signal });
        } catch (error) {
          if (context.signal.aborted) throw context.signal.reason;
          throw deadline.aborted ? timeoutError(url, timeoutMs, error) : transportError(url, error);
        }
        const verdict = verdictFor(response.status);

        if (verdict === "delivered") {
          await readExcerpt(response).catch(() => "");
          context.logger.debug({ host: url.host, status: response.status, hops: hop }, "webhook accepted the message");
          return;
        }
        if (verdict === "redirect") {
          await discard(response);
          const next = redirectTarget(url, response, hop);
          url = next;
          continue;
        }
        const excerpt = clean(await readExcerpt(response).catch(() => ""));
        if (context.signal.aborted) throw context.signal.reason;
        if (verdict === "too-large") {
          const error = tooLarge(url, response, excerpt, { bodyBytes: body.length, headerBytes: headerBytes(headers), inlineLimit });
          context.logger.warn(
            { host: url.host, status: response.status, reason: error.message },
            "webhook receiver refused the size of our request; the message is retried",
          );
          throw error;
        }
        if (verdict === "reject") throw rejection(url, response, excerpt);
        throw retryLater(url, response, excerpt);
      }
    },
  };
}

function redirectTarget(from: URL, response: Response, hop: number): URL {
  const location = response.headers.get("location");
  const status = response.status;
  if (!location) {
    throw handlerFailed(
      `Webhook receiver ${from.host} answered HTTP ${status} without a Location header.`,
      `Point the handler's url at the receiver's final address.`,
    );
  }
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw handlerFailed(
      `Webhook receiver ${from.host} answered HTTP ${status} with an unusable Location header.`,
      `Point the handler's url at the receiver's final address.`,
    );
  }
  if (next.origin !== from.origin) {
    throw handlerFailed(
      `Webhook receiver ${from.host} redirects (HTTP ${status}) to another origin, ${next.origin}; not followed: redirects are followed only within the configured scheme, host and port, so mail never goes to a host nobody configured.`,
      `If ${next.origin} is the right receiver, set the handler's url to the address it redirects to; otherwise fix the receiver. Messages wait and are retried.`,
    );
  }
  if (hop + 1 > MAX_REDIRECTS) {
    throw handlerFailed(
      `Webhook receiver ${from.host} redirected more than ${MAX_REDIRECTS} times.`,
      `Set the handler's url to the receiver's final address; a redirect loop never ends.`,
    );
  }
  return next;
}

function rejection(url: URL, response: Response, excerpt: string): PermanentError {
  const hint =
    response.status === 401 || response.status === 403
      ? " Check that the handler's secretFile and headers match what the receiver expects."
      : response.status === 404 || response.status === 405
        ? " Check the handler's url."
        : "";
  return new PermanentError(
    `Webhook receiver ${url.host} refused the message with HTTP ${response.status}${quote(excerpt)}. A 4xx answer other than 408, 425 or 429 is final, so the message is parked as a dead letter.${hint}`,
  );
}

/** The receiver refused our request's size (413, 414, 431): a limit to change, never the message's fault. */
function tooLarge(url: URL, response: Response, excerpt: string, sizes: { bodyBytes: number; headerBytes: number; inlineLimit: number }): MailfetchdError {
  const what =
    response.status === 431
      ? `the request's header fields too large (${sizes.headerBytes} bytes of headers)`
      : response.status === 414
        ? "the URL too long"
        : `the request body too large (${sizes.bodyBytes} bytes)`;
  const fix =
    response.status === 431
      ? "Raise the receiver's header size limit or send fewer static headers (mailfetchd's own headers are bounded; long values stay in the body)."
      : response.status === 414
        ? "Shorten the handler's url."
        : `Raise the receiver's body limit, or lower the handler's inlineAttachmentsUpTo (now ${sizes.inlineLimit} bytes) so large attachments go by reference.`;
  return new MailfetchdError(
    `Webhook receiver ${url.host} answered HTTP ${response.status}${quote(excerpt)}: it finds ${what}. That is a limit, not a verdict on the message, so it is retried (never dead-lettered) until the limit changes.`,
    { code: "HANDLER_FAILED", retryable: true, fix },
  );
}

/** Roughly what the request's header block weighs on the wire ("name: value\r\n" each). */
function headerBytes(headers: Readonly<Record<string, string>>): number {
  return Object.entries(headers).reduce((sum, [name, value]) => sum + name.length + Buffer.byteLength(value) + 4, 0);
}

function retryLater(url: URL, response: Response, excerpt: string): MailfetchdError {
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  const throttled = response.status === 429 || response.status === 503;
  return new MailfetchdError(`Webhook receiver ${url.host} answered HTTP ${response.status}${quote(excerpt)}; the message is retried.`, {
    code: "HANDLER_FAILED",
    retryable: true,
    retryAfterMs,
    fix: throttled
      ? "The receiver is overloaded or rate-limiting; nothing to do unless it persists."
      : "Check the receiver's logs; delivery resumes by itself once it answers 2xx.",
  });
}

function timeoutError(url: URL, timeoutMs: number, cause: unknown): MailfetchdError {
  return new MailfetchdError(`Webhook receiver ${url.host} did not answer within ${timeoutMs / 1000}s; the message is retried.`, {
    code: "HANDLER_FAILED",
    retryable: true,
    cause,
    fix: "Make the receiver acknowledge first and process afterwards, or raise the handler's timeout.",
  });
}

function transportError(url: URL, error: unknown): MailfetchdError {
  const code = causeCode(error);
  const detail = code ?? (error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error));
  return new MailfetchdError(`Webhook receiver ${url.host} could not be reached (${detail}); the message is retried.`, {
    code: "HANDLER_FAILED",
    retryable: true,
    cause: error,
    fix: fixForTransport(code, url),
  });
}

function fixForTransport(code: string | undefined, url: URL): string {
  switch (code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `Check the host name in the handler's url (${url.hostname}) and the machine's DNS.`;
    case "ECONNREFUSED":
      return `Nothing listens on ${url.host}: start the receiver or correct the handler's url.`;
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return `The receiver's TLS certificate is not trusted: add its CA to the file named by NODE_EXTRA_CA_CERTS in the daemon's environment.`;
    case "CERT_HAS_EXPIRED":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `The receiver's TLS certificate is expired or not issued for ${url.hostname}: renew it or correct the url's host.`;
    default:
      return `Check that ${url.host} is reachable from this machine (firewall, proxy, receiver running).`;
  }
}

/** The errno-style code behind a fetch failure (undici wraps it, sometimes in an AggregateError). */
function causeCode(error: unknown): string | undefined {
  for (let current: unknown = error, depth = 0; current && depth < 5; depth++) {
    if (typeof current === "object" && "code" in current && typeof current.code === "string") return current.code;
    if (current instanceof AggregateError) current = current.errors[0];
    else current = current instanceof Error ? current.cause : undefined;
  }
  return undefined;
}

function handlerFailed(message: string, fix: string): MailfetchdError {
  return new MailfetchdError(message, { code: "HANDLER_FAILED", retryable: true, fix });
}

function quote(excerpt: string): string {
  return excerpt ? `: "${excerpt}"` : "";
}

/** The first bytes of a body (for an error reason); the rest is cancelled, never buffered. */
async function readExcerpt(response: Response): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < EXCERPT_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString("utf8");
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}
