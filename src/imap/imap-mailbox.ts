/**
 * One queue mailbox over IMAP with SASL XOAUTH2: connects, opens the folder, settles
 * server-side actions still owed, and streams every message above the cursor, by UID, to a
 * spool sink (src/source/spool-sink.ts); then takes the server-side action for what was
 * spooled. The queue's MailSource adapter (imap-source.ts) runs it.
 *
 * Sync is by UID, UIDVALIDITY and a stored cursor only: Exchange offers no CONDSTORE/QRESYNC,
 * and sequence numbers or date windows duplicate or lose mail. The target is awaited for each
 * message before the next is taken, so the cursor advances in order. Locations and cursors
 * reach the sink in the source-neutral encoding of imap-location.ts. No other IMAP command
 * may run inside a FETCH stream (imapflow#159): sizes are read first, actions taken after.
 */
import { ImapFlow } from "imapflow";
import type { Readable } from "node:stream";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import type { QueueConfig } from "../config/schema.js";
import type { FetchedMessage, Logger, StreamedMessage, TokenProvider } from "../interfaces.js";
import type { OwedAction } from "../source/message-location.js";
import type { SpoolSink } from "../source/spool-sink.js";
import { planFetchRuns } from "./fetch-plan.js";
import { imapCursorPosition, imapLocation, parseImapCursor, parseImapItem, type ImapFolderState } from "./imap-location.js";
import { classifyImapError } from "./imap-errors.js";
import { answersWithin, endSession } from "./end-session.js";

/** UIDs per FETCH command: bounds the command line and the work redone after a drop. */
const FETCH_BATCH = 100;
/**
 * A message above this is downloaded in chunks straight into the spool rather than held whole
 * (imapflow buffers each FETCHed message); below it, one FETCH for many is much faster.
 */
const STREAM_ABOVE_BYTES = 4 * 1024 * 1024;
/** Bytes of small messages asked in one FETCH: imapflow may buffer all of them at once. */
const BULK_FETCH_BYTES = 8 * 1024 * 1024;
/** Messages handed to the spool and not yet durable, at most (they are in memory already). */
const ACCEPTS_IN_FLIGHT = 16;
/** Bytes per chunk of a streamed download: one FETCH round trip each. */
const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

/** What the mailbox needs of the daemon's fetch budget (src/queue/memory-budget.ts MemoryBudget). */
export interface FetchBudget {
  acquire(queue: string, bytes: number, signal: AbortSignal): Promise<() => void>;
}

/** Fetching is never abandoned while waiting for a share: the connection's own end stops it. */
const NEVER_ABORTED = new AbortController().signal;

/**
 * While the queue holds IDLE, the session of a sync that fetched mail stays open this long for
 * the next sync: new mail comes in bursts, each arrival is a sync, and a new session (TLS,
 * sign-in, LIST) costs more than fetching a small message (issue 17: IDLE latency). Poll-only
 * queues sync minutes apart and keep nothing.
 */
const KEEP_SESSION_MS = 30_000;
/** A kept session is not used this close to its token's expiry (Exchange ends the session then): a fresh one is. */
const KEPT_TOKEN_MARGIN_MS = 5 * 60_000;
/**
 * A kept session must answer a NOOP this fast to be used. A connection a middlebox dropped
 * without a word looks open; without this check the sync would wait for the 5-minute socket
 * timeout, where a new session takes a second.
 */
const KEPT_ANSWER_TIMEOUT_MS = 5_000;

interface Session {
  readonly client: ImapFlow;
  readonly tokenExpiresOn: Date;
}

export interface SyncResult {
  readonly state: ImapFolderState;
  readonly fetched: number;
  readonly actionsTaken: number;
}

export class ImapMailbox {
  constructor(
    private readonly queue: QueueConfig,
    private readonly tokens: TokenProvider,
    private readonly logger: Logger,
    /**
     * Shared by every queue's fetching (src/queue/memory-budget.ts): a FETCH of many messages
     * takes its bytes for as long as they are in memory. Unbounded when absent (tests).
     */
    private readonly fetchBudget?: FetchBudget,
  ) {}

