/**
 * Keeps one queue's tokens alive between polls: forces a refresh ahead of the access token's
 * expiry (with jitter) and at least daily, so a mailbox that is idle, or polled by a rare cron
 * schedule, never lets its refresh token die of inactivity at 90 days.
 *
 * It learns of every token the provider obtains (tokenObtained), so a poll that refreshed
 * moves the next refresh too. A refresh that fails for good (the sign-in is dead) stops the
 * timer until a token is obtained again: the poller reports the state, `login` revives it.
 */
import { MailfetchdError } from "../errors.js";
import type { Logger, TokenProvider } from "../interfaces.js";
import { backoffDelay } from "../support/backoff.js";
import { DEFAULT_MAX_IDLE_MS, nextRefreshAt } from "./refresh-schedule.js";

const RETRY_BACKOFF = { baseMs: 10_000, maxMs: 10 * 60_000 };

export interface TokenRefresherOptions {
  readonly logger: Logger;
  /** Default 24 hours. */
  readonly maxIdleMs?: number;
  readonly random?: () => number;
  readonly retry?: { readonly baseMs: number; readonly maxMs: number };
}

export class TokenRefresher {
  private timer?: NodeJS.Timeout;
  private running = false;
  private expiresOn?: number;
  private lastRefreshAt = Date.now();
  private failures = 0;
  private readonly maxIdleMs: number;
  private readonly random: () => number;
  private readonly retry: { readonly baseMs: number; readonly maxMs: number };

  constructor(
    private readonly tokens: TokenProvider,
    private readonly options: TokenRefresherOptions,
  ) {
    this.maxIdleMs = options.maxIdleMs ?? DEFAULT_MAX_IDLE_MS;
    this.random = options.random ?? Math.random;
    this.retry = options.retry ?? RETRY_BACKOFF;
  }

  start(): void {
    this.running = true;
    this.plan();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** Wired to the provider's onToken: every token obtained, by anyone, moves the plan. */
  tokenObtained(expiresOn: Date, info: { readonly fromNetwork: boolean }): void {
    this.expiresOn = expiresOn.getTime();
    if (info.fromNetwork) this.lastRefreshAt = Date.now();
    this.failures = 0;
    this.plan();
  }

  private plan(): void {
    // Until a first token is known, the poller's first cycle is what signs in.
    if (!this.running || this.expiresOn === undefined) return;
    const now = Date.now();
    const at = nextRefreshAt({ now, expiresOn: this.expiresOn, lastRefreshAt: this.lastRefreshAt, maxIdleMs: this.maxIdleMs, random: this.random });
    this.arm(at - now);
  }

  private arm(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    try {
      // tokenObtained (through the provider's onToken) plans the next one.
      await this.tokens.getAccessToken({ forceRefresh: true });
      this.options.logger.debug("token refreshed ahead of need");
    } catch (error) {
      if (!this.running) return;
      const retryable = !(error instanceof MailfetchdError) || error.retryable;
      const code = error instanceof MailfetchdError ? error.code : undefined;
      if (!retryable) {
        // The poller logs it and sets the queue's state; nothing to gain from asking again.
        this.options.logger.debug({ code }, "token refresh failed for good; waiting for a new sign-in");
        return;
      }
      this.failures++;
      const hinted = error instanceof MailfetchdError ? (error.retryAfterMs ?? 0) : 0;
      const delay = Math.max(backoffDelay(this.failures, this.retry, this.random), hinted);
      this.options.logger.debug({ code, retryInMs: delay }, "token refresh failed; retrying");
      this.arm(delay);
    }
  }
}
