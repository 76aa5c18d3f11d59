/**
 * The project's stand-in for the part of Microsoft Graph a mail source uses, for tests, the demo
 * and benchmarks: a real HTTPS server on loopback (the certificates of certs.ts), so the Graph
 * adapter (src/graph/) runs unmodified against it. Facts it follows: shared notes graph-mail.md.
 *
 * What it serves, under /v1.0/users/{address}/ and /v1.0/me/:
 * - folder lookup: `mailFolders/{id or well-known name}` and `mailFolders?$filter=displayName eq '...'`;
 * - `mailFolders/{folder}/messages/delta`: pages of `Prefer: odata.maxpagesize` items (default
 *   10) linked by @odata.nextLink, the last with @odata.deltaLink; options of the first request
 *   ($select, $expand, changeType=created) are encoded into the links, as Graph does. Items carry
 *   PR_MESSAGE_SIZE (singleValueExtendedProperties, 'Long 0xe08') when $expand asks for it.
 *   Removals come as `@removed` (without changeType=created). A delta round is a snapshot: mail
 *   put in while it is being paged comes in the next round; a skip token resumes after the last
 *   change served, whatever was moved or deleted meanwhile;
 * - `messages/{id}/$value` (raw MIME, streamed), `messages/{id}?$select=internetMessageHeaders`, PATCH `messages/{id}` (isRead), POST
 *   `messages/{id}/move`, DELETE `messages/{id}` (to Deleted Items, as Graph does);
 * - ids: immutable ids with `Prefer: IdType="ImmutableId"`, else ids that change when a message
 *   moves (Graph's default); both are accepted in paths.
 *
 * On every request, as Graph: the bearer token is looked up at the identity stand-in (a token
 * it never issued, or an expired one: 401 InvalidAuthenticationToken; one for another API such
 * as IMAP's: 401 "Invalid audience"); the token's `scp` must hold Mail.Read(Write) for the
 * signed-in user's own mailbox, Mail.Read(Write).Shared plus Full Access for another (403
 * ErrorAccessDenied otherwise); a mailbox switched off for REST answers 404
 * MailboxNotEnabledForRESTAPI. More than 4 requests in flight for one mailbox get 429
 * ApplicationThrottled "MailboxConcurrency".
 *
 * Test controls: put mail in (also over HTTPS: POST /_testbed/{address}/{folder} with the MIME as
 * body), read what was done (actions, requests, the peak of requests in flight), expire delta
 * tokens three ways, queue 429s with and without Retry-After and 401/403 refusals, replays and
 * late arrivals in delta, slow or failing `$value` for big messages; the link tokens and error
 * bodies it sent, for leak tests.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { AccessTokenInfo } from "./identity-standin.js";

/** Graph's limit per app and mailbox (MailboxConcurrency). */
export const GRAPH_MAILBOX_CONCURRENCY = 4;
const DEFAULT_PAGE_SIZE = 10;
const WELL_KNOWN_FOLDERS = [
  ["inbox", "Inbox"],
  ["deleteditems", "Deleted Items"],
  ["archive", "Archive"],
  ["sentitems", "Sent Items"],
  ["junkemail", "Junk Email"],
] as const;

export type DeltaExpiry = "gone" | "syncStateNotFound" | "resyncRequired";

export interface GraphStandInOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** What a bearer token is: the identity stand-in's accessTokenInfo. */
  readonly tokens: (token: string) => AccessTokenInfo | undefined;
}

export interface GraphAction {
  readonly mailbox: string;
  readonly action: "read" | "move" | "delete";
  /** The immutable id. */
  readonly id: string;
  /** The destination folder's display name (move). */
  readonly to?: string;
  readonly at: number;
}

export interface GraphRequestRecord {
  readonly method: string;
  /** The path without query, e.g. /v1.0/users/a@b/messages/{id}/$value. */
  readonly path: string;
  readonly mailbox?: string;
  readonly status: number;
  /** Whether the request carried Prefer: IdType="ImmutableId". */
  readonly immutableIds: boolean;
  readonly at: number;
}

export interface StoredGraphMessage {
  readonly id: string;
  readonly folder: string;
  readonly isRead: boolean;
  readonly size: number;
  readonly raw: Buffer;
}