  /** Kept sessions between syncs: on while the queue's IDLE watch runs (imap-source.ts). */
  private keepSessions = false;
  private kept?: Session & { readonly timer: NodeJS.Timeout };

  async sync(target: SpoolSink): Promise<SyncResult> {
    const kept = await this.answeringKeptSession();
    if (kept) {
      try {
        return await this.syncWith(kept, target);
      } catch (error) {
        // The server ended the kept session (idle timeout, restart): not a failure of the
        // queue, a fresh session does the sync. Anything else is the sync's own failure.
        if (kept.client.usable) throw error;
        this.logger.debug({ err: error }, "kept IMAP session was closed by the server; syncing on a new one");
      }
    }
    return this.syncWith(await this.connect(), target);
  }

  /**
   * Keeps each sync's session open for the next one (KEEP_SESSION_MS), or stops doing so and
   * logs out the one kept. Never rejects.
   */
  async keepSessionsBetweenSyncs(keep: boolean): Promise<void> {
    this.keepSessions = keep;
    if (!keep) await this.endKeptSession();
  }

  private async syncWith(session: Session, target: SpoolSink): Promise<SyncResult> {
    const { client } = session;
    let keep = false;
    try {
      const result = await this.syncOn(client, target);
      // Only after a sync that went through (after a failure the next one starts afresh) and
      // found mail: a sync that found none (the safety net, a catch-up) is no burst, and
      // keeping its session would double the connections of 1,000 quiet queues.
      keep = result.fetched > 0;
      return result;
    } catch (error) {
      throw classifyImapError(error, this.queue.name, { folder: this.queue.folder, host: this.queue.imap.host });
    } finally {
      if (keep && this.keepSessions && client.usable) this.keepSession(session);
      else await endSession(client);
    }
  }

  private keepSession(session: Session): void {
    const timer = setTimeout(() => void this.endKeptSession(), KEEP_SESSION_MS);
    timer.unref();
    this.kept = { ...session, timer };
  }

  /** Logs out the kept session, if any. Never rejects. */
  private async endKeptSession(): Promise<void> {
    const kept = this.takeKeptSession();
    if (kept) await endSession(kept.client);
  }

  /** The kept session when it answers a NOOP in time; else none (and it is closed). */
  private async answeringKeptSession(): Promise<Session | undefined> {
    const kept = this.takeKeptSession();
    if (kept === undefined) return undefined;
    if ((await answersWithin(kept.client.noop(), KEPT_ANSWER_TIMEOUT_MS)) && kept.client.usable) return kept;
    this.logger.debug("kept IMAP session did not answer; syncing on a new one");
    kept.client.close();
    return undefined;
  }

  /** The kept session, now the caller's; none when it closed or its token is near expiry (then logged out). */
  private takeKeptSession(): Session | undefined {
    const kept = this.kept;
    if (kept === undefined) return undefined;
    this.kept = undefined;
    clearTimeout(kept.timer);
    if (kept.client.usable && kept.tokenExpiresOn.getTime() - Date.now() > KEPT_TOKEN_MARGIN_MS) return kept;
    void endSession(kept.client);
    return undefined;
  }

