/**
 * Holds an IMAP IDLE session on a queue folder so new mail is fetched within a second, not at
 * the next poll. It only signals: the fetch itself runs as a normal sync cycle, so IDLE adds
 * no second path for mail to take. Polling stays as the safety net.
 *
 * The session is renewed with a fresh token before its access token expires (Exchange ends it
 * with "BYE Session invalidated - AccessTokenExpired"); a dropped session is replaced with
 * backoff, and a catch-up cycle follows every new session.
 */
import type { ImapFlow } from "imapflow";
import type { QueueConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../interfaces.js";
import { backoffDelay, sleep } from "../queue/backoff.js";
import type { ImapMailbox } from "./imap-mailbox.js";

/** Servers may end IDLE after 30 minutes (RFC 2177): renew before that regardless of the token. */
const MAX_SESSION_MS = 25 * 60_000;
const MIN_SESSION_MS = 30_000;
/** MSAL refreshes a token this long before it expires: renew the session when it would. */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
const RECONNECT = { baseMs: 1_000, maxMs: 5 * 60_000 };

export class IdleWatcher {
  private readonly stopping = new AbortController();
  private running?: Promise<void>;
  private client?: ImapFlow;

  constructor(
    private readonly queue: QueueConfig,
    private readonly mailbox: ImapMailbox,
    /** Called when the server says mail arrived, and after each new session (to catch up). */
    private readonly onNewMail: () => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.client?.logout().catch(() => this.client?.close());
    await this.running;
  }

  private async loop(): Promise<void> {
    const signal = this.stopping.signal;
    let failures = 0;
    while (!signal.aborted) {
      const started = Date.now();
      let reason: string | undefined;
      try {
        await this.session(signal);
      } catch (error) {
        reason = describeError(error);
      }
      // A session the server ends at once (or refuses) must not turn into a reconnect storm.
      if (reason === undefined && Date.now() - started >= MIN_SESSION_MS) {
        failures = 0;
        continue;
      }
      failures++;
      const delay = backoffDelay(failures, RECONNECT);
      // The poller reports fetch failures loudly; an IDLE failure alone is not news at info.
      this.logger.debug({ reason: reason ?? "session ended early", retryInMs: delay }, "IDLE session failed; polling continues");
      await sleep(delay, signal);
    }
  }

  /** One session: resolves when it ended by plan (renewal) or by the server, throws on failure. */
  private async session(signal: AbortSignal): Promise<void> {
    const { client, tokenExpiresOn } = await this.mailbox.connect({ idle: true });
    this.client = client;
    try {
      if (signal.aborted) return;
      await client.mailboxOpen(this.queue.folder, { readOnly: true });
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      client.on("exists", () => this.onNewMail());
      this.onNewMail(); // mail may have arrived while no session was held
      const lifetime = tokenExpiresOn.getTime() - Date.now() - TOKEN_REFRESH_MARGIN_MS - Math.random() * 60_000;
      const renewIn = Math.min(MAX_SESSION_MS, Math.max(MIN_SESSION_MS, lifetime));
      this.logger.debug({ renewInMs: Math.round(renewIn) }, "IDLE session open");
      await Promise.race([closed, sleep(renewIn, signal)]);
      if (!client.usable && !signal.aborted) this.logger.debug("IDLE session closed by the server; replacing it");
    } finally {
      this.client = undefined;
      await client.logout().catch(() => client.close());
    }
  }
}
