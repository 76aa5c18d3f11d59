/**
 * The delegated ("OAuth User") token cache of one queue mailbox, on MSAL's public client.
 *
 * Order of attempts: the cached access token; a refresh with the persisted refresh token
 * (acquireTokenSilent); and, only where a password is configured, a fresh password sign-in
 * (ROPC). Without a password a dead sign-in is remembered, so the queue waits for
 * `mailfetchd login` instead of hammering the endpoint.
 *
 * Requests of one queue run one at a time: refresh tokens rotate, and two refreshes racing
 * with the same one would leave one of them holding a redeemed token.
 *
 * A token that lives less than MSAL's renewal offset (5 minutes) counts as expired in MSAL's
 * cache the moment it arrives, so every request would become a refresh. Such a token is held
 * here and handed out for MIN_REFRESH_INTERVAL_MS after it was fetched: at most 3 requests a
 * minute, unless the server rejected the token (forceRefresh), which always gets a fresh one.
 */
import type { AccountInfo, AuthenticationResult, PublicClientApplication } from "@azure/msal-node";
import type { QueueConfig } from "../config/schema.js";
import { MailfetchdError } from "../errors.js";
import type { AccessToken, Logger, TokenProvider } from "../interfaces.js";
import type { ConcurrencyLimiter, IdentityHttpClient } from "./identity-http-client.js";
import { classifyIdentityError, passwordSignInMayHelp } from "./identity-errors.js";
import { createQueueClient } from "./msal-client.js";
import { MIN_REFRESH_INTERVAL_MS, MSAL_RENEWAL_OFFSET_MS } from "./refresh-schedule.js";
import type { TokenCacheStore } from "./token-cache-store.js";

const DEAD_SIGN_IN_HOLD_OFF_MS = 30 * 60_000;
/** A held short-lived token is handed out only while it has this long left: a login needs a moment. */
const HELD_TOKEN_MARGIN_MS = 5_000;

/** How a token was obtained; `check` reports it. */
export type SignInMethod = "cache" | "refresh" | "password";

export interface TokenAcquired {
  readonly result: AuthenticationResult;
  readonly method: SignInMethod;
}

export interface MsalTokenProviderOptions {
  readonly queue: QueueConfig;
  readonly store: TokenCacheStore;
  readonly limiter: ConcurrencyLimiter;
  readonly logger: Logger;
  /**
   * Told of every access token obtained (never the token itself): its expiry, and whether it
   * came from the identity endpoint (so the refresh token was just used) or from the cache.
   */
  readonly onToken?: (expiresOn: Date, info: { readonly fromNetwork: boolean }) => void;
  /** Per identity request; default 30 s. */
  readonly identityTimeoutMs?: number;
  /** Default MIN_REFRESH_INTERVAL_MS. */
  readonly minRefreshIntervalMs?: number;
}

export class MsalTokenProvider implements TokenProvider {
  private client!: PublicClientApplication;
  private http!: IdentityHttpClient;
  private readonly options: MsalTokenProviderOptions;
  private readonly queue: QueueConfig;
  private readonly logger: Logger;
  private readonly store: TokenCacheStore;
  private readonly onToken: NonNullable<MsalTokenProviderOptions["onToken"]>;
  private tail: Promise<unknown> = Promise.resolve();
  /** The cache row's version when last looked at; undefined: no row. */
  private cacheVersion?: number;
  /**
   * A sign-in that failed for good: answered from memory until someone signs the queue in
   * (the cache changes) or the hold-off passes (an admin may have fixed consent meanwhile).
   * Retrying a refused password every poll would lock the account (AADSTS50053).
   */
  private deadSignIn?: { error: MailfetchdError; cacheVersion: number | undefined; until: number };
  /** The last token fetched from the endpoint when it lives less than MSAL's renewal offset. */
  private shortLived?: { acquired: TokenAcquired; fetchedAt: number; cacheVersion: number | undefined };
  private warnedShortLived = false;
  private readonly minRefreshIntervalMs: number;

  constructor(options: MsalTokenProviderOptions) {
    this.queue = options.queue;
    this.logger = options.logger;
    this.store = options.store;
    this.onToken = options.onToken ?? (() => {});
    this.options = options;
    this.minRefreshIntervalMs = options.minRefreshIntervalMs ?? MIN_REFRESH_INTERVAL_MS;
    this.newClient();
  }

  private newClient(): void {
    const { app, http } = createQueueClient(this.queue, {
      limiter: this.options.limiter,
      logger: this.options.logger,
      cachePlugin: this.store.pluginFor(this.queue.name),
      timeoutMs: this.options.identityTimeoutMs,
    });
    this.client = app;
    this.http = http;
  }

  async getAccessToken(options: { forceRefresh?: boolean } = {}): Promise<AccessToken> {
    const { result } = await this.acquireToken(options);
    return { token: result.accessToken, expiresOn: result.expiresOn ?? new Date(Date.now() + 5 * 60_000) };
  }

