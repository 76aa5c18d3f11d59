/**
 * The mail-source port: where a queue's mail comes from. The poller schedules, the source
 * fetches: `sync` brings everything new into the spool through a SpoolSink and takes the
 * server-side actions owed; `watch` (optional) signals new mail as it arrives; `probe`
 * (optional) tells cheaply whether a sync would find anything. IMAP is the first adapter
 * (src/imap/imap-source.ts); the composition root (src/app.ts) picks one per queue by its
 * `source` key, as it picks handlers.
 */
import type { SourceKind } from "./message-location.js";
import type { SpoolSink, SpoolView } from "./spool-sink.js";

export interface MailSource {
  readonly kind: SourceKind;
  /**
   * One sync: every message above the folder's cursor durably into the spool, in order, and
   * the owed server-side actions taken. Rejects with a MailfetchdError (its code says what).
   */
  sync(sink: SpoolSink): Promise<void>;
  /**
   * True when the source answered cheaply and the spool has everything it shows, with no action
   * owed; false when a sync is needed; undefined when it cannot tell without a sync of its own
   * (no push session up, no answer in time). Never rejects.
   */
  probe?(spool: SpoolView): Promise<boolean | undefined>;
  /** Push: signals new mail while the returned watch runs (IMAP: an IDLE session). */
  watch?(signals: WatchSignals, spool: SpoolView): SourceWatch;
}

export interface WatchSignals {
  /** The source says mail arrived: run a sync. */
  newMail(): void;
  /**
   * A new push session is up; `upToDate` tells whether the spool had everything it showed then
   * (false: mail may have arrived while none was held).
   */
  sessionOpened(upToDate: boolean): void;
}

export interface SourceWatch {
  start(): void;
  stop(): Promise<void>;
}
