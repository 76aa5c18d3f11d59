/**
 * mailparser's simpleParser, reworked so a big attachment is never whole in memory: its
 * decoded bytes go to a file as they are decoded ("spilled"), hashed on the way. simpleParser
 * collects every attachment's chunks and then concatenates them, so a 37 MB attachment peaked
 * at twice its size in the parser, and again in whoever then held the Buffer.
 *
 * Adapted from mailparser's lib/simple-parser.js (MIT, Andris Reinman): the same event
 * handling, with keepCidLinks always on (we never inline images as data: URLs).
 */
import { createHash } from "node:crypto";
import { mkdir, open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { MailParser } from "mailparser";
import type { AttachmentStream, MailParserOptions, ParsedMail } from "mailparser";

/** Where and from what size attachments are spilled to files. */
export interface SpillOptions {
  /** A directory of this message's own (created when the first attachment is spilled). */
  readonly dir: string;
  /** An attachment growing past this many bytes goes to a file; smaller ones stay in memory. */
  readonly aboveBytes: number;
  /** Attachments whose bytes the enrichers read (calendar, delivery status, TNEF) stay in memory. */
  readonly keepInMemory: (contentType: string, filename: string | undefined) => boolean;
}

/** An attachment as collected: its bytes in `content`, or in `file` when spilled. */
export type CollectedAttachment = { readonly size: number; readonly sha256: string } & (
  { readonly content: Buffer; readonly file?: undefined } | { readonly file: string; readonly content?: undefined }
);

/**
 * Writing a scratch file failed (disk full, permissions on state.dir): the state directory's
 * trouble, not the message's. Parsers rethrow it rather than degrade the message to its
 * headers, so the delivery waits and is retried (src/queue/deliverer.ts).
 */
export class ScratchWriteError extends Error {
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(`could not write parse scratch file ${file}: ${(cause as { code?: string })?.code ?? String(cause)}`, { cause });
    this.name = "ScratchWriteError";
  }
}

/** ParsedMail whose attachments carry a CollectedAttachment under `collected`. */
export type CollectedMail = Omit<ParsedMail, "attachments"> & {
  readonly attachments: Array<ParsedMail["attachments"][number] & { collected: CollectedAttachment }>;
};

const HEADER_KEYS = ["subject", "references", "date", "to", "from", "cc", "bcc", "message-id", "in-reply-to", "reply-to"];

export function collectMail(input: Buffer | Readable, options: MailParserOptions, spill?: SpillOptions): Promise<CollectedMail> {
  return new Promise<CollectedMail>((resolve, reject) => {
    let settled = false;
    const parser = new MailParser(options);
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      parser.destroy();
      if (!Buffer.isBuffer(input)) input.destroy();
      reject(error);
    };
    const mail: Record<string, unknown> & { attachments: unknown[] } = { attachments: [] };
    parser.on("error", fail);
    parser.on("headers", (headers) => {
      mail.headers = headers;
      mail.headerLines = parser.headerLines;
    });

    let reading = false;
    let spilled = 0;
    const reader = (): void => {
      reading = true;
      const data = parser.read() as (AttachmentStream | ({ type: "text" } & Record<string, unknown>)) | null;
      if (data === null) {
        reading = false;
        return;
      }
      if (data.type === "text") {
        for (const key of ["text", "html", "textAsHtml", "textConversionError"]) if (key in data) mail[key] = (data as Record<string, unknown>)[key];
        reader();
        return;
      }
      const attachment = data as AttachmentStream;
      const index = mail.attachments.length;
      mail.attachments.push(attachment);
      const spillTo = spill && !spill.keepInMemory((attachment.contentType || "").toLowerCase(), attachment.filename) ? spill : undefined;
      collectAttachment(attachment.content, spillTo, () => path.join(spill!.dir, `${index + 1}-${++spilled}`)).then((collected) => {
        Object.assign(attachment, { content: collected.content ?? Buffer.alloc(0), collected });
        attachment.release?.();
        reader();
      }, fail);
    };
    parser.on("readable", () => {
      if (!reading) reader();
    });
    parser.on("end", () => {
      if (settled) return;
      const headers = mail.headers as Map<string, unknown> | undefined;
      for (const key of HEADER_KEYS) {
        if (headers?.has(key)) mail[key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = headers.get(key);
      }
      settled = true;
      resolve(mail as unknown as CollectedMail);
    });

    if (Buffer.isBuffer(input)) parser.end(input);
    else input.once("error", fail).pipe(parser);
  });
}

/**
 * Reads an attachment's decoded stream to its end: in memory while small, then into a file.
 * Reading by async iteration keeps backpressure: the parser (and the file it reads) wait for
 * the disk rather than piling chunks up here.
 */
async function collectAttachment(stream: Readable, spill: SpillOptions | undefined, nextFile: () => string): Promise<CollectedAttachment> {
  const hash = createHash("sha256");
  const chunks: Buffer[] = [];
  let size = 0;
  let file: string | undefined;
  let handle: FileHandle | undefined;
  const scratch = async <T>(write: () => Promise<T>): Promise<T> => {
    try {
      return await write();
    } catch (error) {
      throw new ScratchWriteError(file ?? spill!.dir, error);
    }
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      if (handle) {
        await scratch(() => handle!.writeFile(chunk));
        continue;
      }
      chunks.push(chunk);
      if (spill && size > spill.aboveBytes) {
        file = nextFile();
        // Scratch, not spool: it is re-created by parsing again, so no fsync.
        handle = await scratch(async () => {
          await mkdir(spill.dir, { recursive: true, mode: 0o700 });
          return open(file!, "wx", 0o600);
        });
        for (const held of chunks.splice(0)) await scratch(() => handle!.writeFile(held));
      }
    }
  } finally {
    await handle?.close();
  }
  const sha256 = hash.digest("hex");
  return file !== undefined ? { file, size, sha256 } : { content: Buffer.concat(chunks, size), size, sha256 };
}
