/**
 * Writes that survive a crash or power loss at any instant: a temp file in the same
 * directory, fsync, rename over the target, fsync the directory. A reader sees the old file
 * or the whole new one, never a part. The directory is created (owner only) when missing.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";

export async function writeFileDurably(file: string, data: Buffer | string, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.tmp-${path.basename(file)}-${randomBytes(6).toString("hex")}`);
  const handle = await openCreatingDirectory(temp, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

interface DirectorySync {
  readonly running: Promise<void>;
  /** The next fsync, shared by every caller that arrived while `running` ran. */
  next?: Promise<void>;
}

/** Per directory, the fsync under way: the spool writes up to 16 messages into one directory at once. */
const directorySyncs = new Map<string, DirectorySync>();

/**
 * Makes the entries of `dir` (a file renamed into it) durable. Callers arriving while an fsync
 * of the same directory runs share the next one: it starts after all of their renames (the one
 * running may have started before theirs), so each still waits for an fsync that covers its own
 * entry, and a burst of N messages costs two directory fsyncs, not N (issue 17). A failed fsync
 * fails every caller that shared it.
 */
export function syncDirectory(dir: string): Promise<void> {
  const current = directorySyncs.get(dir);
  if (current === undefined) return startDirectorySync(dir);
  current.next ??= current.running.catch(() => undefined).then(() => startDirectorySync(dir));
  return current.next;
}

function startDirectorySync(dir: string): Promise<void> {
  const running = fsyncDirectory(dir).finally(() => {
    if (directorySyncs.get(dir) === sync) directorySyncs.delete(dir);
  });
  const sync: DirectorySync = { running };
  directorySyncs.set(dir, sync);
  return running;
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function ensurePrivateDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Creates `file` ("wx"), and its directory (owner only) when that is missing. The directory is
 * made only on ENOENT rather than before every write: a recursive mkdir of a directory that
 * exists costs ~0.15 ms of the event loop, once per spooled message (issue 17).
 */
export async function openCreatingDirectory(file: string, mode: number): Promise<FileHandle> {
  try {
    return await open(file, "wx", mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await ensurePrivateDirectory(path.dirname(file));
  return open(file, "wx", mode);
}