export interface ValueBehaviour {
  /** Applies to messages larger than this many bytes. */
  readonly above: number;
  /** Serve their $value at this rate. */
  readonly bytesPerSecond?: number;
  /** Fail their $value: 504 (the gateway timeout Graph gives) or a transfer cut half-way. */
  readonly fail?: "504" | "broken";
  /** How many $value requests the failure applies to; default every one. */
  readonly times?: number;
}

export interface GraphStandIn {
  /** e.g. https://127.0.0.1:4711: the Graph host to configure. */
  readonly origin: string;
  /** A mailbox with Inbox, Deleted Items, Archive, Sent Items and Junk Email. `fullAccess`: other users who may open it. */
  addMailbox(address: string, options?: { fullAccess?: readonly string[] }): void;
  /** Adds a folder under the root; returns its id. */
  addFolder(address: string, displayName: string): string;
  /** Puts a message into a folder (well-known name, display name or id); returns its immutable id. `late`: delta shows it only from the round after the next deltaLink (replication lag). */
  putMessage(address: string, folder: string, raw: Buffer, options?: { late?: boolean; isRead?: boolean }): string;
  /** The messages in a folder now, oldest first. */
  messages(address: string, folder: string): StoredGraphMessage[];
  setRestDisabled(address: string, disabled: boolean): void;
  /** Every delta and skip token issued so far answers this from now on. */
  expireDeltaTokens(how: DeltaExpiry): void;
  /** The next `times` requests (for `mailbox`, or any) answer 429, with Retry-After when given. */
  throttleNext(times: number, options?: { retryAfterSeconds?: number; mailbox?: string }): void;
  /** The next `times` requests (for `mailbox`, or any) answer as Graph does to a token it refuses (401) or a missing permission (403). */
  refuseNext(times: number, status: 401 | 403, options?: { mailbox?: string }): void;
  /** The next delta round (a request with a delta token) serves `count` items already served again, first. */
  replayInNextDelta(count: number): void;
  setValueBehaviour(behaviour: ValueBehaviour | undefined): void;
  /** While down, every request has its connection destroyed without an answer (an outage). */
  setDown(down: boolean): void;
  /** Every answer is delayed this long, so concurrent requests overlap measurably. */
  setResponseDelay(ms: number): void;
  readonly actions: ReadonlyArray<GraphAction>;
  readonly requests: ReadonlyArray<GraphRequestRecord>;
  /** Every $skiptoken and $deltatoken handed out in a link: secrets a leak test looks for. */
  readonly linkTokensIssued: ReadonlyArray<string>;
  /** The request-id of every error body sent: if one shows up in a log or file, a Graph response body leaked. */
  readonly errorBodyIdsSent: ReadonlyArray<string>;
  /** The most requests in flight at once for the mailbox (answered 429 or not). */
  peakInFlight(address: string): number;
  close(): Promise<void>;
}

interface Folder {
  readonly id: string;
  readonly displayName: string;
  readonly wellKnownName?: string;
}

interface Message {
  readonly id: string;
  readonly raw: Buffer;
  readonly receivedDateTime: string;
  folderId: string;
  isRead: boolean;
  /** Seq of the last change in its folder; of its arrival there (createdSeq). 0 while late. */
  seq: number;
  createdSeq: number;
  /** Its Graph id moves with its folder when immutable ids are not asked for. */
  moves: number;
}

interface Mailbox {
  readonly address: string;
  readonly fullAccess: Set<string>;
  readonly folders: Map<string, Folder>;
  readonly messages: Map<string, Message>;
  readonly removed: Array<{ id: string; folderId: string; seq: number }>;
  readonly late: Message[];
  seq: number;
  restDisabled: boolean;
  inFlight: number;
  peak: number;
}

interface DeltaState {
  readonly mailbox: string;
  readonly folderId: string;
  readonly fromSeq: number;
  /** Snapshot bound of the round: what changed after it comes next round. */
  readonly toSeq: number;
  /**
   * The change key of the last item served in this round (starts at fromSeq): a skip token
   * resumes after it, not at a position in a list that moves and deletes change meanwhile.
   */
  readonly afterKey: number;
  readonly createdOnly: boolean;
  readonly withSize: boolean;
  expired?: DeltaExpiry;
}

class GraphError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

