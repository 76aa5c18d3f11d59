/**
 * Several queues draining at once share one fetch budget (src/queue/memory-budget.ts): what
 * their FETCHes hold in memory together stays inside it, and every message is still spooled.
 * Real Dovecot, identity stand-in, SQLite spool.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { DaemonEvents } from "../../src/events.js";
import { ImapMailbox } from "../../src/imap/imap-mailbox.js";
import { ImapSource } from "../../src/imap/imap-source.js";
import { MemoryBudget } from "../../src/queue/memory-budget.js";
import { QueueSpoolSink } from "../../src/queue/queue-spool-sink.js";
import { Spool } from "../../src/spool/spool.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTokenFixture, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const QUEUES = ["budget-a", "budget-b", "budget-c", "budget-d"].map((name) => ({ name, address: `${name}@example.test`, password: `${name}-Pa55word!` }));
const PER_QUEUE = 30;

let fx: TokenFixture;
let queues: QueueConfig[];
let spool: Spool;

beforeAll(async () => {
  fx = await startTokenFixture();
  for (const q of QUEUES) fx.bed.identity.addUser({ username: q.address, password: q.password });
  queues = fx.queues(QUEUES.map((q) => ({ ...q, options: { idle: false } }))) as QueueConfig[];
  spool = new Spool(fx.state, path.join(fx.bed.dir, "state"));
  for (const q of QUEUES) for (const m of sampleMessages(PER_QUEUE, { seed: q.name, to: q.address })) await fx.bed.dovecot.deliver(q.address, m.raw);
}, 120_000);

afterAll(async () => {
  await fx?.close();
});

/** A budget that remembers the most it ever had in flight. */
class WatchedBudget extends MemoryBudget {
  most = { messages: 0, bytes: 0 };
  override async acquire(queue: string, bytes: number, signal: AbortSignal): Promise<() => void> {
    const release = await super.acquire(queue, bytes, signal);
    this.most = { messages: Math.max(this.most.messages, this.inUse.messages), bytes: Math.max(this.most.bytes, this.inUse.bytes) };
    return release;
  }
}

describe("the fetch budget", () => {
  it("bounds what queues draining together hold in memory, and every message is spooled", async () => {
    // One FETCH at a time across all queues, however many drain.
    const budget = new WatchedBudget({ messages: 1, bytes: 64 * 1024 });
    const events = new DaemonEvents();
    const sinks = queues.slice(0, 3).map((queue) => {
      const logger = fx.logger.child({ queue: queue.name });
      const source = new ImapSource(queue, new ImapMailbox(queue, fx.provider(queue), logger, budget), logger);
      const sink = new QueueSpoolSink(queue, source.kind, spool, events);
      return { source, sink };
    });
    await Promise.all(sinks.map(({ source, sink }) => source.sync(sink)));
    expect(sinks.map(({ sink }) => sink.spooled)).toEqual([PER_QUEUE, PER_QUEUE, PER_QUEUE]);
    expect(budget.most.messages).toBe(1);
    expect(budget.inUse).toEqual({ messages: 0, bytes: 0 });
  });

  it("a message the spool refuses in the middle of a FETCH fails the sync, not the process, and gives the budget back", async () => {
    const budget = new WatchedBudget({ messages: 1, bytes: 64 * 1024 * 1024 });
    const queue = queues[3]!;
    const logger = fx.logger.child({ queue: queue.name });
    const source = new ImapSource(queue, new ImapMailbox(queue, fx.provider(queue), logger, budget), logger);
    const real = new QueueSpoolSink(queue, source.kind, spool, new DaemonEvents());
    let accepted = 0;
    // The third message is refused at once, as a read-only spool refuses it, while the FETCH
    // still streams the others in: its rejection waits until the mailbox reads it.
    const refusing = Object.assign(Object.create(real) as QueueSpoolSink, {
      accept: (message: Parameters<QueueSpoolSink["accept"]>[0]) =>
        ++accepted === 3 ? Promise.reject(new Error("EROFS: read-only file system")) : real.accept(message),
    });
    await expect(source.sync(refusing)).rejects.toThrow(/EROFS/);
    expect(budget.inUse).toEqual({ messages: 0, bytes: 0 });
    // (That nothing behind a refused message commits is the spool's rule, tested in test/spool.)
  });
});
