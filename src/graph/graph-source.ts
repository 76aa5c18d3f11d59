/**
 * Microsoft Graph as a MailSource (src/source/mail-source.ts): new mail by delta query on the
 * queue's folder, each message's raw MIME ($value) streamed into the spool, the owed server-side
 * actions (afterSpool) taken by Graph calls from the spool's outbox. Facts: shared notes
 * graph-mail.md; the HTTP rules (immutable ids, per-mailbox limit, throttling, host check) live
 * in graph-client.ts, the error mapping in graph-errors.ts.
 *
 * Locations: item = the message's immutable id; the folder's cursor is the link to call next
 * (a nextLink while a round is under way, the deltaLink once it is complete). A cursor is
 * committed only after every message of its page is durable, so a crash or a failed download
 * resumes at the page it was on and never skips a message. The first round of a new queue walks
 * the whole folder and spools everything in it, as IMAP's first sync (from UID 1) does. An
 * expired delta link (410, syncStateNotFound, resyncRequired) starts a full round: locations
 * already spooled are skipped by the spool, copies of spooled mail are recognised by content.
 */
import type { Readable } from "node:stream";
import type { QueueConfig } from "../config/schema.js";
import { MailfetchdError } from "../errors.js";
import type { Logger, TokenProvider } from "../interfaces.js";
import type { MailSource } from "../source/mail-source.js";
import type { MessageLocation, OwedAction } from "../source/message-location.js";
import type { SpoolSink } from "../source/spool-sink.js";
import { GRAPH_FULL_ROUND } from "../source/source-kinds.js";
import { GRAPH_REQUESTS_PER_MAILBOX, GraphAnswerError, GraphClient } from "./graph-client.js";
import { classifyGraphFailure, isExpiredDelta } from "./graph-errors.js";

/** Items per delta page (Prefer: odata.maxpagesize); each page ends with a cursor commit. */
const PAGE_SIZE = 50;
/** Downloads streaming into the spool at once: one mailbox slot is left for delta and actions. */
const DOWNLOADS_IN_FLIGHT = GRAPH_REQUESTS_PER_MAILBOX - 1;
/** A message whose $value failed in this many syncs is parked as a headers-only dead letter. */
const VALUE_FAILURES_BEFORE_PARKING = 5;
/** Folder names Graph knows by themselves; any other name is looked up by display name. */
const WELL_KNOWN_FOLDERS = new Set([
  "inbox",
  "archive",
  "deleteditems",
  "drafts",
  "junkemail",
  "sentitems",
  "outbox",
  "clutter",
  "conversationhistory",
  "scheduled",
]);
/** PR_MESSAGE_SIZE: the size is known before the download, so the size cap applies as for IMAP. */
const SIZE_PROPERTY = "Long 0x0E08";

interface DeltaItem {
  readonly id: string;
  readonly receivedDateTime?: string;
  readonly "@removed"?: unknown;
  readonly singleValueExtendedProperties?: ReadonlyArray<{ readonly id: string; readonly value: string }>;
}

interface DeltaPage {
  readonly value: DeltaItem[];
  readonly "@odata.nextLink"?: string;
  readonly "@odata.deltaLink"?: string;
}

export class GraphSource implements MailSource {
  readonly kind = "graph" as const;
  private readonly client: GraphClient;
  /** /v1.0/users/{address}: the sign-in user's own mailbox and shared ones alike. */
  private readonly mailboxPath: string;
  private readonly folderIds = new Map<string, string>();
  /** Failed $value downloads per item, across syncs (reset by a restart: they are retried then). */
  private readonly valueFailures = new Map<string, number>();

  constructor(
    private readonly queue: QueueConfig,
    tokens: TokenProvider,
    private readonly logger: Logger,
  ) {
    const { host, ca } = queue.graph;
    this.client = new GraphClient({
      host,
      ca,
      mailbox: queue.address,
      tokens,
      logger,
      context: { queue: queue.name, mailbox: queue.address, folder: queue.folder, host: new URL(host).host, shared: queue.address !== queue.signIn.user },
    });
    this.mailboxPath = `/v1.0/users/${encodeURIComponent(queue.address)}`;
  }