export async function startGraphStandIn(options: GraphStandInOptions): Promise<GraphStandIn> {
  const [cert, key] = await Promise.all([readFile(options.certFile), readFile(options.keyFile)]);
  const standIn = new GraphStandInServer(options);
  const server = createHttpsServer({ cert, key }, (request, response) => void standIn.handle(request, response));
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
  standIn.attach(`https://127.0.0.1:${port}`, server);
  return standIn;
}

class GraphStandInServer implements GraphStandIn {
  origin = "";
  readonly actions: GraphAction[] = [];
  readonly requests: GraphRequestRecord[] = [];
  readonly linkTokensIssued: string[] = [];
  readonly errorBodyIdsSent: string[] = [];
  private server?: Server;
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly deltaStates = new Map<string, DeltaState>();
  private readonly throttles: Array<{ remaining: number; retryAfterSeconds?: number; mailbox?: string }> = [];
  private readonly refusals: Array<{ remaining: number; status: 401 | 403; mailbox?: string }> = [];
  private replays = 0;
  private valueBehaviour?: ValueBehaviour & { remaining: number };
  private responseDelayMs = 0;
  private down = false;

  constructor(private readonly options: GraphStandInOptions) {}

  attach(origin: string, server: Server): void {
    this.origin = origin;
    this.server = server;
  }

  // -------------------------------------------------------------------------------------------
  // Test controls

  addMailbox(address: string, options: { fullAccess?: readonly string[] } = {}): void {
    const folders = new Map<string, Folder>();
    for (const [wellKnownName, displayName] of WELL_KNOWN_FOLDERS) {
      const id = newId("AAMkFolder");
      folders.set(id, { id, displayName, wellKnownName });
    }
    this.mailboxes.set(address.toLowerCase(), {
      address: address.toLowerCase(),
      fullAccess: new Set((options.fullAccess ?? []).map((user) => user.toLowerCase())),
      folders,
      messages: new Map(),
      removed: [],
      late: [],
      seq: 0,
      restDisabled: false,
      inFlight: 0,
      peak: 0,
    });
  }

  addFolder(address: string, displayName: string): string {
    const id = newId("AAMkFolder");
    this.mailbox(address).folders.set(id, { id, displayName });
    return id;
  }

  putMessage(address: string, folder: string, raw: Buffer, options: { late?: boolean; isRead?: boolean } = {}): string {
    const mailbox = this.mailbox(address);
    const target = findFolder(mailbox, folder);
    if (!target) throw new Error(`putMessage: no folder ${folder} in ${address}`);
    const message: Message = {
      id: newId("AAkALgImmutable"),
      raw,
      receivedDateTime: new Date().toISOString(),
      folderId: target.id,
      isRead: options.isRead ?? false,
      seq: 0,
      createdSeq: 0,
      moves: 0,
    };
    mailbox.messages.set(message.id, message);
    if (options.late) mailbox.late.push(message);
    else message.seq = message.createdSeq = ++mailbox.seq;
    return message.id;
  }

  messages(address: string, folder: string): StoredGraphMessage[] {
    const mailbox = this.mailbox(address);
    const target = findFolder(mailbox, folder);
    if (!target) throw new Error(`messages: no folder ${folder} in ${address}`);
    return [...mailbox.messages.values()]
      .filter((m) => m.folderId === target.id)
      .map((m) => ({ id: m.id, folder: target.displayName, isRead: m.isRead, size: m.raw.length, raw: m.raw }));
  }

  setRestDisabled(address: string, disabled: boolean): void {
    this.mailbox(address).restDisabled = disabled;
  }

  expireDeltaTokens(how: DeltaExpiry): void {
    for (const state of this.deltaStates.values()) state.expired = how;
  }

  throttleNext(times: number, options: { retryAfterSeconds?: number; mailbox?: string } = {}): void {
    this.throttles.push({ remaining: times, retryAfterSeconds: options.retryAfterSeconds, mailbox: options.mailbox?.toLowerCase() });
  }

  refuseNext(times: number, status: 401 | 403, options: { mailbox?: string } = {}): void {
    this.refusals.push({ remaining: times, status, mailbox: options.mailbox?.toLowerCase() });
  }

  replayInNextDelta(count: number): void {
    this.replays = count;
  }

  setValueBehaviour(behaviour: ValueBehaviour | undefined): void {
    this.valueBehaviour = behaviour ? { ...behaviour, remaining: behaviour.times ?? Number.POSITIVE_INFINITY } : undefined;
  }

