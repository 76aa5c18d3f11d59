/**
 * MessageParser on a small pool of worker threads (src/parse/parse-worker.ts), so parsing,
 * the one CPU-heavy step of delivery (~200 ms per MB of HTML converted to text), never stalls
 * the event loop that fetches and delivers every other queue's mail.
 *
 * A parse that runs past its time limit, or kills its worker (out of memory, a crash), has its
 * worker terminated and replaced; the message is then parsed for its top-level headers only
 * (again in a worker, with a short limit) and delivered raw with parseError set. So a poison
 * message costs at most two time limits, once: it never loops and never blocks the queue.
 * parse() and parseFile() never reject, except after close() and when a scratch file for a big
 * attachment cannot be written (SPOOL_WRITE_FAILED, retryable: the state directory's trouble).
 *
 * Fair between queues: a free worker goes to the queue with the fewest parses running, the
 * longest-waiting first among equals. Each queue's deliverer keeps up to 8 messages in flight,
 * so with one line for everybody a flood of slow messages in one queue (up to 60 s each) held
 * both workers and put every other queue's mail behind all of it. A queue alone still uses
 * every worker; when another queue's mail arrives while one queue holds them all, a spare
 * worker parses it (a parse cannot be interrupted), so it waits for no slow parse at all. At
 * most size + 1 workers, size + 1 parses only while one queue floods; the spare is ended like
 * any worker after 30 s without work (kept meanwhile: starting one costs ~0.3 s of CPU, more
 * on cores the flood keeps busy).
 */
import { Worker, type ResourceLimits } from "node:worker_threads";
import type { Logger, MessageParser, ParseFileOptions, ParsedAttachment, ParsedMessage } from "../interfaces.js";
import { MailfetchdError } from "../errors.js";
import type { ParseReply, ParseRequest } from "./parse-worker.js";

export interface ParserPoolOptions {
  /** Worker threads; default 2 (the machines this runs on have 2 cores; fetching needs one too). */
  readonly size?: number;
  /** A full parse taking longer is abandoned; default 60 s. */
  readonly timeoutMs?: number;
  /** The headers-only parse after a failed one; default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Each worker's V8 heap limits: a pathological message kills its worker, not the daemon. */
  readonly resourceLimits?: ResourceLimits;
  /**
   * Workers kept running even with nothing to parse, started at once; default 1. A worker
   * takes ~0.3 s to start (mailparser and the enrichers load): new mail after a quiet spell
   * must not wait for that.
   */
  readonly warm?: number;
  /** The worker script; default the compiled parse-worker.js beside this file. */
  readonly workerUrl?: URL;
  readonly logger?: Logger;
}

const DEFAULTS = {
  size: 2,
  timeoutMs: 60_000,
  headersTimeoutMs: 10_000,
  // A 50 MB message with a 37 MB attachment peaks at ~150 MB of heap and buffers; 4x headroom.
  // A young generation of 8 MB rather than V8's default: measured on that message, the process
  // peaked 27 MB lower (and an idle worker is 8 MB smaller), for a few % more parse time.
  resourceLimits: { maxOldGenerationSizeMb: 768, maxYoungGenerationSizeMb: 8 } satisfies ResourceLimits,
};

type Outcome = { ok: true; parsed: ParsedMessage } | { ok: false; reason: string; scratchWriteFailed?: boolean };

interface Job {
  /** Whose turn it is: ParseFileOptions.queue ("" when not given). */
  readonly queue: string;
  /** Arrival order, for the longest-waiting-first rule. */
  readonly seq: number;
  /** Given to a worker (counted in `running` until it ends). */
  started?: boolean;
  readonly request: Omit<ParseRequest, "id">;
  readonly timeoutMs: number;
  readonly transfer: ArrayBuffer[];
  readonly settle: (outcome: Outcome) => void;
  readonly fail: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  job?: Job & { readonly id: number; readonly timer: NodeJS.Timeout };
  /** Ends the worker after a quiet spell: ~24 MB each, for mailboxes that get mail now and then. */
  idleTimer?: NodeJS.Timeout;
}

/** A worker with nothing to do for this long is ended; the next parse starts one (~0.3 s). */
const IDLE_WORKER_MS = 30_000;

export class ParserPool implements MessageParser {
  private readonly size: number;
  private readonly warm: number;
  private readonly timeoutMs: number;
  private readonly headersTimeoutMs: number;
  private readonly resourceLimits: ResourceLimits;
  private readonly workerUrl: URL;
  private readonly logger?: Logger;
  private readonly slots = new Set<Slot>();
  /** Waiting jobs per queue, each list in arrival order. */
  private readonly waiting = new Map<string, Job[]>();
  /** Parses running per queue. */
  private readonly running = new Map<string, number>();
  private nextId = 1;
  private nextSeq = 1;
  private closed = false;