  async sync(sink: SpoolSink): Promise<void> {
    const folder = this.queue.folder;
    // Actions a crash left owed go first: they are for mail that is durable already.
    await this.takeActions(sink);
    let link = await sink.cursor(folder);
    if (link === GRAPH_FULL_ROUND) {
      // An operator retried a parked message (`deadletters retry`): the folder is read again and
      // the message's body is tried afresh, however often it failed before.
      this.logger.info({ folder }, "reading the folder again for a dead letter an operator retried; messages already spooled are skipped");
      this.valueFailures.clear();
      link = undefined;
    }
    if (link && !this.client.isOwnLink(link)) {
      this.logger.warn(
        { folder },
        "the stored delta link is not on the configured Graph host (graph.host changed): reading the folder again; messages already spooled are not delivered again",
      );
      link = undefined;
    }
    // A new queue's first round walks the whole folder, as IMAP's first sync reads from UID 1.
    link ??= await this.firstDeltaLink();
    let restarted = false;
    for (;;) {
      let page: DeltaPage;
      try {
        page = await this.client.json<DeltaPage>({ target: link, doing: "reading the folder's new messages (delta)", pageSize: PAGE_SIZE });
      } catch (error) {
        if (!(error instanceof GraphAnswerError && isExpiredDelta(error.failure)) || restarted) throw error;
        restarted = true;
        this.logger.warn(
          { folder, status: error.failure.status, graphCode: error.failure.code },
          "Graph's delta link expired: reading the whole folder again; messages already spooled are skipped or recognised by their content, not delivered again",
        );
        link = await this.firstDeltaLink();
        this.valueFailures.clear();
        await sink.restart(folder, link);
        continue;
      }
      await this.spoolPage(sink, page.value ?? []);
      const next = page["@odata.nextLink"] ?? page["@odata.deltaLink"];
      if (!next)
        throw new MailfetchdError(`Queue ${this.queue.name}: a Graph delta page came without a next or delta link.`, {
          code: "GRAPH_UNAVAILABLE",
          retryable: true,
          fix: "mailfetchd retries; if it lasts, report it with the daemon's debug log.",
        });
      // Checked before it is stored: a link to another host would be refused at every sync.
      this.client.checkLink(next);
      // Commits after (never before) this page's messages; the deltaLink ends the round.
      await sink.advance(folder, next);
      await this.takeActions(sink);
      if (page["@odata.deltaLink"] !== undefined) return;
      link = next;
    }
  }

  /** The page's messages into the spool, in order; downloads overlap, commits keep the order. */
  private async spoolPage(sink: SpoolSink, items: readonly DeltaItem[]): Promise<void> {
    const limit = this.queue.maxMessageSize;
    const accepting: Array<Promise<void>> = [];
    try {
      for (const item of items) {
        if (item["@removed"] !== undefined || typeof item.id !== "string") continue;
        const location: MessageLocation = { kind: "graph", folder: this.queue.folder, item: item.id };
        const size = sizeOf(item);
        const internalDate = item.receivedDateTime ? new Date(item.receivedDateTime) : undefined;
        const failures = this.valueFailures.get(item.id) ?? 0;
        if (size > limit || failures >= VALUE_FAILURES_BEFORE_PARKING) {
          await settleAll(accepting.splice(0));
          if (size > limit) this.logger.error({ item: item.id, size, limit }, "message above maxMessageSize: not downloaded, parked as dead letter");
          else
            this.logger.error(
              { item: item.id, size, failures },
              "Graph could not serve this message's MIME ($value) in several syncs: parked as a headers-only dead letter",
            );
          const raw = await this.headersOf(item.id);
          const tooLarge =
            size > limit
              ? { limit }
              : {
                  limit,
                  reason: `Microsoft Graph could not serve this message's content ($value) in ${failures} syncs (timeouts, server errors or broken transfers): only its headers were kept, and it stays in the mailbox untouched. Handle it in the mailbox, or run \`mailfetchd deadletters retry\` for it once Graph serves it again (the folder is then read again).`,
                };
          await sink.accept({ location, size, internalDate, raw, tooLarge });
          continue;
        }
        const accepted = sink.accept({ location, size, internalDate, content: this.download(item.id, size) });
        // Its failure is read below (shift, settleAll); until then it must not count as unhandled.
        accepted.catch(() => undefined);
        accepting.push(accepted);
        if (accepting.length >= DOWNLOADS_IN_FLIGHT) await accepting.shift();
      }
    } finally {
      await settleAll(accepting);
    }
  }

