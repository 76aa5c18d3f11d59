/**
 * Runs one queue's fetch cycles on its schedule (an interval or a cron expression), never two
 * at once, and backs off after failures. A cycle is one sync of the queue's mail source (the
 * MailSource port, src/source/mail-source.ts) into the spool; the poller only decides when. Errors are logged when the queue's condition
 * changes, not on every attempt, so the log stays readable when a mailbox is down for a day.
 *
 * While the queue's IDLE session is up, a scheduled poll first asks that session (one STATUS,
 * the source's probe) and skips the fetch cycle when nothing changed: a cycle opens a connection of its own (TLS
 * handshake, token, XOAUTH2, EXAMINE, LOGOUT), and at 1,000 queues polled every minute those
 * connections were most of the daemon's CPU (15.5% of a core; 6.3% with the probe). IDLE
 * already brings new mail within a second; the probe checks that none was missed. A full
 * cycle still runs every FULL_CYCLE_EVERY_MS whatever the probe says.
 */
import cron, { type ScheduledTask } from "node-cron";
import type { QueueConfig } from "../config/schema.js";
import { describeError, isFenced, MailfetchdError } from "../errors.js";
import type { DaemonEvents } from "../events.js";
import type { Logger } from "../interfaces.js";
import type { MailSource } from "../source/mail-source.js";
import type { Spool } from "../spool/spool.js";
import type { QueueState, QueueStatusStore } from "../store/ports.js";
import { queueStateOf } from "../tokens/identity-errors.js";
import { cycleWhenSessionOpens, decidePoll, firstSafetyNet, nextPollDelay, scheduleAfterRecovery } from "./poll-policy.js";
import { QueueSpoolSink } from "./queue-spool-sink.js";

export { handlerName } from "./queue-spool-sink.js";

/**
 * A scheduled poll runs a full cycle this often whatever the IDLE session says: the safety net
 * against a probe that misleads (a server whose STATUS on the selected folder answers from a
 * stale view, a bug in the comparison); IDLE itself and the per-minute probe are the first two.
 * At 1,000 queues this is ~35 connections a minute where polling alone made 1,000 (npm run
 * bench, scenario 3), each ~40 ms of CPU (TLS handshake, sign-in).
 */
const FULL_CYCLE_EVERY_MS = 30 * 60_000;

export interface PollerDependencies {
  /** Where the queue's mail comes from. Without a probe answer (idle: false) every scheduled poll is a full cycle. */
  readonly source: MailSource;
  readonly spool: Spool;
  readonly status: QueueStatusStore;
  readonly events: DaemonEvents;
  readonly logger: Logger;
  /** How often a poll runs a full cycle regardless of the probe; FULL_CYCLE_EVERY_MS unless a test says otherwise. */
  readonly fullCycleEveryMs?: number;
}

export class Poller {
  private timer?: NodeJS.Timeout;
  private task?: ScheduledTask;
  private cycle?: Promise<void>;
  private stopped = false;
  private again = false;
  private state: QueueState = "starting";
  private consecutiveFailures = 0;
  private lastError?: MailfetchdError;
  /**
   * performance.now() from which a scheduled poll runs a full cycle whatever the probe says.
   * The first is anywhere within one period of the start, so queues started together spread
   * their safety-net cycles evenly instead of all falling due in the same minute.
   */
  private safetyNetDueAt: number;
  private readonly fullCycleEveryMs: number;
  /** The next scheduled poll is a full cycle whatever the probe says (set by wake()). */
  private fullCycleNext = false;
  /** The spool as the source's probe reads it. */
  readonly spoolView: QueueSpoolSink;

  constructor(
    private readonly queue: QueueConfig,
    private readonly deps: PollerDependencies,
  ) {
    this.fullCycleEveryMs = deps.fullCycleEveryMs ?? FULL_CYCLE_EVERY_MS;
    this.safetyNetDueAt = firstSafetyNet(performance.now(), this.fullCycleEveryMs, Math.random());
    this.spoolView = this.newSink();
  }

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

  /**
   * A fetch cycle now. When one is running, another follows it: mail that arrived after the
   * running cycle's search must not wait for the next poll.
   */
  runCycle(): Promise<void> {
    if (this.cycle) {
      this.again = true;
      return this.cycle;
    }
    this.cycle = (async () => {
      do {
        this.again = false;
        await this.fetch();
      } while (this.again && !this.stopped);
    })().finally(() => (this.cycle = undefined));
    return this.cycle;
  }

