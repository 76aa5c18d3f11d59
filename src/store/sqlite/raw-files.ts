/**
 * RawMessageStore over the spool directory: one file per message, `spool/<queue>/<key>.eml`,
 * written durably (fsynced, renamed into place, directory fsynced) before its row commits.
 */
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { writeFileDurably } from "../../spool/durable-file.js";
import { moveIntoPlace, writeStreamToTempFile } from "../../spool/spool-file-writer.js";
import type { RawMessageStore, WrittenRaw } from "../ports.js";

export class SpoolDirectory implements RawMessageStore {
  private readonly root: string;

  constructor(stateDir: string) {
    this.root = path.join(stateDir, "spool");
  }

  /** A big message goes from the download straight to a temp file, hashed on the way (bounded memory), and is renamed into place. */
  async write(queue: string, key: string, content: Buffer | AsyncIterable<Buffer>, headLimit: number): Promise<WrittenRaw> {
    // The queue's directory is created by the first write that finds it missing.
    const file = this.fileOf(queue, key);
    if (Buffer.isBuffer(content)) {
      await writeFileDurably(file, content);
      return { head: content.subarray(0, headLimit), sha256: createHash("sha256").update(content).digest("hex") };
    }
    const written = await writeStreamToTempFile(path.dirname(file), content, headLimit);
    await moveIntoPlace(written.tempPath, file);
    return { head: written.head, sha256: written.sha256 };
  }

  read(queue: string, key: string): Promise<Buffer> {
    return readFile(this.fileOf(queue, key));
  }

  /** The spool file itself: nothing to release. */
  async localFile(queue: string, key: string): Promise<{ readonly path: string; release(): Promise<void> }> {
    return { path: this.fileOf(queue, key), release: async () => undefined };
  }

  async remove(queue: string, key: string): Promise<void> {
    await rm(this.fileOf(queue, key), { force: true });
  }

  /** Spool keys (and, for messages spooled before migration 5, stable ids) name the files. */
  private fileOf(queue: string, key: string): string {
    return path.join(this.root, queue, `${key}.eml`);
  }
}
