/**
 * A sync whose spool write is fenced (another replica holds the queue now) is not a failure of
 * the queue: the poller records no failure in the queue's shared status (the new owner's stands),
 * emits no fetch-failed, and says at info what happened. The source is a stand-in for the port
 * (the poller's handling is the logic under test); the spool and status are a real SQLite store.
 */
import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { MailfetchdError } from "../../src/errors.js";
import { DaemonEvents } from "../../src/events.js";
import { Poller } from "../../src/queue/poller.js";
import type { MailSource } from "../../src/source/mail-source.js";
import { openTempSpool } from "../../tools/testbed/helpers/temp-spool.js";

const fenced = new MailfetchdError("Queue 'desk' is owned by another replica now.", { code: "STATE_FENCED", retryable: false });
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function pollerFailingWith(error: unknown) {
  const { store, spool } = openTempSpool();
  closers.push(() => store.close());
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, new Writable({ write: (chunk, _enc, done) => done(void lines.push(JSON.parse(String(chunk)))) }));
  const events = new DaemonEvents();
  const failed: string[] = [];
  events.on("fetch-failed", (e) => failed.push(e.code));
  const source: MailSource = { kind: "imap", sync: () => Promise.reject(error) };
  const queue = {
    name: "desk",
    address: "desk@example.test",
    poll: { intervalMs: 60_000 },
    handlers: [],
    afterSpool: { action: "keep" },
  } as unknown as QueueConfig;
  const poller = new Poller(queue, { source, spool, status: store.queueStatus, events, logger, fullCycleEveryMs: 3_600_000 });
  return { poller, store, lines, failed };
}

describe("a fenced sync", () => {
  it("records no failure and says at info that another replica holds the queue", async () => {
    const { poller, store, lines, failed } = pollerFailingWith(
      new MailfetchdError("Cannot record a message in the state store.", { code: "SPOOL_WRITE_FAILED", retryable: true, cause: fenced }),
    );
    await poller.runCycle();
    expect(failed).toEqual([]);
    expect(await store.queueStatus.get("desk")).toBeUndefined();
    expect(lines.filter((l) => Number(l.level) >= 40)).toEqual([]);
    expect(lines.some((l) => l.msg === "another replica holds the queue now: this one fetches nothing more of it" && l.level === 30)).toBe(true);
  });

  it("while any other failure of the state store is recorded and logged as one", async () => {
    const { poller, store, failed } = pollerFailingWith(
      new MailfetchdError("The state database cannot be written.", { code: "STATE_UNAVAILABLE", retryable: true }),
    );
    await poller.runCycle();
    // Named as a spool write failure, as the poller always names a state store failing under a sync.
    expect(failed).toEqual(["SPOOL_WRITE_FAILED"]);
    expect((await store.queueStatus.get("desk"))?.consecutiveFailures).toBe(1);
  });
});
