/**
 * Feeds one queue's handlers from the spool, independently of IMAP: a dead IMAP server never
 * blocks delivery of what is spooled, and a dead handler never blocks fetching.
 *
 * Each (message, handler) pair is tracked on its own. A retryable failure is retried with
 * backoff; a permanent one (PermanentError) parks the pair as dead with its reason. A failing
 * message never holds up the messages behind it: its pair simply falls due later.
 */
import { constants } from "node:fs";
import { access, rm, stat } from "node:fs/promises";
import { describeError, isFenced, isRetryable, MailfetchdError } from "../errors.js";
import type { DaemonEvents } from "../events.js";
import type { Handler, Logger, MessageParser, ParsedMessage, QueueIdentity, RawMessage } from "../interfaces.js";
import { sourceFields } from "../source/source-fields.js";
import { rawMessageFromFile } from "../spool/raw-message.js";
import type { DueDelivery, Spool } from "../spool/spool.js";
import { stableIdOfParsed } from "../spool/stable-id.js";
import { backoffDelay, sleep } from "../support/backoff.js";
import { MemoryBudget, type Release } from "./memory-budget.js";

const BATCH = 200;
/** Deliveries recorded in one commit at most, and how long one may wait for its commit. */
const RECORD_BATCH = 32;
const RECORD_WITHIN_MS = 250;
const RETRY = { baseMs: 2_000, maxMs: 5 * 60_000 };

export interface DelivererDependencies {
  readonly spool: Spool;
  readonly parser: MessageParser;
  readonly handlers: ReadonlyMap<string, Handler>;
  readonly events: DaemonEvents;
  readonly logger: Logger;
  /**
   * Messages being parsed or delivered at once, and their bytes, shared by every queue's
   * deliverer (built once in src/app.ts). Default: a budget of this deliverer's own.
   */
  readonly budget?: MemoryBudget;
}

export class Deliverer {
  private readonly stopping = new AbortController();
  private wakeUp?: () => void;
  private running?: Promise<void>;
  private unrecorded: DueDelivery[] = [];
  private unrecordedSince?: number;
  private readonly spool: Spool;
  private readonly parser: MessageParser;
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly events: DaemonEvents;
  private readonly logger: Logger;
  private readonly budget: MemoryBudget;

  constructor(
    private readonly queue: QueueIdentity,
    deps: DelivererDependencies,
  ) {
    ({ spool: this.spool, parser: this.parser, handlers: this.handlers, events: this.events, logger: this.logger } = deps);
    this.budget = deps.budget ?? new MemoryBudget();
  }

  start(): void {
    if (this.running) return;
    for (const handler of this.handlers.values()) {
      void handler
        .start?.(this.queue, this.logger.child({ handler: handler.name }))
        .catch((error: unknown) => this.logger.warn({ err: error, handler: handler.name }, "handler start-up failed"));
    }
    this.running = this.loop().catch((error) => this.logger.fatal({ err: error }, "delivery loop crashed"));
  }

  /** New mail was spooled: look now rather than at the next due time. */
  wake(): void {
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.wake();
    await this.running;
  }

  private async loop(): Promise<void> {
    const signal = this.stopping.signal;
    let storageFailures = 0;
    while (!signal.aborted) {
      try {
        const due = await this.spool.dueDeliveries(this.queue.name, Date.now(), BATCH);
        if (due.length === 0) {
          await this.idle(signal);
          continue;
        }
        await this.deliverInOrder(groupByMessage(due), signal);
        storageFailures = 0;
      } catch (error) {
        // The state database itself failed (disk full, read-only, I/O error). Nothing is lost:
        // a delivery not recorded as done is redone. Wait and try again, never give up the loop.
        storageFailures++;
        const delay = backoffDelay(storageFailures, RETRY);
        // A fenced write: the queue's lease moved to another replica, which delivers from here
        // on; this pipeline is being stopped. Not a storage failure for the operator to chase.
        if (isFenced(error)) this.logger.info({ code: "STATE_FENCED" }, "another replica holds the queue now: this one delivers nothing more of it");
        else if (storageFailures === 1) this.logger.error({ err: error, retryInMs: delay }, "cannot read or update the spool; delivery paused, retrying");
        await sleep(delay, signal);
      }
    }
  }

  private async idle(signal: AbortSignal): Promise<void> {
    const next = await this.spool.nextDueAt(this.queue.name);
    const waitMs = next === undefined ? 60_000 : Math.max(0, next - Date.now());
    const woken = new AbortController();
    this.wakeUp = () => woken.abort();
    return sleep(waitMs, AbortSignal.any([signal, woken.signal])).finally(() => (this.wakeUp = undefined));
  }

  /** Delivers a batch of due messages (deliverEach), then records what was delivered. */
  private async deliverInOrder(groups: DueDelivery[][], signal: AbortSignal): Promise<void> {
    try {
      await this.deliverEach(groups, signal);
    } finally {
      // Before the next look for due deliveries, which must not see these as still pending.
      await this.flushDelivered();
    }
  }

