/**
 * The hand-off from a mail source to the spool for one queue: what a sync writes goes into
 * the spool with the queue's handlers and owed server-side action, and each message newly
 * spooled is announced (the deliverer wakes on it). One sink per sync cycle: it counts what
 * the cycle fetched and spooled.
 */
import type { QueueConfig } from "../config/schema.js";
import type { DaemonEvents } from "../events.js";
import type { FetchedMessage, StreamedMessage } from "../interfaces.js";
import type { OwedAction, SourceKind } from "../source/message-location.js";
import type { SpoolSink } from "../source/spool-sink.js";
import type { AcceptOptions, Spool } from "../spool/spool.js";

export class QueueSpoolSink implements SpoolSink {
  /** Messages the source handed over (repeats of spooled locations included). */
  fetched = 0;
  /** Of those, the ones new to the spool. */
  spooled = 0;
  private readonly identity: { readonly name: string; readonly address: string };
  private readonly acceptOptions: AcceptOptions;

  constructor(
    private readonly queue: QueueConfig,
    private readonly kind: SourceKind,
    private readonly spool: Spool,
    private readonly events: DaemonEvents,
  ) {
    this.identity = { name: queue.name, address: queue.address };
    const afterSpool = queue.afterSpool;
    this.acceptOptions = {
      handlers: queue.handlers.map(handlerName),
      serverAction: afterSpool.action === "keep" ? undefined : { action: afterSpool.action, target: afterSpool.action === "move" ? afterSpool.to : undefined },
    };
  }

  cursor(folder: string): Promise<string | undefined> {
    return this.spool.cursor(this.queue.name, this.kind, folder);
  }

  restart(folder: string, position: string): Promise<void> {
    return this.spool.restartCursor(this.queue.name, this.kind, folder, position);
  }

  async accept(message: FetchedMessage | StreamedMessage): Promise<void> {
    const result = await this.spool.accept(this.identity, this.acceptOptions, message);
    this.fetched++;
    if (!result.isNew) return;
    this.spooled++;
    const queue = this.queue.name;
    this.events.emit("spooled", { queue, key: result.key, size: message.size });
    if (message.tooLarge) {
      for (const handler of this.acceptOptions.handlers) this.events.emit("dead-lettered", { queue, id: result.key, handler, reason: "too large" });
    }
  }

  advance(folder: string, position: string): Promise<void> {
    return this.spool.advanceCursor(this.queue.name, this.kind, folder, position);
  }

  pendingActions(folder: string): Promise<OwedAction[]> {
    return this.spool.pendingServerActions(this.queue.name, this.kind, folder);
  }

  async actionsDone(folder: string, items: readonly string[]): Promise<void> {
    await this.spool.serverActionsDone(this.queue.name, this.kind, folder, items);
  }

  dropActions(folder: string, items: readonly string[]): Promise<number> {
    return this.spool.serverActionsDone(this.queue.name, this.kind, folder, items);
  }
}

export function handlerName(handler: { type: string; name?: string }): string {
  return handler.name ?? handler.type;
}