  private async syncOn(client: ImapFlow, target: SpoolSink): Promise<SyncResult> {
    const folder = this.queue.folder;
    const readOnly = this.queue.afterSpool.action === "keep";
    let mailbox;
    try {
      // EXAMINE when nothing is ever changed on the server: not even \Seen can be set by accident.
      mailbox = await client.mailboxOpen(folder, { readOnly });
    } catch (error) {
      throw classifyImapError(error, this.queue.name, { folder, host: this.queue.imap.host });
    }
    const state: ImapFolderState = { folder, uidValidity: String(mailbox.uidValidity), uidNext: mailbox.uidNext };
    const cursor = parseImapCursor(await target.cursor(folder));
    let lastUid = cursor?.lastUid ?? 0;
    if (!cursor || cursor.uidValidity !== state.uidValidity) {
      if (cursor) {
        this.logger.warn(
          { folder, previous: cursor.uidValidity, current: state.uidValidity },
          "UIDVALIDITY changed: re-reading the folder; messages already spooled are recognised by their content (same stable id) and not delivered again",
        );
      }
      lastUid = 0;
      // The folder's UIDVALIDITY is new (or first seen): it is read again from UID 1.
      await target.restart(folder, imapCursorPosition({ uidValidity: state.uidValidity, lastUid: 0 }));
      const stale = (await target.pendingActions(folder)).filter((owed) => parseImapItem(owed.item)?.uidValidity !== state.uidValidity);
      // Actions owed under an old UIDVALIDITY cannot be addressed any more: the UIDs mean nothing now.
      const dropped =
        stale.length > 0
          ? await target.dropActions(
              folder,
              stale.map((owed) => owed.item),
            )
          : 0;
      if (dropped > 0) this.logger.warn({ dropped }, "server-side actions owed under the old UIDVALIDITY cannot be taken any more");
    }

    // Actions the server refused in this sync are not tried again until the next one.
    const refused = new Set<string>();
    let actionsTaken = readOnly ? 0 : await this.takeActions(client, target, state.uidValidity, refused);
    let fetched = 0;
    if (mailbox.exists > 0 && (state.uidNext === undefined || state.uidNext > lastUid + 1)) {
      const found = await client.search({ uid: `${lastUid + 1}:*` }, { uid: true });
      // imapflow answers nothing, rather than throwing, when the connection ended before the
      // search: that is no answer, not an empty folder (the sync would report success having fetched nothing).
      if (!Array.isArray(found)) {
        this.requireSelected(client);
        throw new Error("the IMAP server gave no answer to UID SEARCH");
      }
      // "n:*" always matches the highest UID, even when it is below n.
      const uids = found.filter((uid) => uid > lastUid).sort((a, b) => a - b);
      for (let start = 0; start < uids.length; start += FETCH_BATCH) {
        fetched += await this.fetchBatch(client, target, state, uids.slice(start, start + FETCH_BATCH));
        if (!readOnly) actionsTaken += await this.takeActions(client, target, state.uidValidity, refused);
      }
    }
    return { state, fetched, actionsTaken };
  }