  /** The raw MIME, downloaded only when the spool reads it, straight into the spool file. */
  private async *download(id: string, size: number): AsyncIterable<Buffer> {
    let body: Readable | undefined;
    try {
      body = await this.client.stream({ target: `${this.mailboxPath}/messages/${encodeURIComponent(id)}/$value`, doing: "downloading a message ($value)" });
      this.logger.debug({ item: id, size }, "downloading a message into the spool");
      for await (const chunk of body as AsyncIterable<Buffer>) yield chunk;
      this.valueFailures.delete(id);
    } catch (error) {
      this.valueFailures.set(id, (this.valueFailures.get(id) ?? 0) + 1);
      if (error instanceof MailfetchdError) throw error;
      // A transfer cut off half-way (Graph's $value of big messages does this): retried at the next sync.
      throw new MailfetchdError(
        `Queue ${this.queue.name}: the download of a message from Graph broke off (${(error as NodeJS.ErrnoException).code ?? "connection closed"}).`,
        {
          code: "GRAPH_UNAVAILABLE",
          retryable: true,
          fix: `None needed: it is retried at the next sync, and after ${VALUE_FAILURES_BEFORE_PARKING} failed syncs the message is parked as a dead letter with its headers.`,
        },
      );
    } finally {
      body?.destroy();
    }
  }

  /** The header block of a message that is not downloaded, for its dead letter. */
  private async headersOf(id: string): Promise<Buffer> {
    const answer = await this.client.json<{ internetMessageHeaders?: Array<{ name: string; value: string }> }>({
      target: `${this.mailboxPath}/messages/${encodeURIComponent(id)}?$select=internetMessageHeaders`,
      doing: "reading a message's headers",
    });
    const lines = (answer.internetMessageHeaders ?? []).map((header) => `${header.name}: ${header.value}\r\n`);
    return Buffer.from(`${lines.join("")}\r\n`, "utf8");
  }

  /** For `check`: the queue's folder looked up over Graph (mailbox, permission and folder in one call); its id. */
  lookUpFolder(): Promise<string> {
    return this.folderId(this.queue.folder);
  }

  /** The round's first link: the folder's messages, new ones only, with their size. */
  private async firstDeltaLink(): Promise<string> {
    const folderId = await this.folderId(this.queue.folder);
    const query = [
      "changeType=created",
      `$select=${encodeURIComponent("id,receivedDateTime")}`,
      `$expand=${encodeURIComponent(`singleValueExtendedProperties($filter=id eq '${SIZE_PROPERTY}')`)}`,
    ].join("&");
    return `${this.mailboxPath}/mailFolders/${encodeURIComponent(folderId)}/messages/delta?${query}`;
  }

