/**
 * Durable writes into the spool create their directory themselves when it is missing (issue 17:
 * the spool no longer runs a recursive mkdir before every message), and directory fsyncs asked
 * for at once are shared; on real files.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { syncDirectory, writeFileDurably } from "../../src/spool/durable-file.js";
import { moveIntoPlace, writeStreamToTempFile } from "../../src/spool/spool-file-writer.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempRoot(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "durable-file-"));
  dirs.push(dir);
  return dir;
}

async function* chunks(data: Buffer): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += 7) yield data.subarray(at, at + 7);
}

describe("durable spool writes", () => {
  it("writeFileDurably creates a missing directory, owner only, and writes into an existing one", async () => {
    const root = tempRoot();
    const file = path.join(root, "spool", "support", "a.eml");
    await writeFileDurably(file, Buffer.from("first"));
    expect(readFileSync(file, "utf8")).toBe("first");
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    await writeFileDurably(path.join(path.dirname(file), "b.eml"), "second");
    expect(readFileSync(path.join(path.dirname(file), "b.eml"), "utf8")).toBe("second");
  });

  it("a streamed message gets its directory too, also after the directory was removed", async () => {
    const root = tempRoot();
    const dir = path.join(root, "spool", "sales");
    const data = Buffer.from("Subject: streamed\r\n\r\nbody of the streamed message\r\n");
    for (let round = 0; round < 2; round++) {
      const written = await writeStreamToTempFile(dir, chunks(data), 10);
      await moveIntoPlace(written.tempPath, path.join(dir, "m.eml"));
      expect(readFileSync(path.join(dir, "m.eml"))).toEqual(data);
      expect(written.head.toString()).toBe("Subject: s");
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      rmSync(dir, { recursive: true });
    }
  });

  it("a failure other than a missing directory is reported, not retried", async () => {
    const root = tempRoot();
    const file = path.join(root, "exists.eml");
    await writeFileDurably(file, "x");
    // The temp name is random, so "wx" cannot collide; a file where the directory should be can.
    await expect(writeFileDurably(path.join(file, "under-a-file.eml"), "y")).rejects.toMatchObject({ code: "ENOTDIR" });
  });

  it("callers arriving while a directory fsync runs share the next one, which starts after it", async () => {
    const dir = path.join(tempRoot(), "spool");
    mkdirSync(dir);
    const first = syncDirectory(dir);
    const second = syncDirectory(dir);
    const third = syncDirectory(dir);
    // The first may have started before the others' renames: they wait for one of their own, together.
    expect(second).not.toBe(first);
    expect(third).toBe(second);
    await Promise.all([first, second, third]);
    // Nothing is left over: a later caller starts afresh.
    const later = syncDirectory(dir);
    expect(later).not.toBe(second);
    await later;
  });

  it("many messages written into one directory at once are all there; a failed fsync fails every caller sharing it", async () => {
    const dir = path.join(tempRoot(), "spool", "support");
    await Promise.all(Array.from({ length: 40 }, (_, n) => writeFileDurably(path.join(dir, `${n}.eml`), `message ${n}`)));
    expect(readdirSync(dir).sort()).toEqual(Array.from({ length: 40 }, (_, n) => `${n}.eml`).sort());
    expect(readFileSync(path.join(dir, "39.eml"), "utf8")).toBe("message 39");

    const missing = path.join(dir, "missing");
    const outcomes = await Promise.allSettled([syncDirectory(missing), syncDirectory(missing), syncDirectory(missing)]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected", "rejected"]);
    mkdirSync(missing);
    await expect(syncDirectory(missing)).resolves.toBeUndefined();
  });
});
