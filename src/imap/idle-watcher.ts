/**
 * Holds an IMAP IDLE session on a queue folder so new mail is fetched within a second, not at
 * the next poll. It only signals: the fetch itself runs as a normal sync cycle, so IDLE adds
 * no second path for mail to take. Polling stays as the safety net.
 *
 * The session is renewed with a fresh token before its access token expires (Exchange ends it
 * with "BYE Session invalidated - AccessTokenExpired"); a dropped session is replaced with
 * backoff. A new session's EXAMINE tells whether mail arrived while none was held: the poller
 * runs a catch-up cycle only then (sessionOpened), not a connection of its own every renewal.
 *
 * The open session also answers the poller's probe (`probe()`): one STATUS on the folder,
 * which tells a scheduled poll whether anything changed without a connection of its own.
 */
import type { ImapFlow } from "imapflow";
import type { QueueConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../interfaces.js";
import { backoffDelay, sleep } from "../support/backoff.js";
import { endSession } from "./end-session.js";
import type { ImapMailbox } from "./imap-mailbox.js";

/**
 * A session lives as long as its token allows, up to this. RFC 2177's 30-minute limit is on
 * one IDLE command, which imapflow re-issues every 4 minutes on the same connection
 * (maxIdleTime in imap-mailbox.ts): no reason to reconnect for it. Each renewal costs a TLS
 * handshake and a sign-in, which 1,000 queues pay every 25 minutes (~80 a minute) otherwise.
 */
const MAX_SESSION_MS = 60 * 60_000;
const MIN_SESSION_MS = 30_000;
const RENEW_SPREAD_MS = 5 * 60_000;
/** MSAL refreshes a token this long before it expires: renew the session when it would. */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
const RECONNECT = { baseMs: 1_000, maxMs: 5 * 60_000 };
/**
 * A healthy session answers a STATUS in milliseconds (a few round trips: DONE, STATUS, IDLE
 * again). One that has not answered in this long is treated as dead: the poll connects as it
 * would without IDLE, and the session is replaced rather than left to its 5-minute socket timeout.
 */
const PROBE_TIMEOUT_MS = 10_000;

/** The queue folder as the IDLE session's server sees it now (the answer to a STATUS). */
export interface ProbedFolder {
  readonly uidValidity: string;
  /** The UID the next message will get: every message there is has a lower one. */
  readonly uidNext: number;
  readonly messages: number;
}

export class IdleWatcher {
  private readonly stopping = new AbortController();
  private running?: Promise<void>;
  private client?: ImapFlow;
  /** The session's folder is open and its notifications are listened to: it can answer a probe. */
  private ready = false;
  private probing?: Promise<ProbedFolder | undefined>;

  constructor(
    private readonly queue: QueueConfig,
    private readonly mailbox: ImapMailbox,
    /** Called when the server says mail arrived (and after a new session when onSessionOpen is not given). */
    private readonly onNewMail: () => void,
    private readonly logger: Logger,
    /** Called with the folder as each new session found it: the caller catches up if it must. */
    private readonly onSessionOpen?: (folder: ProbedFolder) => void | Promise<void>,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.client) await endSession(this.client);
    await this.running;
  }

  /**
   * The folder's UIDVALIDITY, UIDNEXT and message count, asked on the open IDLE session (imapflow
   * ends IDLE for the STATUS and resumes it); undefined when no session is up, or it errs or does
   * not answer in time. Costs a few small round trips where a poll of its own costs a TLS
   * handshake, a token, XOAUTH2, EXAMINE and LOGOUT (the daemon's largest cost with many queues).
   * Concurrent callers share one STATUS.
   */
  probe(): Promise<ProbedFolder | undefined> {
    this.probing ??= this.askStatus().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async askStatus(): Promise<ProbedFolder | undefined> {
    const client = this.client;
    if (!client || !this.ready || !client.usable || this.stopping.signal.aborted) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), PROBE_TIMEOUT_MS)));
    try {
      const answer = await Promise.race([client.status(this.queue.folder, { uidNext: true, uidValidity: true, messages: true }), timedOut]);
      if (answer === "timeout") {
        this.logger.debug({ timeoutMs: PROBE_TIMEOUT_MS }, "IDLE session did not answer a STATUS; replacing it");
        client.close();
        return undefined;
      }
      // imapflow answers false (and logs) when the STATUS failed.
      if (!answer || answer.uidValidity === undefined || answer.uidNext === undefined) return undefined;
      return { uidValidity: String(answer.uidValidity), uidNext: answer.uidNext, messages: answer.messages ?? 0 };
    } catch (error) {
      this.logger.debug({ reason: describeError(error) }, "STATUS on the IDLE session failed");
      return undefined;
    } finally {
      clearTimeout(timer);
    }
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
      const opened = await client.mailboxOpen(this.queue.folder, { readOnly: true });
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      client.on("exists", () => this.onNewMail());
      this.ready = true;
      // Mail may have arrived while no session was held: the EXAMINE's answer tells.
      const folder =
        opened.uidNext !== undefined && opened.uidValidity !== undefined
          ? { uidValidity: String(opened.uidValidity), uidNext: opened.uidNext, messages: opened.exists ?? 0 }
          : undefined;
      if (this.onSessionOpen && folder) await this.onSessionOpen(folder);
      else this.onNewMail();
      const lifetime = tokenExpiresOn.getTime() - Date.now() - TOKEN_REFRESH_MARGIN_MS - Math.random() * 60_000;
      // Up to 5 minutes early at random: 1,000 sessions opened together must not all renew (and
      // run their catch-up cycles) in the same second every 25 minutes.
      const renewIn = Math.min(MAX_SESSION_MS - Math.random() * RENEW_SPREAD_MS, Math.max(MIN_SESSION_MS, lifetime));
      this.logger.debug({ renewInMs: Math.round(renewIn) }, "IDLE session open");
      await Promise.race([closed, sleep(renewIn, signal)]);
      if (!client.usable && !signal.aborted) this.logger.debug("IDLE session closed by the server; replacing it");
    } finally {
      this.ready = false;
      this.client = undefined;
      await endSession(client);
    }
  }
}
