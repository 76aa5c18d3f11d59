/**
 * One queue mailbox over IMAP with SASL XOAUTH2: connects, opens the folder read-only, and
 * streams every message above the cursor, by UID, to a consumer that spools it.
 *
 * Sync is by UID, UIDVALIDITY and a stored cursor only: Exchange offers no CONDSTORE/QRESYNC,
 * and sequence numbers or date windows duplicate or lose mail. The consumer is awaited for
 * each message before the next is taken, so the cursor advances in order.
 */
import { ImapFlow } from "imapflow";
import { rootCertificates } from "node:tls";
import type { QueueConfig } from "../config/schema.js";
import type { Cursor, FetchedMessage, FolderState, Logger, TokenProvider } from "../interfaces.js";
import { classifyImapError } from "./imap-errors.js";

/** UIDs fetched per FETCH command: bounds the command line and the work lost on a drop. */
const FETCH_BATCH = 100;

export type MessageConsumer = (message: FetchedMessage) => Promise<void>;

export class ImapMailbox {
  constructor(
    private readonly queue: QueueConfig,
    private readonly tokens: TokenProvider,
    private readonly logger: Logger,
  ) {}

  /**
   * Fetches the messages above `cursor` (all of them when the folder's UIDVALIDITY is not the
   * cursor's) and gives each to `consume`. Returns the folder state seen.
   */
  async fetchNew(cursor: Cursor | undefined, consume: MessageConsumer, onUidValidityChange?: (state: FolderState) => void): Promise<FolderState> {
    const client = await this.connect();
    try {
      const folder = this.queue.folder;
      let mailbox;
      try {
        // Read-only (EXAMINE): this version never changes anything on the server.
        mailbox = await client.mailboxOpen(folder, { readOnly: true });
      } catch (error) {
        throw classifyImapError(error, this.queue.name, { folder, host: this.queue.imap.host });
      }
      const state: FolderState = { folder, uidValidity: String(mailbox.uidValidity), uidNext: mailbox.uidNext };
      let lastUid = cursor?.lastUid ?? 0;
      if (cursor && cursor.uidValidity !== state.uidValidity) {
        this.logger.warn({ folder, previous: cursor.uidValidity, current: state.uidValidity }, "UIDVALIDITY changed: re-reading the folder; messages already spooled are recognised");
        lastUid = 0;
        onUidValidityChange?.(state);
      } else if (!cursor) {
        onUidValidityChange?.(state);
      }
      if (mailbox.exists === 0 || (state.uidNext !== undefined && state.uidNext <= lastUid + 1)) return state;

      const found = await client.search({ uid: `${lastUid + 1}:*` }, { uid: true });
      // "n:*" always matches the highest UID, even when it is below n.
      const uids = (found || []).filter((uid) => uid > lastUid).sort((a, b) => a - b);
      for (let start = 0; start < uids.length; start += FETCH_BATCH) {
        const batch = uids.slice(start, start + FETCH_BATCH);
        // No other IMAP command may run inside this loop (imapflow#159): the consumer only writes locally.
        for await (const message of client.fetch(batch.join(","), { uid: true, source: true, size: true, internalDate: true }, { uid: true })) {
          if (!message.source) continue;
          await consume({
            folder,
            uidValidity: state.uidValidity,
            uid: message.uid,
            size: message.size ?? message.source.length,
            internalDate: message.internalDate instanceof Date ? message.internalDate : message.internalDate ? new Date(message.internalDate) : undefined,
            raw: message.source,
          });
        }
      }
      return state;
    } catch (error) {
      throw classifyImapError(error, this.queue.name, { folder: this.queue.folder, host: this.queue.imap.host });
    } finally {
      await client.logout().catch(() => client.close());
    }
  }

  private async connect(): Promise<ImapFlow> {
    let token = await this.tokens.getAccessToken();
    for (let attempt = 1; ; attempt++) {
      const client = this.createClient(token.token);
      client.on("error", (error: Error) => this.logger.debug({ err: error }, "IMAP connection error"));
      try {
        await client.connect();
        return client;
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

  private createClient(accessToken: string): ImapFlow {
    const { host, port, tls, ca } = this.queue.imap;
    return new ImapFlow({
      host,
      port,
      secure: tls,
      // An extra CA is added to the public roots, not put in their place.
      tls: ca ? { ca: [...rootCertificates, ca] } : undefined,
      // XOAUTH2 `user=` is the queue mailbox: for a shared mailbox that differs from the sign-in user.
      auth: { user: this.queue.address, accessToken },
      logger: imapLogger(this.logger),
      disableAutoIdle: true,
      connectionTimeout: 30_000,
      greetingTimeout: 16_000,
      socketTimeout: 5 * 60_000,
    });
  }
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
