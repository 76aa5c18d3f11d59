/**
 * Runs one queue's fetch cycles on its schedule (an interval or a cron expression), never two
 * at once, and backs off after failures. Errors are logged when the queue's condition
 * changes, not on every attempt, so the log stays readable when a mailbox is down for a day.
 */
import cron, { type ScheduledTask } from "node-cron";
import type { QueueConfig } from "../config/schema.js";
import { describeError, MailfetchdError } from "../errors.js";
import type { Logger } from "../interfaces.js";
import type { ImapMailbox } from "../imap/imap-mailbox.js";
import type { Spool } from "../spool/spool.js";
import { authStateOf, type QueueAuthState } from "../tokens/identity-errors.js";
import { backoffDelay } from "./backoff.js";

const FAILURE_BACKOFF = { baseMs: 5_000, maxMs: 15 * 60_000 };

export interface QueueHealth {
  state: "starting" | "ok" | QueueAuthState;
  lastSuccessAt?: Date;
  lastError?: { code: string; message: string; fix?: string; at: Date };
  consecutiveFailures: number;
}

export class Poller {
  readonly health: QueueHealth = { state: "starting", consecutiveFailures: 0 };
  private timer?: NodeJS.Timeout;
  private task?: ScheduledTask;
  private cycle?: Promise<void>;
  private stopped = false;
  private lastError?: MailfetchdError;

  constructor(
    private readonly queue: QueueConfig,
    private readonly mailbox: ImapMailbox,
    private readonly spool: Spool,
    private readonly onSpooled: () => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if ("cron" in this.queue.poll) {
      this.task = cron.schedule(this.queue.poll.cron, () => void this.runCycle(), { noOverlap: true, name: `poll-${this.queue.name}` });
    }
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.task?.destroy();
    await this.cycle;
  }

  /** One fetch cycle now, unless one is running (then that one's result). */
  runCycle(): Promise<void> {
    this.cycle ??= this.fetch().finally(() => (this.cycle = undefined));
    return this.cycle;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      await this.runCycle();
      this.scheduleNext();
    }, delayMs);
  }

  private scheduleNext(): void {
    if (this.health.consecutiveFailures > 0) {
      const wait = this.retryDelay();
      // With a cron schedule, a failure retry is sooner than the next tick where that helps.
      this.schedule(wait);
    } else if ("intervalMs" in this.queue.poll) {
      this.schedule(this.queue.poll.intervalMs);
    }
  }

  private retryDelay(): number {
    const error = this.lastError;
    const hinted = error?.retryAfterMs ?? 0;
    // Nobody has changed anything yet: look again rarely (an admin may fix consent meanwhile).
    if (error && !error.retryable) return Math.max(FAILURE_BACKOFF.maxMs, hinted);
    return Math.max(backoffDelay(this.health.consecutiveFailures, FAILURE_BACKOFF), hinted);
  }

  private async fetch(): Promise<void> {
    const { name, folder } = this.queue;
    let fetched = 0;
    let spooledNew = 0;
    try {
      const handlers = this.queue.handlers.map(handlerName);
      const identity = { name, address: this.queue.address };
      await this.mailbox.fetchNew(
        this.spool.cursor(name, folder),
        async (message) => {
          const result = await this.spool.accept(identity, handlers, message);
          fetched++;
          if (result.isNew) {
            spooledNew++;
            this.onSpooled();
          }
        },
        (state) => this.spool.resetCursor(name, folder, state.uidValidity),
      );
      this.succeeded(fetched, spooledNew);
    } catch (raw) {
      this.failed(raw instanceof MailfetchdError ? raw : new MailfetchdError(describeError(raw), { code: "IMAP_UNAVAILABLE", retryable: true, cause: raw }));
    }
  }

  private succeeded(fetched: number, spooledNew: number): void {
    if (this.health.consecutiveFailures > 0) this.logger.info({ after: this.health.consecutiveFailures }, "queue recovered: fetching again");
    this.health.state = "ok";
    this.health.consecutiveFailures = 0;
    this.health.lastSuccessAt = new Date();
    this.lastError = undefined;
    if (spooledNew > 0) this.logger.info({ fetched, spooled: spooledNew }, "fetched new mail");
    else this.logger.debug({ fetched }, "poll: nothing new");
  }

  private failed(error: MailfetchdError): void {
    const changed = this.health.lastError?.code !== error.code;
    this.health.consecutiveFailures++;
    this.health.state = authStateOf(error.code);
    this.health.lastError = { code: error.code, message: error.message, fix: error.fix, at: new Date() };
    this.lastError = error;
    const entry = { code: error.code, state: this.health.state, retryable: error.retryable, fix: error.fix, failures: this.health.consecutiveFailures };
    if (changed) {
      if (error.retryable) this.logger.warn(entry, error.message);
      else this.logger.error(entry, error.message);
    } else {
      this.logger.debug(entry, error.message);
    }
  }
}

export function handlerName(handler: { type: string; name?: string }): string {
  return handler.name ?? handler.type;
}