  /** Like getAccessToken, with MSAL's whole answer and how it was obtained (for `check`). */
  acquireToken(options: { forceRefresh?: boolean } = {}): Promise<TokenAcquired> {
    const run = this.tail.then(() => this.acquireOnce(options.forceRefresh ?? false));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async acquireOnce(forceRefresh: boolean): Promise<TokenAcquired> {
    const cacheVersion = await this.store.updatedAt(this.queue.name);
    if (cacheVersion === undefined && this.cacheVersion !== undefined) {
      // `logout` removed the row; MSAL would still answer from memory (and write it back).
      this.logger.info("the stored sign-in was removed (logout): forgetting it");
      this.newClient();
    }
    this.cacheVersion = cacheVersion;
    if (this.deadSignIn && this.deadSignIn.cacheVersion === cacheVersion && Date.now() < this.deadSignIn.until) throw this.deadSignIn.error;
    this.deadSignIn = undefined;
    if (!forceRefresh) {
      const held = await this.heldShortLivedToken(cacheVersion);
      if (held) return held;
    }
    try {
      const requestedAt = Date.now();
      const acquired = await this.acquire(forceRefresh);
      this.cacheVersion = await this.store.updatedAt(this.queue.name);
      const { expiresOn } = acquired.result;
      if (expiresOn) this.onToken(expiresOn, { fromNetwork: acquired.method !== "cache" });
      if (acquired.method !== "cache") this.noteFetched(acquired, requestedAt);
      return acquired;
    } catch (raw) {
      const error = this.classify(raw);
      if (!error.retryable) {
        this.deadSignIn = { error, cacheVersion: await this.store.updatedAt(this.queue.name), until: Date.now() + DEAD_SIGN_IN_HOLD_OFF_MS };
      }
      throw error;
    }
  }

  /**
   * The held short-lived token while it is young and still valid. When it dies before the
   * interval is over (a token of a few seconds), waits out the interval: the bound holds.
   */
  private async heldShortLivedToken(cacheVersion: number | undefined): Promise<TokenAcquired | undefined> {
    const held = this.shortLived;
    // A `login`, `logout` or another process changed the sign-in: the held token may be stale.
    if (held === undefined || held.cacheVersion !== cacheVersion) return undefined;
    const now = Date.now();
    const nextAllowed = held.fetchedAt + this.minRefreshIntervalMs;
    if (now >= nextAllowed) return undefined;
    const expiresOn = held.acquired.result.expiresOn?.getTime() ?? 0;
    if (expiresOn - now > HELD_TOKEN_MARGIN_MS) return { result: held.acquired.result, method: "cache" };
    await new Promise((resolve) => setTimeout(resolve, nextAllowed - now));
    return undefined;
  }

  /** Remembers a token fresh from the endpoint if MSAL's cache would not serve it again. */
  private noteFetched(acquired: TokenAcquired, requestedAt: number): void {
    const now = Date.now();
    // The lifetime the endpoint stated (expires_in): MSAL counts expiresOn from the request's
    // start, in whole seconds. Measured from now instead, a slow answer would make a token
    // just above the offset look short.
    const lifetimeMs = (acquired.result.expiresOn?.getTime() ?? requestedAt) - requestedAt;
    if (lifetimeMs + 1_000 >= MSAL_RENEWAL_OFFSET_MS) {
      this.shortLived = undefined;
      return;
    }
    this.shortLived = { acquired, fetchedAt: now, cacheVersion: this.cacheVersion };
    if (this.warnedShortLived) return;
    this.warnedShortLived = true;
    this.logger.warn(
      {
        lifetimeSeconds: Math.round(lifetimeMs / 1000),
        renewalOffsetSeconds: MSAL_RENEWAL_OFFSET_MS / 1000,
        minRefreshIntervalSeconds: this.minRefreshIntervalMs / 1000,
      },
      "access tokens for this queue live less than the 5 minutes MSAL renews them ahead of expiry, so no refresh can be scheduled ahead: " +
        `each token is reused and refreshed at most every ${this.minRefreshIntervalMs / 1000} s instead; Microsoft 365 tokens normally live 60-90 minutes: check the tenant's token lifetime policy or any proxy in front of the identity endpoint`,
    );
  }

  private async acquire(forceRefresh: boolean): Promise<TokenAcquired> {
    const account = await this.account();
    if (account) {
      try {
        const result = await this.client.acquireTokenSilent({ account, scopes: [...this.queue.identity.scopes], forceRefresh });
        return { result, method: result.fromCache ? "cache" : "refresh" };
      } catch (raw) {
        const error = this.classify(raw);
        if (!(this.queue.signIn.password !== undefined && passwordSignInMayHelp(error))) throw error;
        this.logger.warn({ code: error.code }, "stored sign-in no longer valid; signing in again with the password");
      }
    }
    if (this.queue.signIn.password === undefined) {
      throw new MailfetchdError(`Queue ${this.queue.name} is not signed in: there is no stored sign-in and no password.`, {
        code: "IDENTITY_NEEDS_SIGN_IN",
        retryable: false,
        fix: `Run \`mailfetchd login ${this.queue.name}\` (device code), or set signIn.passwordFile.`,
      });
    }
    this.logger.info({ user: this.queue.signIn.user }, "signing in with the password");
    const result = await this.client.acquireTokenByUsernamePassword({
      username: this.queue.signIn.user,
      password: this.queue.signIn.password,
      scopes: [...this.queue.identity.scopes],
    });
    if (!result) throw new MailfetchdError(`Queue ${this.queue.name}: the password sign-in returned no token.`, { code: "IDENTITY_ERROR", retryable: true });
    return { result, method: "password" };
  }

  private classify(raw: unknown): MailfetchdError {
    return classifyIdentityError(raw, this.queue.name, { discoveryFailure: this.http.lastDiscoveryFailure });
  }

  private async account(): Promise<AccountInfo | undefined> {
    const accounts = await this.client.getTokenCache().getAllAccounts();
    return accounts.find((a) => a.username.toLowerCase() === this.queue.signIn.user) ?? accounts[0];
  }
}
