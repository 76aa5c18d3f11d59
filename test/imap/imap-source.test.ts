/**
 * IMAP behind the MailSource port, on the real test bed (Dovecot over TLS with XOAUTH2, the
 * identity stand-in, a real SQLite spool): a sync spools by neutral locations and commits the
 * cursor in IMAP's encoding, takes the owed actions, and drops those a UIDVALIDITY change made
 * unaddressable; the probe answers through the IDLE watch only.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { DaemonEvents } from "../../src/events.js";
import { imapLocation, parseImapCursor } from "../../src/imap/imap-location.js";
import { ImapMailbox, uidSet } from "../../src/imap/imap-mailbox.js";
import { ImapSource } from "../../src/imap/imap-source.js";
import { QueueSpoolSink } from "../../src/queue/queue-spool-sink.js";
import { Spool } from "../../src/spool/spool.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startFaultProxy } from "../../tools/testbed/fault-proxy.js";
import { startTokenFixture, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const QUEUE = { name: "portal", address: "portal@example.test", password: "portal-Pa55word!" };
const FOLDER = "Portal";

let fx: TokenFixture;
let queue: QueueConfig;
let spool: Spool;

beforeAll(async () => {
  fx = await startTokenFixture();
  fx.bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  [queue] = fx.queues([{ ...QUEUE, options: { folder: FOLDER, afterSpool: "seen", idle: true } }]) as [QueueConfig];
  spool = new Spool(fx.state, path.join(fx.bed.dir, "state"));
  await fx.bed.dovecot.createFolder(QUEUE.address, FOLDER);
});

afterAll(async () => {
  await fx?.close();
});

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function deliver(count: number, seed: string): Promise<void> {
  for (const message of sampleMessages(count, { seed, to: QUEUE.address })) await fx.bed.dovecot.deliver(QUEUE.address, message.raw, FOLDER);
}

/**
 * A queue of its own that moves each message to "Handled" once spooled, with `count` messages
 * in its inbox; "Handled" is created unless `withoutTarget`.
 */
async function movingQueue(name: string, count: number, options: { withoutTarget?: boolean } = {}) {
  const address = `${name}@example.test`;
  fx.bed.identity.addUser({ username: address, password: QUEUE.password });
  if (!options.withoutTarget) await fx.bed.dovecot.createFolder(address, "Handled");
  const [moving] = fx.queues([{ name, address, password: QUEUE.password, options: { afterSpool: "move", moveTo: "Handled" } }]) as [QueueConfig];
  const logger = fx.logger.child({ queue: moving.name });
  const mailbox = new ImapMailbox(moving, fx.provider(moving), logger);
  const source = new ImapSource(moving, mailbox, logger);
  const events = new DaemonEvents();
  for (const message of sampleMessages(count, { seed: name, to: address })) await fx.bed.dovecot.deliver(address, message.raw);
  return { address, moving, mailbox, source, events, sink: () => new QueueSpoolSink(moving, source.kind, spool, events) };
}