  setDown(down: boolean): void {
    this.down = down;
  }

  setResponseDelay(ms: number): void {
    this.responseDelayMs = ms;
  }

  peakInFlight(address: string): number {
    return this.mailbox(address).peak;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // -------------------------------------------------------------------------------------------
  // HTTPS

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", this.origin);
    const immutableIds = /IdType\s*=\s*"?ImmutableId"?/i.test(headerOf(request, "prefer") ?? "");
    let mailbox: Mailbox | undefined;
    const record = (status: number) =>
      this.requests.push({ method: request.method ?? "", path: url.pathname, mailbox: mailbox?.address, status, immutableIds, at: Date.now() });
    if (this.down && !url.pathname.startsWith("/_testbed/")) {
      response.destroy();
      return;
    }
    try {
      const body = await readBody(request);
      if (url.pathname.startsWith("/_testbed/")) {
        record(this.control(request.method ?? "", url, body, response));
        return;
      }
      const token = /^Bearer (.+)$/i.exec(headerOf(request, "authorization") ?? "")?.[1];
      const info = token ? this.options.tokens(token) : undefined;
      if (!info)
        throw new GraphError(401, "InvalidAuthenticationToken", token ? "IDX14100: JWT is not well formed, there are no dots (.)." : "Access token is empty.");
      if (info.audience !== "graph") throw new GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.");
      if (Date.now() >= info.expiresAt) throw new GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.");

      const match = /^\/v1\.0\/(?:me|users\/([^/]+))(\/.*)$/.exec(url.pathname);
      if (!match) throw new GraphError(400, "BadRequest", "Resource not found for the segment.");
      const address = (match[1] ? decodeURIComponent(match[1]) : info.username).toLowerCase();
      mailbox = this.mailboxes.get(address);
      if (!mailbox) throw new GraphError(404, "ErrorInvalidUser", `The requested user '${address}' is invalid.`);
      if (mailbox.restDisabled)
        throw new GraphError(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.");
      const route = match[2]!;
      const writes = request.method !== "GET";
      checkAccess(info, mailbox, writes);

      mailbox.inFlight++;
      mailbox.peak = Math.max(mailbox.peak, mailbox.inFlight);
      const counted = mailbox;
      response.once("close", () => counted.inFlight--);
      // Judged on arrival, as Graph does: the requests already in flight count.
      if (mailbox.inFlight > GRAPH_MAILBOX_CONCURRENCY) {
        throw new GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", { "Retry-After": "1" });
      }
      if (this.responseDelayMs > 0) await sleep(this.responseDelayMs);
      this.takeRefusal(mailbox.address);
      this.takeThrottle(mailbox.address);
      const status = await this.route(mailbox, request.method ?? "GET", route, url, body, immutableIds, request, response);
      record(status);
    } catch (error) {
      if (!(error instanceof GraphError)) {
        if (!response.headersSent) sendJson(response, 500, { error: { code: "InternalServerError", message: String(error) } });
        else response.destroy();
        record(500);
        return;
      }
      const requestId = newId("req");
      this.errorBodyIdsSent.push(requestId);
      sendJson(
        response,
        error.status,
        { error: { code: error.code, message: error.message, innerError: { "request-id": requestId, date: new Date().toISOString() } } },
        error.headers,
      );
      record(error.status);
    }
  }

  private takeRefusal(address: string): void {
    const index = this.refusals.findIndex((r) => r.mailbox === undefined || r.mailbox === address);
    const refusal = this.refusals[index];
    if (!refusal) return;
    if (--refusal.remaining <= 0) this.refusals.splice(index, 1);
    if (refusal.status === 401) throw new GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.");
    throw new GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
  }

  private takeThrottle(address: string): void {
    const index = this.throttles.findIndex((t) => t.mailbox === undefined || t.mailbox === address);
    const throttle = this.throttles[index];
    if (!throttle) return;
    if (--throttle.remaining <= 0) this.throttles.splice(index, 1);
    const headers: Record<string, string> = throttle.retryAfterSeconds === undefined ? {} : { "Retry-After": String(throttle.retryAfterSeconds) };
    throw new GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", headers);
  }

  private async route(
    mailbox: Mailbox,
    method: string,
    route: string,
    url: URL,
    body: string,
    immutableIds: boolean,
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<number> {
    let match: RegExpExecArray | null;
    if (method === "GET" && route === "/mailFolders") {
      const name = /^displayName eq '(.*)'$/.exec(url.searchParams.get("$filter") ?? "")?.[1]?.replaceAll("''", "'");
      const value = [...mailbox.folders.values()].filter((f) => name === undefined || f.displayName.toLowerCase() === name.toLowerCase()).map(folderJson);
      return sendJson(response, 200, { value });
    }
    if (method === "GET" && (match = /^\/mailFolders\/([^/]+)$/.exec(route))) {
      const folder = findFolder(mailbox, decodeURIComponent(match[1]!), { byName: false });
      if (!folder) throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      return sendJson(response, 200, folderJson(folder));
    }
    if (method === "GET" && (match = /^\/mailFolders\/([^/]+)\/messages\/delta$/.exec(route))) {
      return this.delta(mailbox, decodeURIComponent(match[1]!), url, immutableIds, request, response);
    }
    if ((match = /^\/messages\/([^/]+)\/\$value$/.exec(route)) && method === "GET") {
      return this.value(this.message(mailbox, decodeURIComponent(match[1]!)), response);
    }
    if ((match = /^\/messages\/([^/]+)\/move$/.exec(route)) && method === "POST") {
      const message = this.message(mailbox, decodeURIComponent(match[1]!));
      const destinationId = String((parseJson(body) as { destinationId?: unknown }).destinationId ?? "");
      const destination = findFolder(mailbox, destinationId, { byName: false });
      if (!destination) throw new GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.");
      this.moveTo(mailbox, message, destination);
      this.actions.push({ mailbox: mailbox.address, action: "move", id: message.id, to: destination.displayName, at: Date.now() });
      return sendJson(response, 201, this.messageJson(message, immutableIds, false));
    }
    if ((match = /^\/messages\/([^/]+)$/.exec(route))) {
      const message = this.message(mailbox, decodeURIComponent(match[1]!));
      if (method === "PATCH") {
        const patch = parseJson(body) as { isRead?: unknown };
        if (typeof patch.isRead === "boolean") {
          message.isRead = patch.isRead;
          message.seq = ++mailbox.seq;
          this.actions.push({ mailbox: mailbox.address, action: "read", id: message.id, at: Date.now() });
        }
        return sendJson(response, 200, this.messageJson(message, immutableIds, false));
      }
      if (method === "GET") {
        const json = this.messageJson(message, immutableIds, false);
        return sendJson(
          response,
          200,
          /internetMessageHeaders/.test(url.searchParams.get("$select") ?? "") ? { ...json, internetMessageHeaders: headersOf(message.raw) } : json,
        );
      }
      if (method === "DELETE") {
        this.moveTo(mailbox, message, findFolder(mailbox, "deleteditems")!);
        this.actions.push({ mailbox: mailbox.address, action: "delete", id: message.id, at: Date.now() });
        response.writeHead(204).end();
        return 204;
      }
    }
    throw new GraphError(400, "BadRequest", `Unsupported request: ${method} ${route}`);
  }

  private delta(mailbox: Mailbox, folderRef: string, url: URL, immutableIds: boolean, request: IncomingMessage, response: ServerResponse): number {
    const skip = url.searchParams.get("$skiptoken");
    const deltaToken = url.searchParams.get("$deltatoken");
    let state: DeltaState;
    if (skip !== null || deltaToken !== null) {
      const known = this.deltaStates.get(skip ?? deltaToken ?? "");
      if (!known || known.mailbox !== mailbox.address) throw new GraphError(400, "syncStateNotFound", "The sync state could not be found.");
      if (known.expired === "gone") {
        throw new GraphError(410, "SyncStateInvalid", "The sync state has expired; start a full synchronization.", {
          Location: this.deltaUrl(mailbox, known.folderId),
        });
      }
      if (known.expired)
        throw new GraphError(400, known.expired, known.expired === "resyncRequired" ? "A full resync is required." : "The sync state could not be found.");
      // A delta token starts a new round: its snapshot bound is now.
      state = deltaToken !== null ? { ...known, toSeq: mailbox.seq, afterKey: known.fromSeq, expired: undefined } : known;
    } else {
      const folder = findFolder(mailbox, folderRef, { byName: false });
      if (!folder) throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
      state = {
        mailbox: mailbox.address,
        folderId: folder.id,
        fromSeq: 0,
        toSeq: mailbox.seq,
        afterKey: 0,
        createdOnly: url.searchParams.get("changeType") === "created",
        withSize: /singleValueExtendedProperties/i.test(url.searchParams.get("$expand") ?? ""),
      };
    }
    const pageSize = Number(/odata\.maxpagesize\s*=\s*(\d+)/i.exec(headerOf(request, "prefer") ?? "")?.[1] ?? DEFAULT_PAGE_SIZE);
    // Each change has a key (its seq; with changeType=created, the seq of its arrival in the folder).
    const keyOf = (m: Message) => (state.createdOnly ? m.createdSeq : m.seq);
    const ahead = (key: number) => key > state.afterKey && key <= state.toSeq;
    const changes: Array<{ key: number; json: object }> = [
      ...[...mailbox.messages.values()]
        .filter((m) => m.folderId === state.folderId && m.seq > 0 && ahead(keyOf(m)))
        .map((m) => ({ key: keyOf(m), json: this.messageJson(m, immutableIds, state.withSize) })),
      ...(state.createdOnly || state.fromSeq === 0
        ? []
        : mailbox.removed
            .filter((r) => r.folderId === state.folderId && ahead(r.seq))
            .map((r) => ({ key: r.seq, json: { id: r.id, "@removed": { reason: "deleted" } } }))),
    ].sort((a, b) => a.key - b.key);
    const served = changes.slice(0, pageSize);
    const next = changes.length > pageSize;
    const page = served.map((change) => change.json);
    if (deltaToken !== null && this.replays > 0) {
      // Graph may serve items of earlier rounds again.
      const earlier = [...mailbox.messages.values()].filter((m) => m.folderId === state.folderId && m.seq > 0 && keyOf(m) <= state.fromSeq);
      page.unshift(...earlier.slice(-this.replays).map((m) => this.messageJson(m, immutableIds, state.withSize)));
      this.replays = 0;
    }
    const token = newId("tok");
    this.linkTokensIssued.push(token);
    const base = this.deltaUrl(mailbox, state.folderId);
    let link: Record<string, string>;
    if (next) {
      this.deltaStates.set(token, { ...state, afterKey: served.at(-1)!.key });
      link = { "@odata.nextLink": `${base}?$skiptoken=${token}` };
    } else {
      this.deltaStates.set(token, { ...state, fromSeq: state.toSeq, afterKey: state.toSeq });
      link = { "@odata.deltaLink": `${base}?$deltatoken=${token}` };
      // Late arrivals become visible now: the next round shows them, older than what it already showed.
      for (const late of mailbox.late.splice(0)) late.seq = late.createdSeq = ++mailbox.seq;
    }
    return sendJson(
      response,
      200,
      { "@odata.context": `${this.origin}/v1.0/$metadata#Collection(message)`, value: page, ...link },
      { "Preference-Applied": `odata.maxpagesize=${pageSize}` },
    );
  }

  private async value(message: Message, response: ServerResponse): Promise<number> {
    const behaviour = this.valueBehaviour;
    const applies = behaviour !== undefined && message.raw.length > behaviour.above && behaviour.remaining > 0;
    if (applies && behaviour.fail) behaviour.remaining--;
    if (applies && behaviour.fail === "504") throw new GraphError(504, "UnknownError", "");
    response.writeHead(200, { "Content-Type": "text/plain", "Content-Length": String(message.raw.length) });
    const chunk = 64 * 1024;
    for (let offset = 0; offset < message.raw.length; offset += chunk) {
      if (response.destroyed) return 200;
      if (applies && behaviour.fail === "broken" && offset >= message.raw.length / 2) {
        response.destroy();
        return 200;
      }
      const part = message.raw.subarray(offset, offset + chunk);
      if (!response.write(part)) await new Promise((resolve) => response.once("drain", resolve));
      if (applies && behaviour.bytesPerSecond) await sleep((part.length / behaviour.bytesPerSecond) * 1000);
    }
    response.end();
    return 200;
  }

  private deltaUrl(mailbox: Mailbox, folderId: string): string {
    return `${this.origin}/v1.0/users/${encodeURIComponent(mailbox.address)}/mailFolders/${folderId}/messages/delta`;
  }

  private message(mailbox: Mailbox, id: string): Message {
    const direct = mailbox.messages.get(id);
    if (direct) return direct;
    // A non-immutable id: valid only while the message has not moved since it was handed out.
    const found = [...mailbox.messages.values()].find((m) => restIdOf(m) === id);
    if (!found) throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
    return found;
  }

  private moveTo(mailbox: Mailbox, message: Message, destination: Folder): void {
    if (message.folderId === destination.id) return;
    mailbox.removed.push({ id: message.id, folderId: message.folderId, seq: ++mailbox.seq });
    message.folderId = destination.id;
    message.moves++;
    message.seq = message.createdSeq = ++mailbox.seq;
  }

  private messageJson(message: Message, immutableIds: boolean, withSize: boolean): object {
    return {
      id: immutableIds ? message.id : restIdOf(message),
      receivedDateTime: message.receivedDateTime,
      isRead: message.isRead,
      parentFolderId: message.folderId,
      ...(withSize ? { singleValueExtendedProperties: [{ id: "Long 0xe08", value: String(message.raw.length) }] } : {}),
    };
  }

  private control(method: string, url: URL, body: string, response: ServerResponse): number {
    const [address, folder] = url.pathname.split("/").slice(2).map(decodeURIComponent);
    if (method === "POST" && address && folder) {
      if (!this.mailboxes.has(address.toLowerCase())) this.addMailbox(address);
      return sendJson(response, 201, { id: this.putMessage(address, folder, Buffer.from(body, "latin1")) });
    }
    if (method === "GET" && address === "actions") return sendJson(response, 200, { value: this.actions });
    return sendJson(response, 404, { error: { code: "NotFound", message: "POST /_testbed/{address}/{folder} or GET /_testbed/actions" } });
  }

  private mailbox(address: string): Mailbox {
    const mailbox = this.mailboxes.get(address.toLowerCase());
    if (!mailbox) throw new Error(`no mailbox ${address} in the Graph stand-in`);
    return mailbox;
  }
}

/** Mail.Read(Write) for one's own mailbox; the .Shared variant plus Full Access for another's. */
function checkAccess(info: AccessTokenInfo, mailbox: Mailbox, writes: boolean): void {
  const own = mailbox.address === info.username.toLowerCase();
  const permissions = new Set(info.permissions.map((p) => p.toLowerCase()));
  const suffix = own ? "" : ".shared";
  const allowed = permissions.has(`mail.readwrite${suffix}`) || (!writes && permissions.has(`mail.read${suffix}`));
  if (!allowed || (!own && !mailbox.fullAccess.has(info.username.toLowerCase()))) {
    throw new GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");
  }
}

function findFolder(mailbox: Mailbox, ref: string, options: { byName?: boolean } = {}): Folder | undefined {
  const lower = ref.toLowerCase();
  for (const folder of mailbox.folders.values()) {
    if (folder.id === ref || folder.wellKnownName === lower) return folder;
  }
  if (options.byName === false) return undefined;
  return [...mailbox.folders.values()].find((folder) => folder.displayName.toLowerCase() === lower);
}

/** The header block as Graph's internetMessageHeaders: one entry per field, unfolded. */
function headersOf(raw: Buffer): Array<{ name: string; value: string }> {
  const text = raw.subarray(0, 256 * 1024).toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  const block = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, " ");
  return block.split(/\r?\n/).flatMap((line) => {
    const colon = line.indexOf(":");
    return colon > 0 ? [{ name: line.slice(0, colon), value: line.slice(colon + 1).trim() }] : [];
  });
}

function folderJson(folder: Folder): object {
  return { id: folder.id, displayName: folder.displayName, parentFolderId: "AAMkRoot", childFolderCount: 0 };
}

function restIdOf(message: Message): string {
  return `${message.id.replace("Immutable", "Rest")}-${message.folderId.slice(-6)}-${message.moves}`;
}

function newId(prefix: string): string {
  return `${prefix}${randomBytes(18).toString("base64url")}`;
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): number {
  if (response.destroyed) return status;
  response.writeHead(status, { "Content-Type": "application/json; odata.metadata=minimal; charset=utf-8", ...headers });
  response.end(JSON.stringify(body));
  return status;
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body) ?? {};
  } catch {
    throw new GraphError(400, "BadRequest", "Unable to read JSON request payload.");
  }
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("latin1")));
    request.on("error", reject);
  });
}

function headerOf(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
