/**
 * Feeds one queue's handlers from the spool, independently of IMAP: a dead IMAP server never
 * blocks delivery of what is spooled, and a dead handler never blocks fetching.
 *
 * Each (message, handler) pair is tracked on its own. A retryable failure is retried with
 * backoff; a permanent one (PermanentError) parks the pair as dead with its reason. A failing
 * message never holds up the messages behind it: its pair simply falls due later.
 */
import { describeError, isRetryable } from "../errors.js";
import type { DaemonEvents } from "../events.js";
import type { Handler, Logger, MessageParser, QueueIdentity } from "../interfaces.js";
import type { DueDelivery, Spool } from "../spool/spool.js";
import { backoffDelay, sleep } from "./backoff.js";

const BATCH = 50;
const RETRY = { baseMs: 2_000, maxMs: 5 * 60_000 };

export interface DelivererDependencies {
  readonly spool: Spool;
  readonly parser: MessageParser;
  readonly handlers: ReadonlyMap<string, Handler>;
  readonly events: DaemonEvents;
  readonly logger: Logger;
}

export class Deliverer {
  private readonly stopping = new AbortController();
  private wakeUp?: () => void;
  private running?: Promise<void>;
  private readonly spool: Spool;
  private readonly parser: MessageParser;
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly events: DaemonEvents;
  private readonly logger: Logger;

  constructor(
    private readonly queue: QueueIdentity,
    deps: DelivererDependencies,
  ) {
    ({ spool: this.spool, parser: this.parser, handlers: this.handlers, events: this.events, logger: this.logger } = deps);
  }

  start(): void {
    this.running ??= this.loop().catch((error) => this.logger.fatal({ err: error }, "delivery loop crashed"));
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
    while (!signal.aborted) {
      const due = this.spool.dueDeliveries(this.queue.name, Date.now(), BATCH);
      if (due.length === 0) {
        await this.idle(signal);
        continue;
      }
      for (const group of groupByMessage(due)) {
        if (signal.aborted) return;
        await this.deliverMessage(group, signal);
      }
    }
  }

  private idle(signal: AbortSignal): Promise<void> {
    const next = this.spool.nextDueAt(this.queue.name);
    const waitMs = next === undefined ? 60_000 : Math.max(0, next - Date.now());
    const woken = new AbortController();
    this.wakeUp = () => woken.abort();
    return sleep(waitMs, AbortSignal.any([signal, woken.signal])).finally(() => (this.wakeUp = undefined));
  }

  private async deliverMessage(group: DueDelivery[], signal: AbortSignal): Promise<void> {
    const first = group[0]!;
    const log = this.logger.child({ messageId: first.id });
    let raw: Buffer;
    try {
      raw = await this.spool.readRaw(this.queue.name, first.id);
    } catch (error) {
      // The spool file is written before the row that points at it; a missing file means the
      // state directory was tampered with. Park the pair rather than loop on it.
      for (const delivery of group) {
        const reason = `spool file unreadable: ${describeError(error)}`;
        this.spool.markDead(delivery.seq, delivery.handler, reason);
        this.events.emit("dead-lettered", { queue: this.queue.name, id: first.id, handler: delivery.handler, reason });
      }
      log.error({ err: error }, "spooled message file is unreadable; parked as dead letter");
      return;
    }
    const parsed = await this.parser.parse(raw);
    if (parsed.parseError) log.warn({ parseError: parsed.parseError }, "message could not be parsed fully; delivering it raw with the error noted");
    const message = {
      id: first.id,
      queue: this.queue,
      source: { folder: first.folder, uidValidity: first.uidValidity, uid: first.uid },
      internalDate: first.internalDate,
      raw,
      parsed,
    };
    for (const delivery of group) {
      const handler = this.handlers.get(delivery.handler);
      if (!handler) {
        const reason = `handler '${delivery.handler}' is no longer configured`;
        this.spool.markDead(delivery.seq, delivery.handler, reason);
        this.events.emit("dead-lettered", { queue: this.queue.name, id: first.id, handler: delivery.handler, reason });
        continue;
      }
      const attempt = delivery.attempts + 1;
      const started = Date.now();
      try {
        await handler.deliver(message, { signal, logger: log.child({ handler: handler.name }), attempt });
        this.spool.markDelivered(delivery.seq, delivery.handler);
        const durationMs = Date.now() - started;
        log.debug({ handler: handler.name, attempt, ms: durationMs, uid: first.uid }, "delivered");
        this.events.emit("delivered", { queue: this.queue.name, id: first.id, handler: handler.name, attempt, durationMs });
      } catch (error) {
        const reason = describeError(error);
        if (isRetryable(error)) {
          const delay = backoffDelay(attempt, RETRY);
          this.spool.markRetry(delivery.seq, delivery.handler, reason, Date.now() + delay);
          log.warn({ handler: handler.name, attempt, retryInMs: delay, reason }, "delivery failed; will retry");
          this.events.emit("delivery-failed", { queue: this.queue.name, id: first.id, handler: handler.name, attempt, retryInMs: delay, reason });
        } else {
          this.spool.markDead(delivery.seq, delivery.handler, reason);
          log.error({ handler: handler.name, attempt, reason }, "handler rejected the message; parked as dead letter");
          this.events.emit("dead-lettered", { queue: this.queue.name, id: first.id, handler: handler.name, reason });
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
