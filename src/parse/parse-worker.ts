/**
 * The body of a parser worker thread (src/parse/parser-pool.ts starts them): parses one
 * message at a time with MailparserParser and posts the result back. Parsing is the one
 * CPU-heavy step of delivery (html-to-text alone costs ~200 ms per MB of HTML), so it runs
 * here, never on the daemon's event loop.
 *
 * A message is read from its spool file as a stream, so a 50 MB message is never held whole
 * in this thread; attachment buffers are transferred back, not copied.
 */
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { getHeapStatistics } from "node:v8";
import { parentPort } from "node:worker_threads";
import type { ParsedMessage } from "../interfaces.js";
import { ScratchWriteError } from "./collect-mail.js";
import { MailparserParser } from "./mail-parser.js";

/** What the pool asks: a full parse, or (after a timeout or crash) the top-level headers only. */
export interface ParseRequest {
  readonly id: number;
  readonly kind: "full" | "headers";
  /** The message's spool file; or `raw`. */
  readonly file?: string;
  readonly raw?: Uint8Array;
  /** Where big attachments go rather than into the reply (ParseFileOptions). */
  readonly scratchDir?: string;
  /** For "headers": the parseError to report. */
  readonly parseError?: string;
}

export type ParseReply = (
  { readonly id: number; readonly parsed: ParsedMessage } | { readonly id: number; readonly error: string; readonly scratchWriteFailed?: boolean }
) & {
  /** This worker grew big (a big message): end it rather than keep its memory until a GC that may not come soon. */
  readonly retire?: boolean;
};

/**
 * A worker asks to be replaced after a message above this size, or when its heap plus buffers
 * grew above the other: a big parse leaves ~100 MB behind until a GC that may not come soon.
 * Not after every message: a new worker costs ~0.3 s of CPU to load its modules.
 */
const RETIRE_AFTER_MESSAGE_BYTES = 16 * 1024 * 1024;
const RETIRE_ABOVE_BYTES = 160 * 1024 * 1024;
/** A spool file above this is parsed as a stream, never whole in memory. */
const STREAM_ABOVE_BYTES = 4 * 1024 * 1024;
/** Attachments below this are copied with the reply: transferring a small (pooled) buffer is not allowed. */
const TRANSFER_FROM_BYTES = 64 * 1024;
const HEADER_BYTES = 256 * 1024 + 1;

const parser = new MailparserParser();
const port = parentPort;
if (!port) throw new Error("parse-worker.js runs only as a worker thread (src/parse/parser-pool.ts)");

port.on("message", (request: ParseRequest) => {
  void handle(request).then(
    ({ parsed, transfer, bytes }) =>
      port.postMessage({ id: request.id, parsed, retire: bytes > RETIRE_AFTER_MESSAGE_BYTES || grown() } satisfies ParseReply, transfer),
    (error: unknown) =>
      port.postMessage({
        id: request.id,
        error: error instanceof Error ? error.message : String(error),
        scratchWriteFailed: error instanceof ScratchWriteError,
        retire: true,
      } satisfies ParseReply),
  );
});

function grown(): boolean {
  const { total_heap_size, external_memory } = getHeapStatistics();
  return total_heap_size + external_memory > RETIRE_ABOVE_BYTES;
}

async function handle(request: ParseRequest): Promise<{ parsed: ParsedMessage; transfer: ArrayBuffer[]; bytes: number }> {
  const bytes =
    request.file !== undefined
      ? await stat(request.file).then(
          (s) => s.size,
          () => 0,
        )
      : (request.raw?.byteLength ?? 0);
  const parsed = request.kind === "headers" ? await parseHeaders(request) : await parseFull(request, bytes);
  return { parsed, transfer: transferable(parsed), bytes };
}

async function parseFull(request: ParseRequest, bytes: number): Promise<ParsedMessage> {
  const { file, raw } = request;
  const options = { scratchDir: request.scratchDir };
  // Streaming costs ~30% more CPU than parsing a buffer: worth it only where memory matters.
  if (file !== undefined && bytes > STREAM_ABOVE_BYTES) return parser.parseStream(() => createReadStream(file), options);
  if (file !== undefined) {
    let whole: Buffer;
    try {
      whole = await readFile(file);
    } catch {
      return parser.parseStream(() => createReadStream(file)); // reports the unreadable file as a parse error
    }
    return parser.parse(whole, options);
  }
  return parser.parse(asBuffer(raw), options);
}

async function parseHeaders(request: ParseRequest): Promise<ParsedMessage> {
  const head = request.file !== undefined ? await readHead(request.file) : asBuffer(request.raw).subarray(0, HEADER_BYTES);
  return parser.parseHeadersOnly(head, request.parseError ?? "parsed headers only");
}

async function readHead(file: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of createReadStream(file, { end: HEADER_BYTES - 1 })) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return Buffer.concat(chunks, length);
}

function asBuffer(raw: Uint8Array | undefined): Buffer {
  return raw ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength) : Buffer.alloc(0);
}

/** The ArrayBuffers that only an attachment uses, so they can move to the pool's thread. */
function transferable(parsed: ParsedMessage): ArrayBuffer[] {
  const transfer: ArrayBuffer[] = [];
  for (const { content } of parsed.attachments) {
    if (content === undefined) continue;
    const whole = content.buffer;
    if (
      content.byteLength >= TRANSFER_FROM_BYTES &&
      whole instanceof ArrayBuffer &&
      content.byteOffset === 0 &&
      content.byteLength === whole.byteLength &&
      !transfer.includes(whole)
    ) {
      transfer.push(whole);
    }
  }
  return transfer;
}