  private async fetchBatch(client: ImapFlow, target: SpoolSink, state: ImapFolderState, batch: number[]): Promise<number> {
    const limit = this.queue.maxMessageSize;
    const sizes = new Map<number, number>();
    const internalDates = new Map<number, Date | string | undefined>();
    for await (const message of client.fetch(batch.join(","), { uid: true, size: true, internalDate: true }, { uid: true })) {
      sizes.set(message.uid, message.size ?? 0);
      internalDates.set(message.uid, message.internalDate);
    }

    // Too large: only the header block is fetched, so the dead letter says what it was.
    const tooLarge: Array<FetchedMessage & { readonly uid: number }> = [];
    const tooLargeUids = batch.filter((uid) => (sizes.get(uid) ?? 0) > limit);
    if (tooLargeUids.length > 0) {
      for await (const message of client.fetch(tooLargeUids.join(","), { uid: true, size: true, internalDate: true, headers: true }, { uid: true })) {
        tooLarge.push({
          uid: message.uid,
          ...this.located(state, message.uid, message.size ?? 0, message.internalDate),
          raw: message.headers ?? Buffer.alloc(0),
          tooLarge: { limit },
        });
      }
      tooLarge.sort((a, b) => a.uid - b.uid);
    }

    let fetched = 0;
    const acceptTooLargeBelow = async (uid: number) => {
      while (tooLarge.length > 0 && tooLarge[0]!.uid < uid) {
        const { uid: tooLargeUid, ...message } = tooLarge.shift()!;
        this.logger.error({ uid: tooLargeUid, size: message.size, limit }, "message above maxMessageSize: not downloaded, parked as dead letter");
        await target.accept(message);
        fetched++;
      }
    };
    const wanted = batch.filter((uid) => sizes.has(uid) && (sizes.get(uid) ?? 0) <= limit);
    const runs = planFetchRuns(wanted, (uid) => sizes.get(uid) ?? 0, { streamAbove: STREAM_ABOVE_BYTES, bulkBytes: BULK_FETCH_BYTES });
    for (const run of runs) {
      if (run.kind === "stream") {
        await acceptTooLargeBelow(run.uid);
        // A streamed message holds a chunk or two at a time, whatever its size.
        const releaseStream = await this.shareOfFetchBudget(2 * DOWNLOAD_CHUNK_BYTES);
        try {
          const message = await this.download(client, state, run.uid, sizes.get(run.uid) ?? 0, internalDates.get(run.uid));
          if (!message) continue; // expunged since the sizes were read
          try {
            await target.accept(message);
          } finally {
            // A download the target did not read to its end must end here, not wait for it.
            message.content.destroy();
          }
        } finally {
          releaseStream();
        }
        fetched++;
        continue;
      }
      // imapflow may buffer the whole run, and its messages stay in memory until durable.
      const release = await this.shareOfFetchBudget(run.uids.reduce((sum, uid) => sum + (sizes.get(uid) ?? 0), 0));
      // The next messages are handed over while earlier ones are still being written: the
      // spool writes them concurrently and commits them in one transaction, in UID order.
      const accepting: Array<Promise<void>> = [];
      try {
        for await (const message of client.fetch(run.uids.join(","), { uid: true, source: true, size: true, internalDate: true }, { uid: true })) {
          if (!message.source) continue;
          if (tooLarge.length > 0 && tooLarge[0]!.uid < message.uid) {
            await settleAll(accepting.splice(0));
            await acceptTooLargeBelow(message.uid);
          }
          const accepted = target.accept({
            ...this.located(state, message.uid, message.size ?? message.source.length, message.internalDate),
            raw: message.source,
          });
          // Its failure is read below (shift, settleAll); until then it must not count as
          // unhandled, which would end the process (a read-only spool did, between two messages).
          accepted.catch(() => undefined);
          accepting.push(accepted);
          fetched++;
          if (accepting.length >= ACCEPTS_IN_FLIGHT) await accepting.shift();
        }
      } finally {
        try {
          // Every accept handed over is settled before anything else happens on this connection.
          await settleAll(accepting);
        } finally {
          release();
        }
      }
    }
    await acceptTooLargeBelow(Number.MAX_SAFE_INTEGER);
    return fetched;
  }

  private shareOfFetchBudget(bytes: number): Promise<() => void> {
    return this.fetchBudget ? this.fetchBudget.acquire(this.queue.name, bytes, NEVER_ABORTED) : Promise.resolve(() => undefined);
  }

  /** A big message as a stream of chunks (one FETCH of BODY[]<offset.length> each), or undefined when it is gone. */
  private async download(
    client: ImapFlow,
    state: ImapFolderState,
    uid: number,
    size: number,
    internalDate: Date | string | undefined,
  ): Promise<(StreamedMessage & { content: Readable }) | undefined> {
    const { content } = await client.download(String(uid), undefined, { uid: true, chunkSize: DOWNLOAD_CHUNK_BYTES });
    if (!content) return undefined;
    this.logger.debug({ uid, size }, "big message: streaming it into the spool");
    return { ...this.located(state, uid, size, internalDate), content };
  }

  /** Where the message is, in the neutral encoding, and the folder's cursor once it is durable. */
  private located(state: ImapFolderState, uid: number, size: number, internalDate: Date | string | undefined) {
    return {
      location: imapLocation({ folder: state.folder, uidValidity: state.uidValidity, uid }),
      cursor: imapCursorPosition({ uidValidity: state.uidValidity, lastUid: uid }),
      size,
      internalDate: internalDate instanceof Date ? internalDate : internalDate ? new Date(internalDate) : undefined,
    };
  }

