/**
 * One MSAL public client for one queue, configured the same way for the daemon, `login` and
 * `check`: the queue's authority as a known authority, our network module (CA, timeout, the
 * shared concurrency bound) and MSAL's own log kept to warnings without personal data.
 */
import { LogLevel, PublicClientApplication, type ICachePlugin } from "@azure/msal-node";
import type { QueueConfig } from "../config/schema.js";
import type { Logger } from "../interfaces.js";
import { IdentityHttpClient, type ConcurrencyLimiter } from "./identity-http-client.js";

export interface QueueClientOptions {
  readonly limiter: ConcurrencyLimiter;
  readonly logger: Logger;
  /** Where the cache lives; without one MSAL keeps it in memory only (`login` until it succeeds). */
  readonly cachePlugin?: ICachePlugin;
  /** Per identity request; default 30 s. */
  readonly timeoutMs?: number;
}

export interface QueueClient {
  readonly app: PublicClientApplication;
  readonly http: IdentityHttpClient;
}

export function createQueueClient(queue: QueueConfig, options: QueueClientOptions): QueueClient {
  const http = new IdentityHttpClient({ ca: queue.identity.ca, limiter: options.limiter, timeoutMs: options.timeoutMs });
  const app = new PublicClientApplication({
    auth: {
      clientId: queue.identity.clientId,
      authority: queue.identity.authority,
      // Naming the configured host as known skips MSAL's instance discovery call to
      // Microsoft, which national clouds, proxies and the test bed cannot answer.
      knownAuthorities: [new URL(queue.identity.authority).host],
    },
    cache: options.cachePlugin ? { cachePlugin: options.cachePlugin } : undefined,
    system: {
      networkClient: http,
      loggerOptions: {
        // MSAL's own log lines can carry personal data; keep only warnings, without PII.
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message) => {
          if (level <= LogLevel.Warning) options.logger.warn({ msal: message }, "MSAL warning");
        },
      },
    },
  });
  return { app, http };
}
