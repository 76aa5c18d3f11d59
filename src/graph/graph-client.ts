/**
 * The few Microsoft Graph calls a mail source makes, over node:https (a CA of its own, bodies
 * streamed), with Graph's rules in one place:
 *
 * - `Prefer: IdType="ImmutableId"` on every request, so ids survive moves within the mailbox;
 * - at most 3 requests in flight per mailbox (Graph allows 4: one is left for the operator's
 *   other tools), counted per Graph host and mailbox across every queue of the process, so one
 *   mailbox's load or throttling never slows another;
 * - 429/503: the mailbox waits as long as Retry-After says; without it, a steep fallback
 *   (1, 2, 4, 8, 15 minutes: Zammad found seconds too shallow). A wait up to 30 s is waited
 *   here; a longer one ends the sync with GRAPH_THROTTLED and its retryAfterMs, so the poller
 *   schedules the next cycle after it;
 * - 401: one retry with a freshly refreshed token; 5xx and broken connections: a few quick
 *   retries with backoff, then GRAPH_UNAVAILABLE;
 * - only links on the configured Graph host under /v1.0/ are followed (the token goes nowhere
 *   else); a URL or a Graph body never reaches a log line or an error.
 */
import { Agent, request } from "node:https";
import type { IncomingMessage } from "node:http";
import { rootCertificates } from "node:tls";
import { MailfetchdError } from "../errors.js";
import type { Logger, TokenProvider } from "../interfaces.js";
import { backoffDelay, sleep } from "../support/backoff.js";
import { classifyGraphFailure, isThrottled, type GraphErrorContext, type GraphFailure } from "./graph-errors.js";

/** Requests in flight per mailbox, at most (Graph's MailboxConcurrency limit is 4). */
export const GRAPH_REQUESTS_PER_MAILBOX = 3;
/** A throttling wait up to this long is waited within the sync; a longer one ends it. */
const WAIT_IN_PLACE_MS = 30_000;
/** Without Retry-After: 1 minute, doubling per throttled answer in a row, up to 15 (plus up to a quarter, so queues spread). */
const FALLBACK_BACKOFF = { baseMs: 60_000, maxMs: 15 * 60_000 };

/** Never below the step: a fallback wait is always longer than WAIT_IN_PLACE_MS. */
function fallbackDelay(step: number): number {
  const ceiling = Math.min(FALLBACK_BACKOFF.maxMs, FALLBACK_BACKOFF.baseMs * 2 ** Math.max(0, step - 1));
  return Math.round(ceiling * (1 + Math.random() / 4));
}
/** 5xx and network failures: quick retries before the sync gives up (the poller retries later). */
const TRANSIENT_RETRIES = 3;
const TRANSIENT_BACKOFF = { baseMs: 1_000, maxMs: 8_000 };
/** Throttled answers to one request before the sync gives up and lets the poller retry. */
const MAX_THROTTLED_IN_A_ROW = 10;
/** No byte for this long: the request is abandoned (and retried). */
const IDLE_TIMEOUT_MS = 60_000;
/** Error bodies are read up to this size, for their code only. */
const ERROR_BODY_LIMIT = 64 * 1024;

/** Per Graph host and mailbox: the in-flight slots and the throttling state. */
class MailboxGate {
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];
  /** Date.now() before which no request is sent (Retry-After or the fallback). */
  blockedUntil = 0;
  /** Throttled answers without Retry-After in a row. */
  fallbackStep = 0;

  async acquire(): Promise<() => void> {
    if (this.inFlight >= GRAPH_REQUESTS_PER_MAILBOX) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter: the count never dips and overshoots.
      if (next) next();
      else this.inFlight--;
    };
  }
}

const gates = new Map<string, MailboxGate>();
function gateOf(host: string, mailbox: string): MailboxGate {
  const key = `${host}|${mailbox.toLowerCase()}`;
  let gate = gates.get(key);
  if (!gate) gates.set(key, (gate = new MailboxGate()));
  return gate;
}

const agents = new Map<string, Agent>();
function agentFor(ca: string | undefined): Agent {
  const key = ca ?? "";
  let agent = agents.get(key);
  if (!agent) {
    // An extra CA is added to the public roots, not put in their place.
    agents.set(key, (agent = new Agent({ keepAlive: true, ca: ca ? [...rootCertificates, ca] : undefined })));
  }
  return agent;
}

