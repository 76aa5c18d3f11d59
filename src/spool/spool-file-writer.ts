/**
 * Writes a message that arrives as a stream (a big one, downloaded in chunks) to a temp file in
 * the spool (its directory created when missing), hashing it on the way, so it never sits whole
 * in memory. The caller renames the durable temp file into place (its spool key): same crash
 * guarantees as writeFileDurably (the file is fsynced before it gets its name, the directory after).
 */
import { createHash, randomBytes } from "node:crypto";
import { rename, rm } from "node:fs/promises";
import path from "node:path";
import { openCreatingDirectory, syncDirectory } from "./durable-file.js";

export interface WrittenTempFile {
  readonly tempPath: string;
  /** The first `headBytes` of the message (all of it when shorter): where its headers are. */
  readonly head: Buffer;
  readonly sha256: string;
  readonly bytes: number;
}

export async function writeStreamToTempFile(dir: string, content: AsyncIterable<Buffer>, headBytes: number): Promise<WrittenTempFile> {
  const tempPath = path.join(dir, `.tmp-stream-${randomBytes(6).toString("hex")}`);
  const handle = await openCreatingDirectory(tempPath, 0o600);
  const hash = createHash("sha256");
  const headChunks: Buffer[] = [];
  let headLength = 0;
  let bytes = 0;
  const chunks = content[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await chunks.next().catch((error: unknown) => {
        throw new StreamSourceError(error);
      });
      if (next.done) break;
      const chunk = next.value;
      hash.update(chunk);
      if (headLength < headBytes) {
        // A copy: the chunk's memory may be reused by the producer.
        const part = Buffer.from(chunk.subarray(0, headBytes - headLength));
        headChunks.push(part);
        headLength += part.length;
      }
      // Awaiting each write is the back-pressure: the next chunk is fetched only after this one is written.
      await handle.write(chunk);
      bytes += chunk.length;
    }
    await handle.sync();
  } catch (error) {
    // Stop the producer (an IMAP download) when the disk failed under it.
    if (!(error instanceof StreamSourceError)) await chunks.return?.().catch(() => undefined);
    await handle.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw error;
  }
  await handle.close();
  return { tempPath, head: Buffer.concat(headChunks, headLength), sha256: hash.digest("hex"), bytes };
}

/** The stream being written failed (not the disk): `cause` is the producer's own error. */
export class StreamSourceError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = "StreamSourceError";
  }
}

/** Gives a durable temp file its final name, durably. */
export async function moveIntoPlace(tempPath: string, file: string): Promise<void> {
  try {
    await rename(tempPath, file);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
  await syncDirectory(path.dirname(file));
}
