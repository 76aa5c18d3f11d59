/**
 * A scheduled poll asks the queue's IDLE session (one STATUS) before opening a connection of
 * its own, on the real test bed: Dovecot over TLS with XOAUTH2, the identity stand-in, a real
 * SQLite spool. The poller and the IMAP source's IDLE watch are built as src/app.ts builds
 * them, except that the watch's new-mail signal goes nowhere: only the probe-driven poll can fetch, so a
 * poll that trusted the probe wrongly would leave mail behind. Connections are counted where
 * they are made: Dovecot's log of XOAUTH2 logins.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { DaemonEvents } from "../../src/events.js";
import { ImapMailbox } from "../../src/imap/imap-mailbox.js";
import { ImapSource } from "../../src/imap/imap-source.js";
import { Poller } from "../../src/queue/poller.js";
import { Spool } from "../../src/spool/spool.js";
import { sampleMessages } from "../../src/testbed/sample-messages.js";
import { imapCursor } from "../spool/imap-messages.js";
import { startTokenFixture, type TokenFixture } from "../tokens/token-fixture.js";

const QUEUE = { name: "desk", address: "desk@example.test", password: "desk-Pa55word!" };

let fx: TokenFixture;
let queue: QueueConfig;

beforeAll(async () => {
  fx = await startTokenFixture();
  fx.bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  [queue] = fx.queues([{ ...QUEUE, options: { idle: true } }]) as [QueueConfig];
  // Polls every second: each one would be a login if the probe were not asked.
  queue = { ...queue, poll: { intervalMs: 1_000 } };
});

afterAll(async () => {
  await fx?.close();
});

function logins(): number {
  const log = readFileSync(fx.bed.dovecot.logFile, "utf8");
  return log.split(`Login: user=<${QUEUE.address}>`).length - 1;
}

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("scheduled polls while the IDLE session is up", () => {
  it("open no connection while nothing changed, fetch mail nobody acted on, and connect again without the session", async () => {
    const events = new DaemonEvents();
    const looks: Array<{ probed: boolean; spooled: number }> = [];
    events.on("fetch-succeeded", (e) => looks.push({ probed: e.probed === true, spooled: e.spooled }));
    const spool = new Spool(fx.state, path.join(fx.bed.dir, "state"));
    const logger = fx.logger.child({ queue: queue.name });
    const source = new ImapSource(queue, new ImapMailbox(queue, fx.provider(queue), logger), logger);
    let signalled = 0;
    const poller = new Poller(queue, {
      source,
      spool,
      status: fx.state.queueStatus,
      events,
      logger,
      // No safety-net cycle during the test: every full cycle seen here has a reason.
      fullCycleEveryMs: 24 * 3_600_000,
    });
    const idle = source.watch({ newMail: () => signalled++, sessionOpened: () => signalled++ }, poller.spoolView);
    const probedLooks = () => looks.filter((l) => l.probed).length;
    idle.start();
    try {
      await until("the IDLE session", async () => (await source.probe(poller.spoolView)) !== undefined);
      poller.start();
      await until("the first (full) cycle", () => looks.length > 0);
      expect(looks[0]).toEqual({ probed: false, spooled: 0 });

      // Nothing changes: polls go on, answered by the session, and no login is made for them.
      const loginsBefore = logins();
      await until("four polls answered by the IDLE session", () => probedLooks() >= 4);
      expect(looks.slice(1).every((l) => l.probed)).toBe(true);
      expect(logins()).toBe(loginsBefore);
      expect((await fx.state.queueStatus.get(queue.name))?.state).toBe("ok");

      // New mail: IDLE signals it, nobody acts on it; the next poll's probe sees UIDNEXT move
      // past the cursor and runs a full cycle, which spools it.
      const [message] = sampleMessages(1, { seed: "probe", to: QUEUE.address });
      const signalledBefore = signalled;
      const cycleLogins = logins();
      await fx.bed.dovecot.deliver(QUEUE.address, message!.raw);
      await until("the message in the spool", () => looks.some((l) => l.spooled === 1));
      expect(looks.find((l) => l.spooled === 1)?.probed).toBe(false);
      await until("the cycle's login in Dovecot's log", () => logins() > cycleLogins, 5_000);
      expect(logins()).toBe(cycleLogins + 1);
      expect((await imapCursor(spool, queue.name, queue.folder))?.lastUid).toBe(1);
      // The session did see the mail (so the watcher would have started a cycle in the daemon).
      await until("the IDLE notification", () => signalled > signalledBefore);

      // Caught up: polls are answered by the session again.
      const caughtUp = probedLooks();
      const loginsAfterFetch = logins();
      await until("two more polls answered by the IDLE session", () => probedLooks() >= caughtUp + 2);
      expect(logins()).toBe(loginsAfterFetch);

      // Without the session every poll connects, as it does with idle: false.
      await idle.stop();
      expect(await source.probe(poller.spoolView)).toBeUndefined();
      const loginsWithoutIdle = logins();
      const looksWithoutIdle = looks.length;
      await until("two polls without the IDLE session", () => looks.length >= looksWithoutIdle + 2);
      expect(looks.slice(looksWithoutIdle).some((l) => l.probed)).toBe(false);
      await until("their logins in Dovecot's log", () => logins() >= loginsWithoutIdle + 2, 5_000);
    } finally {
      await idle.stop();
      await poller.stop();
    }
  });

  it("a new IDLE session fetches only when its EXAMINE shows mail the spool does not have", async () => {
    const events = new DaemonEvents();
    const looks: Array<{ spooled: number }> = [];
    events.on("fetch-succeeded", (e) => looks.push({ spooled: e.spooled }));
    const spool = new Spool(fx.state, path.join(fx.bed.dir, "state"));
    const logger = fx.logger.child({ queue: queue.name });
    const source = new ImapSource(queue, new ImapMailbox(queue, fx.provider(queue), logger), logger);
    // Only the start and the sessions make cycles here: the schedule is hours away.
    const poller = new Poller({ ...queue, poll: { intervalMs: 3_600_000 } }, { source, spool, status: fx.state.queueStatus, events, logger });
    const session = () => source.watch({ newMail: () => undefined, sessionOpened: (upToDate) => poller.sessionOpened(upToDate) }, poller.spoolView);
    poller.start();
    await until("the first (full) cycle", () => looks.length > 0);

    // Nothing arrived: the session's own login, and no cycle.
    const quiet = session();
    const loginsBefore = logins();
    quiet.start();
    await until("the first session", async () => (await source.probe(poller.spoolView)) !== undefined);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await quiet.stop();
    expect(logins()).toBe(loginsBefore + 1);
    expect(looks).toHaveLength(1);

    // Mail arrived while no session was held: the next session's EXAMINE shows it, a cycle fetches it.
    const [message] = sampleMessages(1, { seed: "session-open", to: QUEUE.address });
    await fx.bed.dovecot.deliver(QUEUE.address, message!.raw);
    const next = session();
    next.start();
    try {
      await until("the message in the spool", () => looks.some((l) => l.spooled === 1));
    } finally {
      await next.stop();
      await poller.stop();
    }
  });
});
