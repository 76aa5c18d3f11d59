/**
 * Raw message bytes in PostgreSQL, so a spooled message survives the replica that fetched it and
 * any replica can parse and deliver it. A message is stored in parts of at most 1 MiB (bytea
 * rows): a download is written part by part as it arrives (bounded memory, no rewrite of what
 * was written), in one transaction that commits, durably, before write() resolves.
 * The parser reads files: localFile() writes a private scratch copy that release() removes.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { QueueFence } from "../../cluster/ports.js";
import { StreamSourceError } from "../../spool/spool-file-writer.js";
import type { RawMessageStore, WrittenRaw } from "../ports.js";
import type { Connection } from "./connection.js";
import { checkFence } from "./fencing.js";

const PART_BYTES = 1024 * 1024;

export class PostgresRawMessages implements RawMessageStore {
  constructor(
    private readonly db: Connection,
    private readonly fence: QueueFence | undefined,
    /** Where scratch copies for the parser go (a private directory is made per copy). */
    private readonly scratchDir: string,
  ) {}

  write(queue: string, key: string, content: Buffer | AsyncIterable<Buffer>, headLimit: number): Promise<WrittenRaw> {
    return this.db.transaction("store a message's bytes", async (client) => {
      await client.query("DELETE FROM raw_parts WHERE queue = $1 AND key = $2", [queue, key]);
      const hash = createHash("sha256");
      const head: Buffer[] = [];
      let headLength = 0;
      let pending: Buffer[] = [];
      let pendingLength = 0;
      let part = 0;
      const flush = async () => {
        const bytes = Buffer.concat(pending, pendingLength);
        pending = [];
        pendingLength = 0;
        await client.query("INSERT INTO raw_parts (queue, key, part, bytes) VALUES ($1, $2, $3, $4)", [queue, key, part++, bytes]);
      };
      const take = async (chunk: Buffer) => {
        hash.update(chunk);
        if (headLength < headLimit) {
          // A copy: the producer may reuse the chunk's memory.
          const piece = Buffer.from(chunk.subarray(0, headLimit - headLength));
          head.push(piece);
          headLength += piece.length;
        }
        for (let offset = 0; offset < chunk.length;) {
          const piece = chunk.subarray(offset, offset + PART_BYTES - pendingLength);
          pending.push(Buffer.from(piece));
          pendingLength += piece.length;
          offset += piece.length;
          if (pendingLength === PART_BYTES) await flush();
        }
      };
      if (Buffer.isBuffer(content)) await take(content);
      else {
        const chunks = content[Symbol.asyncIterator]();
        for (;;) {
          const next = await chunks.next().catch((error: unknown) => {
            throw new StreamSourceError(error);
          });
          if (next.done) break;
          await take(next.value);
        }
      }
      if (pendingLength > 0 || part === 0) await flush();
      // Checked last, just before the commit: the lease row is locked for an instant, not for
      // the whole download (a lease round waiting behind a 25 MB download missed its renewal).
      await checkFence(client, this.fence, [queue]);
      return { head: Buffer.concat(head, headLength), sha256: hash.digest("hex") };
    });
  }

  async read(queue: string, key: string): Promise<Buffer> {
    const rows = await this.db.query<{ bytes: Buffer }>("read a message's bytes", "SELECT bytes FROM raw_parts WHERE queue = $1 AND key = $2 ORDER BY part", [
      queue,
      key,
    ]);
    if (rows.length === 0) throw Object.assign(new Error(`no raw message '${key}' in queue '${queue}'`), { code: "ENOENT" });
    return Buffer.concat(rows.map((r) => r.bytes));
  }

  async localFile(queue: string, key: string): Promise<{ readonly path: string; release(): Promise<void> }> {
    const bytes = await this.read(queue, key);
    await mkdir(this.scratchDir, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(this.scratchDir, `raw-${randomBytes(3).toString("hex")}-`));
    const path = join(dir, "message.eml");
    await writeFile(path, bytes, { mode: 0o600 });
    return { path, release: () => rm(dir, { recursive: true, force: true }) };
  }

  async remove(queue: string, key: string): Promise<void> {
    await this.db.query("remove a message's bytes", "DELETE FROM raw_parts WHERE queue = $1 AND key = $2", [queue, key]);
  }
}
