/**
 * `mailfetchd login`: signs a queue in with the device code flow (works with MFA, and where
 * password sign-in is not allowed) and stores the resulting token cache.
 *
 * The flow runs on an in-memory MSAL cache and replaces the stored cache only once it has
 * succeeded: a declined or expired attempt leaves the queue's existing sign-in untouched.
 */
import type { QueueConfig } from "../config/schema.js";
import { MailfetchdError } from "../errors.js";
import type { Logger } from "../interfaces.js";
import type { ConcurrencyLimiter } from "./identity-http-client.js";
import { classifyIdentityError } from "./identity-errors.js";
import { createQueueClient } from "./msal-client.js";
import type { TokenCacheStore } from "./token-cache-store.js";

export interface DeviceCodeSignInOptions {
  readonly queue: QueueConfig;
  readonly store: TokenCacheStore;
  readonly limiter: ConcurrencyLimiter;
  readonly logger: Logger;
  /** Microsoft's instructions for the person signing in: the URL and the code to enter. */
  readonly onPrompt: (message: string) => void;
}

export interface DeviceCodeSignInResult {
  /** Who signed in, as the identity platform names them. */
  readonly username: string;
  readonly expiresOn?: Date;
}

export async function signInWithDeviceCode(options: DeviceCodeSignInOptions): Promise<DeviceCodeSignInResult> {
  const { queue } = options;
  const { app, http } = createQueueClient(queue, { limiter: options.limiter, logger: options.logger });
  let result;
  try {
    result = await app.acquireTokenByDeviceCode({
      scopes: [...queue.identity.scopes],
      deviceCodeCallback: (response) => options.onPrompt(response.message),
    });
  } catch (raw) {
    throw classifyIdentityError(raw, queue.name, { discoveryFailure: http.lastDiscoveryFailure });
  }
  if (!result?.account) {
    throw new MailfetchdError(`Queue ${queue.name}: the device code sign-in returned no account.`, {
      code: "IDENTITY_ERROR",
      retryable: true,
      fix: `Run \`mailfetchd login ${queue.name}\` again; if it repeats, report it as a bug.`,
    });
  }
  await options.store.write(queue.name, app.getTokenCache().serialize());
  return { username: result.account.username, expiresOn: result.expiresOn ?? undefined };
}