  /**
   * A fetch cycle now, and the schedule continued from its outcome: after a new sign-in the
   * queue polls at its interval again instead of waiting out a long retry delay.
   */
  wake(): void {
    // A full cycle, not a probe: the sign-in changed (login, logout), and only a cycle, which
    // asks for a token, finds out what that means for the queue.
    this.fullCycleNext = true;
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      await this.poll();
      const next = nextPollDelay({ consecutiveFailures: this.consecutiveFailures, lastError: this.lastError, poll: this.queue.poll });
      if (next !== undefined) this.schedule(next);
    }, delayMs);
  }

  /** A scheduled poll: a full cycle, unless the IDLE session says nothing changed. */
  private async poll(): Promise<void> {
    if (this.cycle) {
      await this.runCycle();
      return;
    }
    const nothingNew = await this.nothingNew();
    // stop() does not wait for a probe: no cycle may start after it.
    if (this.stopped) return;
    if (!nothingNew) {
      await this.runCycle();
      return;
    }
    // A cycle IDLE started while the probe was out does the looking; its outcome is recorded.
    if (this.cycle) {
      await this.cycle;
      return;
    }
    await this.succeeded(0, 0, { probed: true });
  }

  /**
   * True only when the source's probe answered that the spool has everything it shows (IMAP:
   * same UIDVALIDITY as the cursor, no UID above it, no server-side action owed). Anything else,
   * a failure spell or a safety-net cycle due, means a full cycle. The source reads the cursor
   * after its answer, so mail the answer counts is either spooled by then or above the cursor.
   */
  private async nothingNew(): Promise<boolean> {
    const source = this.deps.source;
    const decision = decidePoll(
      {
        now: performance.now(),
        healthy: this.isHealthy(),
        canProbe: source.probe !== undefined,
        fullCycleRequested: this.fullCycleNext,
        safetyNetDueAt: this.safetyNetDueAt,
      },
      this.fullCycleEveryMs,
    );
    this.fullCycleNext = false;
    this.safetyNetDueAt = decision.safetyNetDueAt;
    if (decision.action === "cycle" || !source.probe) return false;
    let upToDate: boolean | undefined;
    try {
      upToDate = await source.probe(this.spoolView);
    } catch {
      return false;
    }
    return upToDate === true && !this.stopped;
  }

  /**
   * A new push session (IDLE) is up: a catch-up cycle only when it showed mail the spool does
   * not have (`upToDate` false) or the queue is not healthy, rather than a connection of its own
   * at every session renewal.
   */
  sessionOpened(upToDate: boolean): void {
    if (this.stopped) return;
    if (cycleWhenSessionOpens(this.isHealthy(), upToDate)) void this.runCycle();
  }

  private isHealthy(): boolean {
    return this.state === "ok" && this.consecutiveFailures === 0;
  }

  private newSink(): QueueSpoolSink {
    return new QueueSpoolSink(this.queue, this.deps.source.kind, this.deps.spool, this.deps.events);
  }

  private async fetch(): Promise<void> {
    const sink = this.newSink();
    try {
      await this.deps.source.sync(sink);
      await this.succeeded(sink.fetched, sink.spooled);
    } catch (raw) {
      // A fenced write: the queue's lease moved to another replica and this pipeline is being
      // stopped. Not a failure of the queue: the new owner's status stands, nothing is recorded.
      if (isFenced(raw)) {
        this.deps.logger.info({ code: "STATE_FENCED" }, "another replica holds the queue now: this one fetches nothing more of it");
        return;
      }
      await this.failed(toFetchError(raw));
    }
  }

  /** `probed`: a poll the IDLE session answered (nothing new, no connection of its own): a successful look all the same. */
  private async succeeded(fetched: number, spooled: number, how: { probed?: true } = {}): Promise<void> {
    const at = new Date();
    const { logger, status, events } = this.deps;
    if (this.consecutiveFailures > 0) {
      logger.info({ after: this.consecutiveFailures }, "queue recovered: fetching again");
      const after = scheduleAfterRecovery(this.queue.poll);
      if (after === "none") clearTimeout(this.timer);
      else this.schedule(after.inMs);
    }
    this.consecutiveFailures = 0;
    this.lastError = undefined;
    try {
      await status.recordSuccess(this.queue.name, at);
    } catch (storageError) {
      logger.warn({ err: storageError }, "could not record the queue's status");
    }
    this.setState("ok");
    events.emit("fetch-succeeded", { queue: this.queue.name, fetched, spooled, at, ...how });
    if (spooled > 0) logger.info({ fetched, spooled }, "fetched new mail");
    else if (how.probed) logger.debug("poll: nothing new (asked the IDLE session)");
    else logger.debug({ fetched }, "poll: nothing new");
  }

  private async failed(error: MailfetchdError): Promise<void> {
    const at = new Date();
    const { logger, status, events } = this.deps;
    const changed = this.lastError?.code !== error.code;
    const state = queueStateOf(error.code);
    this.lastError = error;
    try {
      this.consecutiveFailures = await status.recordFailure(this.queue.name, state, error, at);
    } catch (storageError) {
      // The state database may be the very thing failing (disk full): keep counting in memory.
      this.consecutiveFailures++;
      logger.debug({ err: storageError }, "could not record the queue's status");
    }
    this.setState(state);
    events.emit("fetch-failed", { queue: this.queue.name, code: error.code, retryable: error.retryable, message: error.message, fix: error.fix, at });
    const entry = { code: error.code, state, retryable: error.retryable, fix: error.fix, failures: this.consecutiveFailures };
    if (!changed) logger.debug(entry, error.message);
    else if (error.retryable) logger.warn(entry, error.message);
    else logger.error(entry, error.message);
  }

  private setState(state: QueueState): void {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.deps.events.emit("queue-state", { queue: this.queue.name, state, previous });
  }
}

/** Anything thrown by a cycle, as a MailfetchdError: storage failures are named as such. */
function toFetchError(raw: unknown): MailfetchdError {
  // The state store failed under the sync (disk full, read-only, unreachable): named as a spool write failure, as always.
  if (raw instanceof MailfetchdError && raw.code === "STATE_UNAVAILABLE") {
    return new MailfetchdError(raw.message, { code: "SPOOL_WRITE_FAILED", retryable: true, fix: raw.fix, cause: raw });
  }
  if (raw instanceof MailfetchdError) return raw;
  const code = (raw as { code?: unknown })?.code;
  if (typeof code === "string" && code.startsWith("SQLITE_")) {
    return new MailfetchdError(`The state database cannot be written (${code}).`, {
      code: "SPOOL_WRITE_FAILED",
      retryable: true,
      fix: "Free space or fix permissions on state.dir; fetching resumes by itself and nothing is changed on the server meanwhile.",
      cause: raw,
    });
  }
  return new MailfetchdError(describeError(raw), { code: "IMAP_UNAVAILABLE", retryable: true, cause: raw });
}