  /** Takes the server-side actions owed for spooled messages; each kind in one command. */
  private async takeActions(client: ImapFlow, target: SpoolSink, uidValidity: string, refused: Set<string>): Promise<number> {
    const folder = this.queue.folder;
    // Only this UIDVALIDITY's: an action owed under another one is dropped when the change is seen.
    const pending = (await target.pendingActions(folder)).flatMap((owed) => {
      const location = parseImapItem(owed.item);
      return location?.uidValidity === uidValidity && !refused.has(owed.item) ? [{ ...owed, uid: location.uid }] : [];
    });
    if (pending.length === 0) return 0;
    const groups = new Map<string, Array<OwedAction & { readonly uid: number }>>();
    for (const action of pending) {
      const key = `${action.action}\u0000${action.target ?? ""}`;
      groups.set(key, [...(groups.get(key) ?? []), action]);
    }
    let taken = 0;
    for (const actions of groups.values()) {
      const { action, target: destination } = actions[0]!;
      let owed = actions;
      // A second try covers what this session could not address the first time: UIDs that
      // arrived after it opened the folder, or a set of which another session (a replica that
      // held the queue before) had moved a part (Dovecot then answers OK and moves nothing).
      for (let attempt = 1; attempt <= 2 && owed.length > 0; attempt++) {
        await this.applyAction(
          client,
          action,
          owed.map((a) => a.uid),
          destination,
        );
        const still = await this.notYetTaken(
          client,
          action,
          owed.map((a) => a.uid),
        );
        const done = owed.filter((a) => !still.has(a.uid));
        if (done.length > 0)
          await target.actionsDone(
            folder,
            done.map((a) => a.item),
          );
        taken += done.length;
        owed = owed.filter((a) => still.has(a.uid));
      }
      if (owed.length > 0) {
        // Left owed (tried again at every sync) rather than failing the sync: mail keeps flowing.
        for (const a of owed) refused.add(a.item);
        this.logger.error(
          { action, folder, target: destination, count: owed.length },
          action === "move"
            ? `the IMAP server refused to move spooled messages to "${destination}": they stay in ${folder} and the move is tried again at every sync. Check that the folder "${destination}" exists and the mailbox may write to it (afterSpool.to); nothing is lost meanwhile`
            : `the IMAP server refused to mark spooled messages ${action === "seen" ? "\\Seen" : "deleted"} in ${folder}: tried again at every sync. Check that the mailbox may change messages in this folder (Full Access); nothing is lost meanwhile`,
        );
      }
      this.logger.debug({ action, count: actions.length - owed.length }, "server-side action taken");
    }
    return taken;
  }

  /**
   * One action on a set of UIDs. The server's answer is not taken as proof either way (an OK
   * can mean nothing was done: UIDs this session does not know, or a set another session
   * changed), so notYetTaken looks. imapflow answers "nothing to do" (undefined, or false for
   * flags) when the connection no longer has the folder selected: that throws, and the actions
   * stay owed for the next sync.
   */
  private async applyAction(client: ImapFlow, action: OwedAction["action"], uids: readonly number[], destination: string | undefined): Promise<void> {
    const range = uidSet(uids);
    this.requireSelected(client);
    let answer: unknown;
    if (action === "seen") answer = await client.messageFlagsAdd(range, ["\\Seen"], { uid: true });
    // MOVE where offered, else COPY + \Deleted + (UID) EXPUNGE: imapflow chooses.
    else if (action === "move") answer = await client.messageMove(range, destination!, { uid: true });
    // UID EXPUNGE where UIDPLUS is offered, so only these messages are expunged.
    else answer = await client.messageDelete(range, { uid: true });
    if (answer === undefined || answer === false) this.requireSelected(client);
  }