export interface GraphClientOptions {
  /** Origin of the Graph host, e.g. https://graph.microsoft.com. */
  readonly host: string;
  readonly ca?: string;
  readonly mailbox: string;
  readonly tokens: TokenProvider;
  readonly logger: Logger;
  readonly context: Omit<GraphErrorContext, "doing" | "accessToken">;
}

export interface GraphRequest {
  readonly method?: "GET" | "PATCH" | "POST" | "DELETE";
  /** A path under the host ("/v1.0/users/...") or a link Graph gave (nextLink, deltaLink). */
  readonly target: string;
  /** For errors and debug lines: what this request is doing, e.g. "reading the folder's changes". */
  readonly doing: string;
  readonly body?: unknown;
  /** Page size for delta (Prefer: odata.maxpagesize). */
  readonly pageSize?: number;
}

/** A Graph answer that was not 2xx and that the caller wants to look at (an expired delta link). */
export class GraphAnswerError extends MailfetchdError {
  constructor(
    readonly failure: GraphFailure,
    classified: MailfetchdError,
  ) {
    super(classified.message, { code: classified.code, retryable: classified.retryable, fix: classified.fix, retryAfterMs: classified.retryAfterMs });
    this.name = "GraphAnswerError";
  }
}

export class GraphClient {
  private readonly gate: MailboxGate;
  private readonly agent: Agent;

  constructor(private readonly options: GraphClientOptions) {
    this.gate = gateOf(options.host, options.mailbox);
    this.agent = agentFor(options.ca);
  }

  /** A JSON answer (undefined for 204). */
  async json<T>(call: GraphRequest): Promise<T> {
    const response = await this.send(call);
    let text: Buffer;
    try {
      text = await readAll(response.body);
    } finally {
      response.release();
    }
    return (text.length > 0 ? JSON.parse(text.toString("utf8")) : undefined) as T;
  }

  /**
   * A streamed answer ($value). Its mailbox slot is held until the body has been read to its
   * end or abandoned (destroy the stream).
   */
  async stream(call: GraphRequest): Promise<IncomingMessage> {
    const response = await this.send(call);
    response.body.once("close", response.release);
    response.body.once("end", response.release);
    return response.body;
  }

