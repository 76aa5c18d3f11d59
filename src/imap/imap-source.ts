/**
 * IMAP as a MailSource (src/source/mail-source.ts): a sync is one ImapMailbox session (kept for
 * the next sync while push runs), push is an IDLE session (IdleWatcher), and the probe is one
 * STATUS on that session compared with the spool's cursor. The UID arithmetic lives here and in
 * imap-mailbox.ts, nowhere else.
 */
import type { QueueConfig } from "../config/schema.js";
import type { MailSource, SourceWatch, WatchSignals } from "../source/mail-source.js";
import type { SpoolSink, SpoolView } from "../source/spool-sink.js";
import type { Logger } from "../interfaces.js";
import { IdleWatcher, type ProbedFolder } from "./idle-watcher.js";
import { parseImapCursor } from "./imap-location.js";
import type { ImapMailbox } from "./imap-mailbox.js";

export class ImapSource implements MailSource {
  readonly kind = "imap" as const;
  /** The IDLE session the probe asks; the latest watch started. */
  private watcher?: IdleWatcher;

  constructor(
    private readonly queue: QueueConfig,
    private readonly mailbox: ImapMailbox,
    private readonly logger: Logger,
  ) {}

  async sync(sink: SpoolSink): Promise<void> {
    await this.mailbox.sync(sink);
  }

  /** Asks the IDLE session (one STATUS); undefined without one. */
  async probe(spool: SpoolView): Promise<boolean | undefined> {
    const seen = await this.watcher?.probe();
    return seen === undefined ? undefined : this.spoolHasAll(seen, spool);
  }

  watch(signals: WatchSignals, spool: SpoolView): SourceWatch {
    const watcher = new IdleWatcher(
      this.queue,
      this.mailbox,
      () => signals.newMail(),
      this.logger,
      async (folder) => signals.sessionOpened(await this.spoolHasAll(folder, spool)),
    );
    this.watcher = watcher;
    return {
      start: () => {
        // New mail comes in bursts: while IDLE signals each arrival, a sync's session serves the next.
        void this.mailbox.keepSessionsBetweenSyncs(true);
        watcher.start();
      },
      stop: async () => {
        await watcher.stop();
        if (this.watcher !== watcher) return; // a newer watch runs on
        this.watcher = undefined;
        await this.mailbox.keepSessionsBetweenSyncs(false);
      },
    };
  }

  /**
   * True when the spool has everything the folder shows: same UIDVALIDITY as the cursor, no UID
   * above it (UIDNEXT - 1 <= lastUid), no server-side action owed. A cursor moved back
   * (`deadletters retry` of a too-large message) is below UIDNEXT - 1: false, so a full cycle.
   */
  private async spoolHasAll(seen: ProbedFolder, spool: SpoolView): Promise<boolean> {
    const { folder, afterSpool } = this.queue;
    try {
      const cursor = parseImapCursor(await spool.cursor(folder));
      if (!cursor || cursor.uidValidity !== seen.uidValidity || seen.uidNext - 1 > cursor.lastUid) return false;
      // A `keep` queue's folder is opened read-only: actions are never taken there, so none can be owed.
      return afterSpool.action === "keep" || (await spool.pendingActions(folder)).length === 0;
    } catch {
      return false; // the full cycle meets the same storage failure and reports it
    }
  }
}