  /**
   * "Delivered" is recorded for several deliveries in one commit (one fsync) rather than one
   * each: a per-delivery commit blocked the event loop ~4 ms a message. A crash before the
   * commit costs a repeat of those deliveries, which at-least-once allows and the stable id
   * makes recognisable; it never loses one.
   */
  private async recordDelivered(delivery: DueDelivery): Promise<void> {
    this.unrecorded.push(delivery);
    this.unrecordedSince ??= Date.now();
    if (this.unrecorded.length >= RECORD_BATCH || Date.now() - this.unrecordedSince >= RECORD_WITHIN_MS) await this.flushDelivered();
  }

  private async flushDelivered(): Promise<void> {
    if (this.unrecorded.length === 0) return;
    const batch = this.unrecorded;
    this.unrecorded = [];
    this.unrecordedSince = undefined;
    await this.spool.markDeliveredMany(batch);
  }

  /**
   * A few messages at a time, started in spool order, each parsed (in the parser's worker
   * threads) then handed to its handlers: a handler's fsyncs and a parse overlap with the next
   * message's. What is in flight, across all queues, is bounded by the shared budget in count
   * and bytes (a message above the byte bound goes alone); a slot freed by whichever message
   * finishes first, not the oldest, so a 10 MB parse never leaves the other worker idle.
   * Deliveries of one queue may so finish out of order; handlers are idempotent on the id and
   * never promised an order (a retried message is overtaken anyway).
   */
  private async deliverEach(groups: DueDelivery[][], signal: AbortSignal): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    const failures: unknown[] = [];
    try {
      for (const group of groups) {
        if (signal.aborted || failures.length > 0) break;
        let release: Release;
        try {
          release = await this.budget.acquire(this.queue.name, group[0]!.size, signal);
        } catch (error) {
          if (signal.aborted) break; // stopping: nothing was taken
          throw error;
        }
        if (failures.length > 0) {
          release();
          break;
        }
        const task: Promise<void> = this.parseAndDeliver(group, signal)
          .catch((error: unknown) => void failures.push(error))
          .finally(() => {
            release();
            inFlight.delete(task);
          });
        inFlight.add(task);
      }
    } finally {
      await Promise.all(inFlight);
    }
    if (failures.length > 0 && !signal.aborted) throw failures[0];
  }

  /**
   * Big attachments are parsed into a scratch directory of this round's own, which goes when
   * the round ends: a retry parses the spool file again.
   */
  private async parseAndDeliver(group: DueDelivery[], signal: AbortSignal): Promise<void> {
    const scratchDir = this.spool.scratchDir(this.queue.name, group[0]!.spoolKey);
    try {
      const parsed = await this.parse(group[0]!, scratchDir);
      if (signal.aborted || parsed === undefined) return;
      const stableId = await this.stableIdOf(group[0]!, parsed);
      if (stableId === undefined) return;
      await this.deliverMessage(group, stableId, parsed, signal);
    } finally {
      await rm(scratchDir, { recursive: true, force: true }).catch((error: unknown) =>
        this.logger.warn({ err: error, dir: scratchDir }, "could not remove a parse scratch directory"),
      );
    }
  }

  /**
   * The message's stable id: given once, at its first parse, from its content (or, when its
   * body could not be parsed, its exact bytes). Undefined when the message turns out to be a
   * repeat of another message in the spool: its deliveries are done, the other copy is delivered.
   */
  private async stableIdOf(delivery: DueDelivery, parsed: ParsedMessage): Promise<string | undefined> {
    if (delivery.stableId !== undefined) return delivery.stableId;
    const contentId = stableIdOfParsed(this.queue.address, parsed.contentFingerprint, delivery.contentSha256);
    const { stableId, repeatOf } = await this.spool.assignStableId(this.queue.name, delivery, contentId);
    if (repeatOf === undefined) return stableId;
    this.logger.info({ messageId: stableId, item: delivery.location.item, repeatOf }, "same content as a message already in the spool; not delivered again");
    this.events.emit("repeat-recognised", { queue: this.queue.name, id: stableId });
    return undefined;
  }

  /**
   * The parsed message; from its spool file when the parser can read one (nothing held here
   * meanwhile). Undefined when stopping (the parser may be closed by then); rejects only when the
   * state directory cannot take scratch files (the delivery loop pauses and retries).
   */
  private async parse(delivery: DueDelivery, scratchDir: string): Promise<ParsedMessage | undefined> {
    try {
      if (this.parser.parseFile) {
        const local = await this.spool.rawFile(this.queue.name, delivery.spoolKey);
        try {
          return await this.parser.parseFile(local.path, { scratchDir, queue: this.queue.name });
        } finally {
          await local.release();
        }
      }
      return await this.parser.parse(await this.spool.readRaw(this.queue.name, delivery.spoolKey));
    } catch (error) {
      if (this.stopping.signal.aborted) return undefined;
      // No room for scratch files: the state directory's trouble. The loop pauses and retries.
      if (error instanceof MailfetchdError && error.code === "SPOOL_WRITE_FAILED") throw error;
      // An unreadable spool file is dead-lettered by deliverMessage, which reads it again.
      return { from: [], to: [], cc: [], replyTo: [], references: [], attachments: [], parseError: `not parsed: ${describeError(error)}` };
    }
  }

  /** The spool file as a RawMessage, and its release once the handlers are done; rejects when it is missing or unreadable. */
  private async rawMessage(spoolKey: string): Promise<{ raw: RawMessage; release(): Promise<void> }> {
    const local = await this.spool.rawFile(this.queue.name, spoolKey);
    try {
      const { size } = await stat(local.path);
      await access(local.path, constants.R_OK);
      return { raw: rawMessageFromFile(local.path, size), release: () => local.release() };
    } catch (error) {
      await local.release();
      throw error;
    }
  }

  private async deliverMessage(group: DueDelivery[], id: string, parsed: ParsedMessage, signal: AbortSignal): Promise<void> {
    const first = group[0]!;
    const log = this.logger.child({ messageId: id });
    let raw: RawMessage;
    let release: () => Promise<void>;
    try {
      // The spool file itself, not its bytes: handlers read it only if they need it in memory.
      ({ raw, release } = await this.rawMessage(first.spoolKey));
    } catch (error) {
      // The spool file is written before the row that points at it; a missing file means the
      // state directory was tampered with. Park the pair rather than loop on it.
      for (const delivery of group) {
        const reason = `spool file unreadable: ${describeError(error)}`;
        await this.spool.markDead(delivery.seq, delivery.handler, reason);
        this.events.emit("dead-lettered", { queue: this.queue.name, id, handler: delivery.handler, reason });
      }
      log.error({ err: error }, "spooled message file is unreadable; parked as dead letter");
      return;
    }
    if (parsed.parseError) log.warn({ parseError: parsed.parseError }, "message could not be parsed fully; delivering it raw with the error noted");
    // The fingerprint is the pipeline's own; handlers get the id derived from it.
    const { contentFingerprint: _fingerprint, ...forHandlers } = parsed;
    const message = {
      id,
      queue: this.queue,
      source: sourceFields(first.location),
      internalDate: first.internalDate,
      raw,
      parsed: forHandlers,
    };
    try {
      await this.deliverToHandlers(group, id, message, log, signal);
    } finally {
      await release();
    }
  }

  private async deliverToHandlers(
    group: DueDelivery[],
    id: string,
    message: Parameters<Handler["deliver"]>[0],
    log: Logger,
    signal: AbortSignal,
  ): Promise<void> {
    const first = group[0]!;
    for (const delivery of group) {
      const handler = this.handlers.get(delivery.handler);
      if (!handler) {
        const reason = `handler '${delivery.handler}' is no longer configured`;
        await this.spool.markDead(delivery.seq, delivery.handler, reason);
        this.events.emit("dead-lettered", { queue: this.queue.name, id, handler: delivery.handler, reason });
        continue;
      }
      const attempt = delivery.attempts + 1;
      const started = Date.now();
      try {
        await handler.deliver(message, { signal, logger: log.child({ handler: handler.name }), attempt });
        await this.recordDelivered(delivery);
        const durationMs = Date.now() - started;
        log.debug({ handler: handler.name, attempt, ms: durationMs, item: first.location.item }, "delivered");
        this.events.emit("delivered", { queue: this.queue.name, id, handler: handler.name, attempt, durationMs, arrivedAt: first.internalDate });
      } catch (error) {
        const reason = describeError(error);
        if (isRetryable(error)) {
          // The failing party's own estimate (Retry-After) is a floor: sooner is sure to fail again.
          const delay = Math.max(backoffDelay(attempt, RETRY), error instanceof MailfetchdError ? (error.retryAfterMs ?? 0) : 0);
          await this.spool.markRetry(delivery.seq, delivery.handler, reason, Date.now() + delay);
          log.warn({ handler: handler.name, attempt, retryInMs: delay, reason }, "delivery failed; will retry");
          this.events.emit("delivery-failed", { queue: this.queue.name, id, handler: handler.name, attempt, retryInMs: delay, reason });
        } else {
          await this.spool.markDead(delivery.seq, delivery.handler, reason);
          log.error({ handler: handler.name, attempt, reason }, "handler rejected the message; parked as dead letter");
          this.events.emit("dead-lettered", { queue: this.queue.name, id, handler: handler.name, reason });
        }
      }
    }
  }
}

function groupByMessage(due: DueDelivery[]): DueDelivery[][] {
  const groups = new Map<number, DueDelivery[]>();
  for (const delivery of due) {
    const group = groups.get(delivery.seq);
    if (group) group.push(delivery);
    else groups.set(delivery.seq, [delivery]);
  }
  return [...groups.values()];
}