describe("IMAP as a MailSource", () => {
  it("spools by neutral location, commits the IMAP cursor, takes the owed actions and answers probes through its watch", async () => {
    const logger = fx.logger.child({ queue: queue.name });
    const source = new ImapSource(queue, new ImapMailbox(queue, fx.provider(queue), logger), logger);
    const events = new DaemonEvents();
    const sink = () => new QueueSpoolSink(queue, source.kind, spool, events);
    await deliver(3, "port");

    const first = sink();
    await source.sync(first);
    expect([first.fetched, first.spooled]).toEqual([3, 3]);
    const cursor = parseImapCursor(await spool.cursor(queue.name, "imap", FOLDER));
    expect(cursor?.lastUid).toBe(3);
    const uidValidity = cursor!.uidValidity;
    expect((await spool.dueDeliveries(queue.name, Date.now(), 10)).map((d) => d.location)).toEqual(
      [1, 2, 3].map((uid) => imapLocation({ folder: FOLDER, uidValidity, uid })),
    );
    // \Seen was owed with each message and taken in the same sync.
    expect(await first.pendingActions(FOLDER)).toEqual([]);
    const again = sink();
    await source.sync(again);
    expect([again.fetched, again.spooled]).toEqual([0, 0]);

    // Without a watch there is nobody to ask cheaply.
    expect(await source.probe(first)).toBeUndefined();
    let newMail = 0;
    const watch = source.watch({ newMail: () => newMail++, sessionOpened: () => undefined }, first);
    watch.start();
    try {
      await until("the IDLE session to answer: nothing new", async () => (await source.probe(first)) === true);
      await deliver(1, "port-more");
      // Mail is seen once the session idles again: imapflow resumes IDLE a second after a STATUS.
      await until("the IDLE notification", async () => newMail > 0);
      expect(await source.probe(first)).toBe(false);
      const more = sink();
      await source.sync(more);
      expect(more.spooled).toBe(1);
      expect(await source.probe(first)).toBe(true);
    } finally {
      await watch.stop();
    }
    expect(await source.probe(first)).toBeUndefined();
  });

  it("restarts the folder at a new UIDVALIDITY and drops the actions owed under the old one", async () => {
    const logger = fx.logger.child({ queue: queue.name });
    const source = new ImapSource(queue, new ImapMailbox(queue, fx.provider(queue), logger), logger);
    const events = new DaemonEvents();
    const before = parseImapCursor(await spool.cursor(queue.name, "imap", FOLDER))!;
    // An action owed under the old UIDVALIDITY, as a crash between spooling and acting leaves it.
    const owed = imapLocation({ folder: FOLDER, uidValidity: before.uidValidity, uid: 99 });
    const raw = Buffer.from("Subject: owed\r\n\r\nowed\r\n");
    await spool.accept(
      { name: queue.name, address: queue.address },
      { handlers: ["directory"], serverAction: { action: "seen" } },
      { location: owed, size: raw.length, raw },
    );

    await fx.bed.dovecot.deleteFolder(QUEUE.address, FOLDER);
    await fx.bed.dovecot.createFolder(QUEUE.address, FOLDER);
    await deliver(1, "port-renewed");
    const sink = new QueueSpoolSink(queue, source.kind, spool, events);
    await source.sync(sink);

    const after = parseImapCursor(await spool.cursor(queue.name, "imap", FOLDER))!;
    expect(after.uidValidity).not.toBe(before.uidValidity);
    expect(after.lastUid).toBe(1);
    expect(sink.spooled).toBe(1);
    expect(await spool.pendingServerActions(queue.name, "imap", FOLDER)).toEqual([]);
  });
});