  constructor(options: ParserPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? DEFAULTS.size);
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.headersTimeoutMs = options.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs;
    this.resourceLimits = options.resourceLimits ?? DEFAULTS.resourceLimits;
    this.workerUrl = options.workerUrl ?? new URL("./parse-worker.js", import.meta.url);
    this.logger = options.logger;
    this.warm = Math.min(this.size, Math.max(0, options.warm ?? 1));
    for (let i = 0; i < this.warm; i++) this.spawn();
  }

  /** Parses a message held in memory; the bytes are copied to the worker. */
  parse(raw: Buffer, options: Pick<ParseFileOptions, "queue"> = {}): Promise<ParsedMessage> {
    return this.parseWithFallback(options.queue ?? "", () => {
      // A copy of exactly these bytes, moved (not cloned again) to the worker.
      const copy = new Uint8Array(raw);
      return { request: { raw: copy }, transfer: [copy.buffer] };
    });
  }

  /**
   * Parses a spooled message from its file: the worker streams it, nobody holds it whole; with
   * a scratch directory, big attachments come back as files there, not as buffers.
   */
  parseFile(file: string, options: ParseFileOptions = {}): Promise<ParsedMessage> {
    return this.parseWithFallback(options.queue ?? "", () => ({ request: { file, scratchDir: options.scratchDir }, transfer: [] }));
  }

  /** Terminates the workers; parses not yet finished reject. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const closedError = new Error("parser pool closed");
    const waiting = [...this.waiting.values()].flat();
    this.waiting.clear();
    for (const job of waiting) job.fail(closedError);
    const slots = [...this.slots];
    this.slots.clear();
    for (const slot of slots) {
      clearTimeout(slot.idleTimer);
      if (slot.job) {
        clearTimeout(slot.job.timer);
        slot.job.fail(closedError);
      }
    }
    await Promise.allSettled(slots.map((slot) => slot.worker.terminate()));
  }

  private async parseWithFallback(
    queue: string,
    source: () => { request: Pick<ParseRequest, "file" | "raw" | "scratchDir">; transfer: ArrayBuffer[] },
  ): Promise<ParsedMessage> {
    const full = source();
    const outcome = await this.run(queue, { ...full.request, kind: "full" }, full.transfer, this.timeoutMs);
    if (outcome.ok) return outcome.parsed;
    // The state directory cannot take a scratch file: not the message's fault, so not parsed
    // down to its headers; the delivery waits and is retried.
    if (outcome.scratchWriteFailed) {
      throw new MailfetchdError(`Parsing needs scratch space in state.dir and could not write it (${outcome.reason}).`, {
        code: "SPOOL_WRITE_FAILED",
        retryable: true,
        fix: "Free space or fix permissions on state.dir; delivery resumes by itself.",
      });
    }
    const parseError = `MIME parse abandoned: ${outcome.reason}; delivered raw with the top-level headers only`;
    this.logger?.warn({ reason: outcome.reason }, "parse abandoned; the message is delivered raw with its headers only");
    const again = source();
    const headers = await this.run(queue, { ...again.request, kind: "headers", parseError }, again.transfer, this.headersTimeoutMs);
    if (headers.ok) return headers.parsed;
    return { from: [], to: [], cc: [], replyTo: [], references: [], attachments: [], parseError: `${parseError} (headers: ${headers.reason})` };
  }

  private run(queue: string, request: Omit<ParseRequest, "id">, transfer: ArrayBuffer[], timeoutMs: number): Promise<Outcome> {
    if (this.closed) return Promise.reject(new Error("parser pool closed"));
    return new Promise<Outcome>((settle, fail) => {
      // A started job's queue counts one parse fewer when it ends, however it ends.
      const job: Job = {
        queue,
        seq: this.nextSeq++,
        request,
        timeoutMs,
        transfer,
        settle: (outcome) => {
          if (job.started) this.finished(queue);
          settle(outcome);
        },
        fail: (error) => {
          if (job.started) this.finished(queue);
          fail(error);
        },
      };
      const list = this.waiting.get(queue);
      if (list === undefined) this.waiting.set(queue, [job]);
      else list.push(job);
      this.dispatch();
    });
  }

  private finished(queue: string): void {
    const count = (this.running.get(queue) ?? 1) - 1;
    if (count > 0) this.running.set(queue, count);
    else this.running.delete(queue);
  }

  /**
   * The next job: from the queue with the fewest parses running, the longest-waiting among
   * those. O(queues with work waiting) per dispatch, which is small next to a parse.
   */
  private nextJob(): Job | undefined {
    let best: Job[] | undefined;
    let bestRunning = Number.POSITIVE_INFINITY;
    for (const [queue, list] of this.waiting) {
      const running = this.running.get(queue) ?? 0;
      if (running < bestRunning || (running === bestRunning && list[0]!.seq < best![0]!.seq)) {
        best = list;
        bestRunning = running;
      }
    }
    if (best === undefined) return undefined;
    const job = best.shift()!;
    if (best.length === 0) this.waiting.delete(job.queue);
    job.started = true;
    this.running.set(job.queue, (this.running.get(job.queue) ?? 0) + 1);
    return job;
  }

  private dispatch(): void {
    while (this.waiting.size > 0 && !this.closed) {
      let busy = 0;
      for (const slot of this.slots) if (slot.job) busy++;
      // At capacity only a queue starved by a flood may run, on the spare.
      if (busy >= this.size && !this.starvedByFlood()) return;
      const slot = this.idleSlot(busy >= this.size ? this.size + 1 : this.size);
      if (!slot) return;
      const job = this.nextJob()!;
      const id = this.nextId++;
      clearTimeout(slot.idleTimer);
      const timer = setTimeout(() => this.abandon(slot, `took longer than ${job.timeoutMs / 1000} s`), job.timeoutMs);
      slot.job = { ...job, id, timer };
      slot.worker.postMessage({ ...job.request, id } satisfies ParseRequest, job.transfer);
    }
  }

  private idleSlot(limit: number): Slot | undefined {
    for (const slot of this.slots) if (!slot.job) return slot;
    if (this.slots.size >= limit) return undefined;
    return this.spawn();
  }

  /**
   * Whether every worker is busy with one queue while another queue, with nothing running, has
   * mail waiting: that mail then gets a spare worker rather than wait for a parse of the
   * flooding queue to end (up to the 60 s limit). nextJob picks it: it has the fewest running.
   */
  private starvedByFlood(): boolean {
    if (this.size < 2) return false;
    let flooding: string | undefined;
    let busy = 0;
    for (const slot of this.slots) {
      if (!slot.job) continue;
      if (flooding !== undefined && slot.job.queue !== flooding) return false;
      flooding = slot.job.queue;
      busy++;
    }
    if (flooding === undefined || busy > this.size) return false;
    for (const queue of this.waiting.keys()) if (queue !== flooding && !this.running.has(queue)) return true;
    return false;
  }

  private spawn(): Slot {
    const worker = new Worker(this.workerUrl, { resourceLimits: this.resourceLimits });
    // Idle workers must not keep a finished process alive; a job's timer holds it meanwhile.
    worker.unref();
    const slot: Slot = { worker };
    worker.on("message", (reply: ParseReply) => {
      const job = slot.job;
      if (!job || job.id !== reply.id) return;
      clearTimeout(job.timer);
      slot.job = undefined;
      job.settle(
        "parsed" in reply
          ? { ok: true, parsed: revive(reply.parsed) }
          : { ok: false, reason: `parser failed: ${reply.error}`, scratchWriteFailed: reply.scratchWriteFailed },
      );
      // A worker that parsed a big message holds its garbage until some later GC: a fresh one
      // (~0.3 s to start) returns that memory now, which bounds the daemon's RSS.
      if (reply.retire) this.retire(slot);
      this.dispatch();
      if (!slot.job && this.slots.has(slot)) {
        slot.idleTimer = setTimeout(() => {
          if (this.slots.size > this.warm) this.retire(slot);
        }, IDLE_WORKER_MS);
        slot.idleTimer.unref();
      }
    });
    worker.on("error", (error: Error) => this.abandon(slot, `parser crashed: ${error.message}`));
    worker.on("exit", (code) => this.abandon(slot, `parser exited (code ${code})`));
    this.slots.add(slot);
    return slot;
  }

  private retire(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    if (slot.job) return;
    this.slots.delete(slot);
    void slot.worker.terminate();
    if (!this.closed && this.slots.size < this.warm) this.spawn();
  }

  /** Ends a slot's worker (hung, crashed or gone) and fails its job; a fresh worker takes over. */
  private abandon(slot: Slot, reason: string): void {
    if (!this.slots.delete(slot)) return;
    const job = slot.job;
    slot.job = undefined;
    if (job) {
      clearTimeout(job.timer);
      job.settle({ ok: false, reason });
    }
    void slot.worker.terminate();
    this.dispatch();
    if (!this.closed && this.slots.size < this.warm) this.spawn();
  }
}

/** Attachments arrive as Uint8Array (structured clone drops the Buffer class): Buffers again, no copy. */
function revive(parsed: ParsedMessage): ParsedMessage {
  const attachments: ParsedAttachment[] = parsed.attachments.map((attachment) => {
    const content = attachment.content as Uint8Array | undefined;
    if (content === undefined) return attachment;
    return { ...attachment, content: Buffer.from(content.buffer, content.byteOffset, content.byteLength) };
  });
  return { ...parsed, attachments };
}
