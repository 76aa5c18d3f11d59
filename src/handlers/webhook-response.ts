/**
 * What a webhook receiver's answer means for the message. Pure, so the policy is tested
 * without a network and documented in one place (README, "webhook").
 */

/**
 * 4xx answers that say "not now" rather than "never": 408 Request Timeout, 425 Too Early,
 * 429 Too Many Requests. Every other 4xx rejects the message for good (including 409: a
 * receiver that recognises a repeat by webhook-id should answer 2xx, not 409).
 */
const RETRYABLE_CLIENT_ERRORS = new Set([408, 425, 429]);

/** Redirects that keep POST a POST when followed (301 and 302 are re-POSTed too, as curl --post30x does). */
const FOLLOWED_REDIRECTS = new Set([301, 302, 307, 308]);

/**
 * A receiver may ask for hours; we look again after at most this long. Asking once an hour
 * costs one request, and a wrong Retry-After (a clock off by a year) cannot stall a queue.
 */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/**
 * 413 Content Too Large, 414 URI Too Long, 431 Request Header Fields Too Large: the receiver
 * refuses the size of our request, not the message. A message is never lost to a limit of
 * ours or the receiver's: retried (with backoff) until the limit or the handler is changed.
 */
const REQUEST_TOO_LARGE = new Set([413, 414, 431]);

export type ResponseVerdict =
  /** 2xx, or 303 See Other: the receiver took the POST and points at the result. */
  | "delivered"
  /** 301/302/307/308: follow it if it stays on the same origin. */
  | "redirect"
  /** 5xx, 408, 425, 429 and other oddities: try again later. */
  | "retry"
  /** 413, 414, 431: our request is above a limit of the receiver's; retried, never final. */
  | "too-large"
  /** Any other 4xx: the receiver refuses this message; retrying cannot help. */
  | "reject";

export function verdictFor(status: number): ResponseVerdict {
  if ((status >= 200 && status <= 299) || status === 303) return "delivered";
  if (FOLLOWED_REDIRECTS.has(status)) return "redirect";
  if (REQUEST_TOO_LARGE.has(status)) return "too-large";
  if (status >= 400 && status <= 499 && !RETRYABLE_CLIENT_ERRORS.has(status)) return "reject";
  return "retry";
}

/**
 * Milliseconds to wait according to a Retry-After header (RFC 9110 10.2.3: delay-seconds or
 * an HTTP-date), capped at MAX_RETRY_AFTER_MS; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}