describe("IMAP server-side actions the server refuses", () => {
  it("keeps a move owed while the server refuses it (no such folder), keeps fetching, and moves once the folder exists", async () => {
    const { address, moving, source, sink } = await movingQueue("refuse", 3, { withoutTarget: true });

    // "Handled" does not exist: imapflow answers the refused MOVE with false, not an error.
    const first = sink();
    await source.sync(first);
    expect(first.spooled).toBe(3);
    expect(await spool.pendingServerActions(moving.name, "imap", "INBOX")).toHaveLength(3);
    expect(await fx.bed.dovecot.countMessages(address)).toBe(3);
    expect(fx.logLines.some((line) => line.includes('refused to move spooled messages to \\"Handled\\"'))).toBe(true);

    // New mail still flows while the move is refused.
    for (const message of sampleMessages(1, { seed: "refused-move-2", to: address })) await fx.bed.dovecot.deliver(address, message.raw);
    const second = sink();
    await source.sync(second);
    expect(second.spooled).toBe(1);
    expect(await spool.pendingServerActions(moving.name, "imap", "INBOX")).toHaveLength(4);

    await fx.bed.dovecot.createFolder(address, "Handled");
    await source.sync(sink());
    expect(await spool.pendingServerActions(moving.name, "imap", "INBOX")).toEqual([]);
    expect(await fx.bed.dovecot.countMessages(address)).toBe(0);
    expect(await fx.bed.dovecot.countMessages(address, "Handled")).toBe(4);
  });

  it("keeps the actions owed when the connection drops before they are taken (imapflow's 'nothing to do' is no answer)", async () => {
    const { address, moving, source, events, sink } = await movingQueue("dropped", 2);

    // The server drops the session just as the spooled messages' moves are read from the outbox.
    class DroppingSink extends QueueSpoolSink {
      private dropped = false;
      override async pendingActions(folder: string) {
        const owed = await super.pendingActions(folder);
        if (owed.length > 0 && !this.dropped) {
          this.dropped = true;
          await fx.bed.dovecot.kick(address);
          await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
        return owed;
      }
    }
    await expect(source.sync(new DroppingSink(moving, source.kind, spool, events))).rejects.toMatchObject({ code: "IMAP_UNAVAILABLE", retryable: true });
    expect(await spool.pendingServerActions(moving.name, "imap", "INBOX")).toHaveLength(2);
    expect(await fx.bed.dovecot.countMessages(address)).toBe(2);

    await source.sync(sink());
    expect(await spool.pendingServerActions(moving.name, "imap", "INBOX")).toEqual([]);
    expect(await fx.bed.dovecot.countMessages(address)).toBe(0);
    expect(await fx.bed.dovecot.countMessages(address, "Handled")).toBe(2);
  });

  it("takes a move again when another session moved part of the set meanwhile (Dovecot answers OK and moves nothing)", async () => {
    const { address, moving, mailbox, source, events } = await movingQueue("shared-move", 4);

    // Another session (the replica that held the queue before) moves two of the four just as
    // this sync reads the moves it owes: this session's view still shows all four.
    class SharedSink extends QueueSpoolSink {
      private raced = false;
      override async pendingActions(folder: string) {
        const owed = await super.pendingActions(folder);
        if (owed.length === 4 && !this.raced) {
          this.raced = true;
          const { client: other } = await mailbox.connect();
          await other.mailboxOpen("INBOX");
          await other.messageMove("1,2", "Handled", { uid: true });
          await other.logout();
        }
        return owed;
      }
    }
    await source.sync(new SharedSink(moving, source.kind, spool, events));
    expect(await spool.pendingServerActions(moving.name, "imap", "INBOX")).toEqual([]);
    expect(await fx.bed.dovecot.countMessages(address)).toBe(0);
    expect(await fx.bed.dovecot.countMessages(address, "Handled")).toBe(4);
  });
});

describe("IMAP sessions kept between syncs while IDLE runs", () => {
  /** A queue of its own; `sessions` lists the sessions its syncs opened (not the IDLE session's); `watching` starts its IDLE watch. */
  async function burstQueue(name: string, imapPort?: number) {
    const address = `${name}@example.test`;
    fx.bed.identity.addUser({ username: address, password: QUEUE.password });
    const [configured] = fx.queues([{ name, address, password: QUEUE.password, options: { afterSpool: "seen", idle: true } }]) as [QueueConfig];
    const burst = imapPort === undefined ? configured : { ...configured, imap: { ...configured.imap, port: imapPort } };
    const logger = fx.logger.child({ queue: burst.name });
    const mailbox = new ImapMailbox(burst, fx.provider(burst), logger);
    const sessions: Array<Awaited<ReturnType<ImapMailbox["connect"]>>["client"]> = [];
    const connect = mailbox.connect.bind(mailbox);
    mailbox.connect = async (options) => {
      const session = await connect(options);
      if (!options?.idle) sessions.push(session.client);
      return session;
    };
    const source = new ImapSource(burst, mailbox, logger);
    const events = new DaemonEvents();
    const sink = () => new QueueSpoolSink(burst, source.kind, spool, events);
    const arrive = async (count: number, seed: string) => {
      for (const message of sampleMessages(count, { seed, to: address })) await fx.bed.dovecot.deliver(address, message.raw);
    };
    const watching = () => {
      const watch = source.watch({ newMail: () => undefined, sessionOpened: () => undefined }, sink());
      watch.start();
      return watch;
    };
    return { address, source, sink, sessions, arrive, watching };
  }

  it("syncs a burst of arrivals on one session while the watch runs, and logs it out when the watch stops", async () => {
    const { source, sink, sessions, arrive, watching } = await burstQueue("burst");
    const watch = watching();
    try {
      for (const round of [1, 2, 3]) {
        await arrive(1, `burst-${round}`);
        const synced = sink();
        await source.sync(synced);
        expect(synced.spooled).toBe(1);
      }
      expect(sessions).toHaveLength(1);
      expect(sessions[0]!.usable).toBe(true);

      // A sync that finds nothing uses the kept session and does not keep it: no burst is under way.
      await source.sync(sink());
      expect(sessions).toHaveLength(1);
      expect(sessions[0]!.usable).toBe(false);
      await arrive(1, "burst-4");
      await source.sync(sink());
      expect(sessions).toHaveLength(2);
      expect(sessions[1]!.usable).toBe(true);
    } finally {
      await watch.stop();
    }
    expect(sessions[1]!.usable).toBe(false);

    // Without a watch every sync has a session of its own, logged out at its end.
    await arrive(1, "burst-5");
    const alone = sink();
    await source.sync(alone);
    expect(alone.spooled).toBe(1);
    expect(sessions).toHaveLength(3);
    expect(sessions[2]!.usable).toBe(false);
  });

  it("syncs on a new session, with no failure, when the server ended the kept one", async () => {
    const { address, source, sink, sessions, arrive, watching } = await burstQueue("kicked");
    const watch = watching();
    try {
      await arrive(1, "kicked-1");
      await source.sync(sink());
      expect(sessions[0]!.usable).toBe(true);
      await fx.bed.dovecot.kick(address);
      await until("the kept session to see its end", async () => !sessions[0]!.usable);
      await arrive(2, "kicked-2");
      const after = sink();
      await source.sync(after);
      expect(after.spooled).toBe(2);
      expect(sessions).toHaveLength(2);
    } finally {
      await watch.stop();
    }
  });

  it("syncs again on a new session when the kept one ends in the middle of a sync", async () => {
    const { address, source, sink, sessions, arrive, watching } = await burstQueue("dropped-kept");
    const watch = watching();
    try {
      await arrive(1, "dropped-kept-1");
      await source.sync(sink());
      await arrive(1, "dropped-kept-2");
      // The server drops the kept session after it opened the folder, as this sync reads its cursor.
      let kicked = false;
      const dropping = sink();
      const cursor = dropping.cursor.bind(dropping);
      dropping.cursor = async (folder) => {
        if (!kicked) {
          kicked = true;
          await fx.bed.dovecot.kick(address);
          await until("the kept session to see its end", async () => !sessions[0]!.usable);
        }
        return cursor(folder);
      };
      await source.sync(dropping);
      expect(kicked).toBe(true);
      expect(dropping.spooled).toBe(1);
      expect(sessions).toHaveLength(2);
    } finally {
      await watch.stop();
    }
  });

  it("syncs on a new session, within seconds, when the kept one went silent (a middlebox dropped it without a word)", async () => {
    const proxy = await startFaultProxy(fx.bed.dovecot.port);
    try {
      const { source, sink, sessions, arrive, watching } = await burstQueue("silenced", proxy.port);
      const watch = watching();
      try {
        await arrive(1, "silenced-1");
        await source.sync(sink());
        expect(sessions[0]!.usable).toBe(true);
        proxy.silenceAll();
        await arrive(1, "silenced-2");
        const started = Date.now();
        const after = sink();
        await source.sync(after);
        expect(after.spooled).toBe(1);
        expect(sessions).toHaveLength(2);
        // The kept session's 5 s to answer, not imapflow's 5-minute socket timeout.
        expect(Date.now() - started).toBeLessThan(60_000);
      } finally {
        await watch.stop();
      }
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

describe("uidSet", () => {
  it("writes runs of consecutive UIDs as ranges and names exactly the UIDs given", () => {
    expect(uidSet([9, 3, 4, 5, 7, 4])).toBe("3:5,7,9");
    expect(uidSet([1])).toBe("1");
    expect(uidSet([])).toBe("");
  });
});
