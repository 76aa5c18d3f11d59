/**
 * The delegated ("OAuth User") token cache of one queue mailbox, on MSAL's public client.
 *
 * Order of attempts: the cached access token; a refresh with the persisted refresh token
 * (acquireTokenSilent); and, only where a password is configured, a fresh password sign-in
 * (ROPC). Without a password a dead sign-in is remembered, so the queue waits for
 * `mailfetchd login` instead of hammering the endpoint.
 */
import { LogLevel, PublicClientApplication, type AccountInfo, type AuthenticationResult } from "@azure/msal-node";
import type { QueueConfig } from "../config/schema.js";
import { MailfetchdError } from "../errors.js";
import type { AccessToken, Logger, TokenProvider } from "../interfaces.js";
import type { ConcurrencyLimiter } from "./identity-http-client.js";
import { IdentityHttpClient } from "./identity-http-client.js";
import { classifyIdentityError, passwordSignInMayHelp } from "./identity-errors.js";
import type { TokenCacheStore } from "./token-cache-store.js";

const DEAD_SIGN_IN_HOLD_OFF_MS = 30 * 60_000;

export interface MsalTokenProviderOptions {
  readonly queue: QueueConfig;
  readonly store: TokenCacheStore;
  readonly limiter: ConcurrencyLimiter;
  readonly logger: Logger;
  /** Told the expiry of every access token obtained (for status and metrics). */
  readonly onToken?: (expiresOn: Date) => void;
}

export class MsalTokenProvider implements TokenProvider {
  readonly client: PublicClientApplication;
  private readonly queue: QueueConfig;
  private readonly logger: Logger;
  private readonly store: TokenCacheStore;
  private readonly onToken: (expiresOn: Date) => void;
  /**
   * A sign-in that failed for good: answered from memory until someone signs the queue in
   * (the cache changes) or the hold-off passes (an admin may have fixed consent meanwhile).
   * Retrying a refused password every poll would lock the account (AADSTS50053).
   */
  private deadSignIn?: { error: MailfetchdError; cacheVersion: number | undefined; until: number };

  constructor(options: MsalTokenProviderOptions) {
    this.queue = options.queue;
    this.logger = options.logger;
    this.store = options.store;
    this.onToken = options.onToken ?? (() => {});
    const authorityHost = new URL(this.queue.identity.authority).host;
    this.client = new PublicClientApplication({
      auth: {
        clientId: this.queue.identity.clientId,
        authority: this.queue.identity.authority,
        // Naming the configured host as known skips MSAL's instance discovery call to
        // Microsoft, which national clouds, proxies and the test bed cannot answer.
        knownAuthorities: [authorityHost],
      },
      cache: { cachePlugin: options.store.pluginFor(this.queue.name) },
      system: {
        networkClient: new IdentityHttpClient({ ca: this.queue.identity.ca, limiter: options.limiter }),
        loggerOptions: {
          // MSAL's own log lines can carry personal data; keep only warnings, without PII.
          piiLoggingEnabled: false,
          logLevel: LogLevel.Warning,
          loggerCallback: (level, message) => {
            if (level <= LogLevel.Warning) this.logger.warn({ msal: message }, "MSAL warning");
          },
        },
      },
    });
  }

  async getAccessToken(options: { forceRefresh?: boolean } = {}): Promise<AccessToken> {
    const cacheVersion = this.store.updatedAt(this.queue.name);
    if (this.deadSignIn && this.deadSignIn.cacheVersion === cacheVersion && Date.now() < this.deadSignIn.until) throw this.deadSignIn.error;
    this.deadSignIn = undefined;
    try {
      const token = toAccessToken(await this.acquire(options.forceRefresh ?? false));
      this.onToken(token.expiresOn);
      return token;
    } catch (raw) {
      const error = classifyIdentityError(raw, this.queue.name);
      if (!error.retryable) {
        this.deadSignIn = { error, cacheVersion: this.store.updatedAt(this.queue.name), until: Date.now() + DEAD_SIGN_IN_HOLD_OFF_MS };
      }
      throw error;
    }
  }

  private async acquire(forceRefresh: boolean): Promise<AuthenticationResult> {
    const account = await this.account();
    if (account) {
      try {
        return await this.client.acquireTokenSilent({ account, scopes: [...this.queue.identity.scopes], forceRefresh });
      } catch (raw) {
        const error = classifyIdentityError(raw, this.queue.name);
        if (!(this.queue.signIn.password !== undefined && passwordSignInMayHelp(error))) throw error;
        this.logger.warn({ code: error.code }, "stored sign-in no longer valid; signing in again with the password");
      }
    }
    if (this.queue.signIn.password === undefined) {
      throw new MailfetchdError(`Queue ${this.queue.name} has no sign-in and no password.`, {
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
    return result;
  }

  private async account(): Promise<AccountInfo | undefined> {
    const accounts = await this.client.getTokenCache().getAllAccounts();
    return accounts.find((a) => a.username.toLowerCase() === this.queue.signIn.user) ?? accounts[0];
  }
}

function toAccessToken(result: AuthenticationResult): AccessToken {
  return { token: result.accessToken, expiresOn: result.expiresOn ?? new Date(Date.now() + 5 * 60_000) };
}