  /**
   * Of these UIDs, the ones the action is not in effect for: still in the folder (move, delete)
   * or still unseen (seen). A NOOP first brings this session's view up to date with what other
   * sessions did. When the server cannot answer, all of them (nothing is taken for done unseen).
   */
  private async notYetTaken(client: ImapFlow, action: OwedAction["action"], uids: readonly number[]): Promise<Set<number>> {
    await client.noop();
    const query = action === "seen" ? { uid: uidSet(uids), seen: false } : { uid: uidSet(uids) };
    const found = await client.search(query, { uid: true });
    if (Array.isArray(found)) return new Set(found);
    this.requireSelected(client);
    return new Set(uids);
  }

  /** Throws a retryable error when the connection can no longer act on the queue's folder. */
  private requireSelected(client: ImapFlow): void {
    if (client.usable && client.mailbox) return;
    throw Object.assign(new Error("the IMAP connection closed in the middle of the sync"), { code: "NoConnection" });
  }

  /** A logged-in connection, and when its token (so the session, on Exchange) expires. */
  async connect(options: { idle?: boolean } = {}): Promise<{ client: ImapFlow; tokenExpiresOn: Date }> {
    let token = await this.tokens.getAccessToken();
    for (let attempt = 1; ; attempt++) {
      const client = this.createClient(token.token, options.idle ?? false);
      client.on("error", (error: Error) => this.logger.debug({ err: error }, "IMAP connection error"));
      try {
        await client.connect();
        return { client, tokenExpiresOn: token.expiresOn };
      } catch (raw) {
        client.close();
        const error = classifyImapError(raw, this.queue.name, { folder: this.queue.folder, host: this.queue.imap.host });
        // A token can be revoked or expire server-side before its stated expiry: one fresh token, once.
        if (error.code === "IMAP_AUTH_REJECTED" && attempt === 1) {
          this.logger.info("IMAP rejected the access token; trying once with a freshly refreshed one");
          token = await this.tokens.getAccessToken({ forceRefresh: true });
          continue;
        }
        throw error;
      }
    }
  }

  private createClient(accessToken: string, idle: boolean): ImapFlow {
    const { host, port, tls, ca } = this.queue.imap;
    return new ImapFlow({
      host,
      port,
      secure: tls,
      // An extra CA is added to the public roots, not put in their place.
      tls: ca ? { secureContext: secureContextWith(ca) } : undefined,
      // XOAUTH2 `user=` is the queue mailbox: for a shared mailbox that differs from the sign-in user.
      auth: { user: this.queue.address, accessToken },
      logger: imapLogger(this.logger),
      // Only the IDLE watcher's session idles; fetch sessions log out when done.
      disableAutoIdle: !idle,
      autoIdleDelay: 1_000,
      // Re-issuing IDLE now and then proves the connection alive; a silent dead one times out.
      maxIdleTime: 4 * 60_000,
      connectionTimeout: 30_000,
      greetingTimeout: 16_000,
      socketTimeout: 5 * 60_000,
    });
  }
}

/** A UID set in IMAP's short form ("3:7,9"): runs of consecutive UIDs as ranges, exactly these UIDs. */
export function uidSet(uids: readonly number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** Waits for every promise (none is left unawaited), then throws the first failure. */
async function settleAll(promises: ReadonlyArray<Promise<void>>): Promise<void> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
  if (failed) throw failed.reason;
}

/**
 * One TLS context per extra CA, built once: building it from the ~140 public roots plus the
 * extra CA costs ~90 ms of blocked event loop, which per connection (every poll of every
 * queue) was the daemon's largest CPU cost with imap.caFile set.
 */
const secureContexts = new Map<string, SecureContext>();
function secureContextWith(ca: string): SecureContext {
  let context = secureContexts.get(ca);
  if (!context) {
    context = createSecureContext({ ca: [...rootCertificates, ca] });
    secureContexts.set(ca, context);
  }
  return context;
}

/** imapflow's info lines (connected, authenticated) are per-connection noise: debug for us. */
function imapLogger(logger: Logger) {
  const child = logger.child({ component: "imap" });
  return {
    debug: (entry: object) => child.debug(entry),
    info: (entry: object) => child.debug(entry),
    warn: (entry: object) => child.warn(entry),
    error: (entry: object) => child.error(entry),
  };
}