  /** A folder's id, by well-known name ("INBOX" is inbox) or by display name at the top of the mailbox; looked up once. */
  private async folderId(name: string): Promise<string> {
    const known = this.folderIds.get(name);
    if (known) return known;
    let id: string | undefined;
    const wellKnown = name.toLowerCase();
    if (WELL_KNOWN_FOLDERS.has(wellKnown)) {
      id = (await this.client.json<{ id: string }>({ target: `${this.mailboxPath}/mailFolders/${wellKnown}`, doing: `looking up the folder '${name}'` })).id;
    } else {
      const filter = encodeURIComponent(`displayName eq '${name.replaceAll("'", "''")}'`);
      const found = await this.client.json<{ value: Array<{ id: string }> }>({
        target: `${this.mailboxPath}/mailFolders?$filter=${filter}`,
        doing: `looking up the folder '${name}'`,
      });
      id = found.value[0]?.id;
    }
    if (!id && name !== this.queue.folder) {
      throw new MailfetchdError(
        `Queue ${this.queue.name}: the folder '${name}' (afterSpool: move) does not exist in ${this.queue.address}; spooled messages stay where they are until it does.`,
        {
          code: "GRAPH_NOT_FOUND",
          retryable: false,
          fix: "Create the folder at the top of the mailbox, or correct the queue's moveTo (a well-known name such as archive, or a top-level folder's display name).",
        },
      );
    }
    if (!id) {
      throw classifyGraphFailure(
        { status: 404, code: "ErrorItemNotFound" },
        {
          queue: this.queue.name,
          mailbox: this.queue.address,
          folder: name,
          host: new URL(this.queue.graph.host).host,
          doing: `looking up the folder '${name}'`,
          shared: false,
        },
      );
    }
    this.folderIds.set(name, id);
    return id;
  }

  /** Takes the owed afterSpool actions (for durable mail only: the outbox holds nothing else). */
  private async takeActions(sink: SpoolSink): Promise<void> {
    if (this.queue.afterSpool.action === "keep") return;
    const folder = this.queue.folder;
    const owed = await sink.pendingActions(folder);
    for (let start = 0; start < owed.length; start += DOWNLOADS_IN_FLIGHT) {
      const group = owed.slice(start, start + DOWNLOADS_IN_FLIGHT);
      const outcomes = await Promise.allSettled(group.map((action) => this.take(action)));
      const done: string[] = [];
      const gone: string[] = [];
      let failure: unknown;
      outcomes.forEach((outcome, i) => {
        const { item } = group[i]!;
        if (outcome.status === "fulfilled") done.push(item);
        // The message is no longer there (moved or deleted by someone): nothing can be done to it.
        else if (outcome.reason instanceof GraphAnswerError && outcome.reason.failure.status === 404 && outcome.reason.failure.code === "ErrorItemNotFound")
          gone.push(item);
        else failure ??= outcome.reason;
      });
      if (done.length > 0) await sink.actionsDone(folder, done);
      if (gone.length > 0) {
        const dropped = await sink.dropActions(folder, gone);
        this.logger.warn({ dropped }, "server-side actions owed for messages no longer in the mailbox were dropped");
      }
      if (failure !== undefined) throw failure;
    }
  }

  private async take(owed: OwedAction): Promise<void> {
    const message = `${this.mailboxPath}/messages/${encodeURIComponent(owed.item)}`;
    if (owed.action === "seen") {
      await this.client.json({ method: "PATCH", target: message, body: { isRead: true }, doing: "marking a spooled message read" });
    } else if (owed.action === "move") {
      const destinationId = await this.folderId(owed.target ?? "");
      await this.client.json({ method: "POST", target: `${message}/move`, body: { destinationId }, doing: `moving a spooled message to '${owed.target}'` });
    } else {
      // To Deleted Items, as IMAP's delete is recoverable there on Exchange too.
      await this.client.json({ method: "DELETE", target: message, doing: "deleting a spooled message" });
    }
    this.logger.debug({ action: owed.action, item: owed.item }, "server-side action taken");
  }
}

function sizeOf(item: DeltaItem): number {
  const property = item.singleValueExtendedProperties?.find(
    (p) => p.id.toLowerCase().replace("0x0", "0x") === SIZE_PROPERTY.toLowerCase().replace("0x0", "0x"),
  );
  const size = Number(property?.value);
  return Number.isFinite(size) && size >= 0 ? size : 0;
}

/** Waits for every accept handed over; rejects with the first failure. */
async function settleAll(accepting: Array<Promise<void>>): Promise<void> {
  const outcomes = await Promise.allSettled(accepting);
  const failed = outcomes.find((outcome) => outcome.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