  private async send(call: GraphRequest): Promise<{ body: IncomingMessage; release: () => void }> {
    const url = this.resolve(call.target);
    let token = await this.accessToken();
    let refreshed = false;
    let throttled = 0;
    for (let transient = 0; ;) {
      await this.waitIfThrottled(call.doing);
      const release = await this.gate.acquire();
      let response: IncomingMessage;
      try {
        response = await this.once(url, call, token.token);
      } catch (error) {
        release();
        if (++transient > TRANSIENT_RETRIES) throw this.fail({ status: 0, code: (error as NodeJS.ErrnoException).code ?? "network" }, call.doing, token.token);
        this.options.logger.debug(
          { doing: call.doing, attempt: transient, err: { code: (error as NodeJS.ErrnoException).code } },
          "Graph request failed; retrying",
        );
        await sleep(backoffDelay(transient, TRANSIENT_BACKOFF));
        continue;
      }
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        this.gate.fallbackStep = 0;
        return { body: response, release };
      }
      const failure: GraphFailure = { status, code: await errorCodeOf(response), retryAfterMs: retryAfterOf(response) };
      release();
      if (status === 401 && !refreshed) {
        // A token can be revoked or expire server-side before its stated expiry: one fresh token, once.
        refreshed = true;
        token = await this.accessToken({ forceRefresh: true });
        continue;
      }
      if (isThrottled(failure)) {
        if (++throttled > MAX_THROTTLED_IN_A_ROW) throw this.fail(failure, call.doing, token.token);
        const waitMs = failure.retryAfterMs ?? fallbackDelay(++this.gate.fallbackStep);
        this.gate.blockedUntil = Math.max(this.gate.blockedUntil, Date.now() + waitMs);
        this.options.logger.info(
          { doing: call.doing, status, waitMs, retryAfter: failure.retryAfterMs !== undefined },
          "Graph is throttling the mailbox; waiting",
        );
        continue;
      }
      if (status >= 500 && ++transient <= TRANSIENT_RETRIES) {
        this.options.logger.debug({ doing: call.doing, status, attempt: transient }, "Graph answered a server error; retrying");
        await sleep(backoffDelay(transient, TRANSIENT_BACKOFF));
        continue;
      }
      throw this.fail(failure, call.doing, token.token);
    }
  }

  /**
   * The token layer's consent error names IMAP's permission (the default source); a Graph
   * queue's operator needs Graph's.
   */
  private async accessToken(options?: { forceRefresh?: boolean }): Promise<{ token: string }> {
    try {
      return await this.options.tokens.getAccessToken(options);
    } catch (error) {
      if (!(error instanceof MailfetchdError) || error.code !== "IDENTITY_NO_CONSENT") throw error;
      const permission = this.options.context.shared ? "Mail.ReadWrite and Mail.ReadWrite.Shared" : "Mail.ReadWrite";
      throw new MailfetchdError(error.message, {
        code: error.code,
        retryable: error.retryable,
        cause: error,
        fix: `Grant admin consent (admin guide section 2.2 step 10.5) for the delegated Microsoft Graph permission ${permission} (step 10.3), which a source: graph queue uses.`,
      });
    }
  }

  /** Waits out the mailbox's throttling when it ends soon; ends the sync when it does not. */
  private async waitIfThrottled(doing: string): Promise<void> {
    const waitMs = this.gate.blockedUntil - Date.now();
    if (waitMs <= 0) return;
    if (waitMs > WAIT_IN_PLACE_MS) throw this.fail({ status: 429, code: "ApplicationThrottled", retryAfterMs: waitMs }, doing);
    await sleep(waitMs);
  }

  private once(url: URL, call: GraphRequest, accessToken: string): Promise<IncomingMessage> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${accessToken}`,
      Prefer: call.pageSize ? `IdType="ImmutableId", odata.maxpagesize=${call.pageSize}` : 'IdType="ImmutableId"',
      Accept: "application/json",
    };
    const payload = call.body === undefined ? undefined : JSON.stringify(call.body);
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    return new Promise((resolve, reject) => {
      const outgoing = request(url, { method: call.method ?? "GET", headers, agent: this.agent, timeout: IDLE_TIMEOUT_MS }, resolve);
      // The error names no URL: a link carries Graph's sync state.
      outgoing.on("timeout", () => outgoing.destroy(Object.assign(new Error("Graph request timed out"), { code: "ETIMEDOUT" })));
      outgoing.on("error", reject);
      outgoing.end(payload);
    });
  }

  /** Whether a link (a stored cursor) is one this client follows. */
  isOwnLink(target: string): boolean {
    const url = new URL(target, this.options.host);
    return url.origin === this.options.host && url.pathname.startsWith("/v1.0/");
  }

  /** Throws GRAPH_BAD_LINK for a link this client does not follow. */
  checkLink(target: string): void {
    this.resolve(target);
  }

  /** Only the configured host, only its /v1.0/ API: a token must never be sent anywhere else. */
  private resolve(target: string): URL {
    const url = new URL(target, this.options.host);
    if (!this.isOwnLink(target)) {
      throw new MailfetchdError(
        `Queue ${this.options.context.queue}: Graph handed out a link to another host or API (${url.origin === this.options.host ? "path outside /v1.0/" : url.host}); it is not followed.`,
        {
          code: "GRAPH_BAD_LINK",
          retryable: false,
          fix: `Set graph.host to the Graph endpoint the tenant uses (now ${this.options.host}); the daemon sends its token to that host only.`,
        },
      );
    }
    return url;
  }

  private fail(failure: GraphFailure, doing: string, accessToken?: string): GraphAnswerError {
    return new GraphAnswerError(failure, classifyGraphFailure(failure, { ...this.options.context, doing, accessToken }));
  }
}

async function readAll(stream: IncomingMessage, limit = Number.POSITIVE_INFINITY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (size < limit) chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks);
}

/** Graph's error.code; the rest of the body is dropped unread. */
async function errorCodeOf(response: IncomingMessage): Promise<string> {
  try {
    const body = JSON.parse((await readAll(response, ERROR_BODY_LIMIT)).toString("utf8")) as { error?: { code?: unknown } };
    return typeof body.error?.code === "string" ? body.error.code.slice(0, 100) : "";
  } catch {
    return "";
  }
}

/** Retry-After in seconds or as an HTTP date, in milliseconds; undefined when absent or unreadable. */
export function retryAfterOf(response: Pick<IncomingMessage, "headers">): number | undefined {
  const value = response.headers["retry-after"];
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
