/**
 * Writes each message to a directory of its own:
 *
 *   <path>/<queue>/<id>/message.eml          the raw message, byte for byte
 *   <path>/<queue>/<id>/message.json         the parsed message (see message-document.ts)
 *   <path>/<queue>/<id>/attachments/<name>   each attachment, under its safe file name
 *
 * A message directory appears complete or not at all: it is built as a temp directory beside
 * its final place and renamed (atomic on one file system), with every file and directory
 * fsynced first, so a crash or power loss never leaves a half-written message that a consumer
 * could pick up. A redelivery (at-least-once) of an id whose directory exists is a no-op.
 *
 * The raw message and big attachments are files already (the spool's, the parser's scratch),
 * never read into memory here. message.eml is a hard link to the spool's file, and a big
 * attachment one to its scratch file, when both are on one file system: no byte is copied (the
 * spool's file is durable already; a scratch file is fsynced here). Elsewhere the kernel copies
 * (a reflink where the file system can). So consumers must not modify these files in place
 * (README "Directory handler"). The files are written first and fsynced together: one journal
 * commit for all rather than one per file.
 *
 * A crash (SIGKILL, power loss) mid-write leaves a temp directory behind, never a message under
 * its final name. The queue's start (or else its first delivery) sweeps such leftovers: every temp
 * directory of this handler's naming that no delivery in this process is writing and that was
 * last changed before the handler was created (so not one another process is writing now).
 */
import { randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { constants } from "node:fs";
import { copyFile, link, lstat, mkdir, open, readdir, readlink, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";

import { MailfetchdError } from "../errors.js";
import type { DeliverableMessage, DeliveryContext, Handler, Logger, ParsedAttachment, QueueIdentity, RawMessage } from "../interfaces.js";
import { toMessageDocument } from "./message-document.js";
import { safeFileName, uniqueFileName } from "../support/safe-filename.js";

export interface DirectoryHandlerOptions {
  /** The handler's name in logs and status; default "directory". */
  readonly name?: string;
  /** The output root; created if missing. */
  readonly path: string;
}

// The output holds customer mail: owner only.
const DIRECTORY_MODE = 0o700;
const FILE_MODE = 0o600;
const TEMP_PREFIX = ".tmp-";
/** Only names this handler makes: `.tmp-<id>-<12 hex>`; a consumer's own `.tmp-notes` stays. */
const OWN_TEMP_NAME = /^\.tmp-.+-[0-9a-f]{12}$/;
/**
 * Temp directories being written by this process, across handler instances: two handlers may
 * share an output path, and a reload builds a new handler while the old one finishes.
 */
const tempDirsInProgress = new Set<string>();
const RAW_FILE = "message.eml";
const JSON_FILE = "message.json";
const ATTACHMENTS_DIR = "attachments";

export function createDirectoryHandler(options: DirectoryHandlerOptions): Handler {
  const root = resolve(options.path);
  // Leftovers of a crashed process were last changed before this process built its handlers.
  const createdAt = Date.now();
  // One leftover sweep per queue directory, shared by the start and concurrent first deliveries.
  const sweeps = new Map<string, Promise<void>>();
  const sweepOnce = (queueDir: string, logger: Logger): Promise<void> => {
    let sweep = sweeps.get(queueDir);
    if (sweep === undefined) {
      sweep = removeLeftoverTempDirs(queueDir, createdAt, logger);
      sweeps.set(queueDir, sweep);
    }
    return sweep;
  };

  return {
    name: options.name ?? "directory",

    // At start, not only at the first delivery: a queue with nothing left to deliver after a
    // crash would otherwise keep the leftovers until new mail comes.
    async start(queue: QueueIdentity, logger: Logger): Promise<void> {
      assertSafeSegment(queue.name, "queue name");
      await sweepOnce(join(root, queue.name), logger);
    },

    async deliver(message: DeliverableMessage, context: DeliveryContext): Promise<void> {
      // The queue name comes from the config and the id from the spool, so an unsafe one is
      // our bug, not the sender's: a plain Error, never a silent rename.
      assertSafeSegment(message.queue.name, "queue name");
      assertSafeSegment(message.id, "message id");
      context.signal.throwIfAborted();

      const queueDir = join(root, message.queue.name);
      const finalDir = join(queueDir, message.id);
      try {
        await ensureQueueDirectory(queueDir, root);
        await sweepOnce(queueDir, context.logger);

        if (await isExistingDirectory(finalDir)) {
          context.logger.debug({ id: message.id, dir: finalDir }, "message directory exists already; redelivery skipped");
          return;
        }
        const outcome = await writeMessageDirectory(message, queueDir, finalDir, context.signal);
        context.logger.debug({ id: message.id, dir: finalDir, outcome }, "message directory written");
      } catch (error) {
        if (context.signal.aborted && error === context.signal.reason) throw error;
        throw storageError(error, message.id, finalDir);
      }
    },
  };
}

async function writeMessageDirectory(message: DeliverableMessage, queueDir: string, finalDir: string, signal: AbortSignal): Promise<"written" | "duplicate"> {
  const tempDir = join(queueDir, tempName(message.id));
  tempDirsInProgress.add(tempDir);
  try {
    await mkdir(tempDir, { mode: DIRECTORY_MODE });
    const written: string[] = [];
    const rawFile = join(tempDir, RAW_FILE);
    if ((await writeRaw(rawFile, message.raw)) === "unsynced") written.push(rawFile);

    const attachmentsDir = join(tempDir, ATTACHMENTS_DIR);
    await mkdir(attachmentsDir, { mode: DIRECTORY_MODE });
    const names = attachmentFileNames(message.parsed.attachments);
    for (const [index, attachment] of message.parsed.attachments.entries()) {
      signal.throwIfAborted();
      const name = names[index] ?? `attachment-${index + 1}`;
      const target = join(attachmentsDir, name);
      // Belt and braces: safeFileName already guarantees this.
      if (dirname(target) !== attachmentsDir) throw new Error(`attachment name ${JSON.stringify(name)} escapes its directory`);
      await writeAttachment(target, attachment);
      written.push(target);
    }

    const document = toMessageDocument(
      message,
      names.map((name) => `${ATTACHMENTS_DIR}/${name}`),
      { rawPath: RAW_FILE },
    );
    const documentFile = join(tempDir, JSON_FILE);
    await writeNewFile(documentFile, Buffer.from(`${JSON.stringify(document, null, 2)}\n`, "utf8"));
    written.push(documentFile);

    await Promise.all(written.map(syncFile));
    await Promise.all([syncDirectory(attachmentsDir), syncDirectory(tempDir)]);

    try {
      // Checked again at the last moment: a link swapped in while the files were written.
      await refuseSymlink(queueDir, dirname(queueDir));
      await rename(tempDir, finalDir);
    } catch (error) {
      // A concurrent delivery of the same id got there first: its directory is complete.
      if ((errorCode(error) === "ENOTEMPTY" || errorCode(error) === "EEXIST") && (await isExistingDirectory(finalDir))) {
        await rm(tempDir, { recursive: true, force: true });
        return "duplicate";
      }
      throw error;
    }
    // The rename is durable only once the directory holding both names is synced.
    await syncDirectory(queueDir);
    return "written";
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  } finally {
    tempDirsInProgress.delete(tempDir);
  }
}

function tempName(label: string): string {
  return `${TEMP_PREFIX}${label}-${randomBytes(6).toString("hex")}`;
}

/** Safe, unique names for the attachments, in order. Names from MailparserParser come through unchanged. */
function attachmentFileNames(attachments: readonly ParsedAttachment[]): string[] {
  const taken = new Set<string>();
  return attachments.map((attachment, index) => uniqueFileName(safeFileName(attachment.filename, `attachment-${index + 1}`), taken));
}

function assertSafeSegment(value: string, what: string): void {
  if (typeof value !== "string" || value === "" || value.startsWith(".") || safeFileName(value, "") !== value) {
    throw new Error(`Directory handler: ${what} ${JSON.stringify(String(value).slice(0, 100))} is not a safe path segment`);
  }
}

/** Creates `dir` (and missing parents) and makes the new entries durable. */
async function ensureDirectory(dir: string): Promise<void> {
  let firstCreated: string | undefined;
  try {
    firstCreated = await mkdir(dir, { recursive: true, mode: DIRECTORY_MODE });
  } catch (error) {
    // A recursive mkdir reports ENOENT when the real trouble is a read-only or forbidden
    // parent; a plain mkdir of the missing directory tells which, so the fix names it.
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    await mkdir(dir, { mode: DIRECTORY_MODE });
    throw error;
  }
  if (firstCreated === undefined) return;
  for (let created = dir; ; created = dirname(created)) {
    await syncDirectory(dirname(created));
    if (created === firstCreated || dirname(created) === created) break;
  }
}

/**
 * The queue's directory, made when missing; a symbolic link there is refused. It exists after
 * the queue's first message, which one lstat tells: a recursive mkdir before every message cost
 * ~0.14 ms of the event loop each (issue 17).
 */
async function ensureQueueDirectory(queueDir: string, root: string): Promise<void> {
  try {
    await refuseSymlink(queueDir, root);
    return;
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
  }
  await ensureDirectory(queueDir);
  await refuseSymlink(queueDir, root);
}

/** COPYFILE_EXCL: like "wx", never overwrite; FICLONE: share blocks where the file system can. */
const COPY_FLAGS = constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE;

/** Link failures that a copy gets around: another file system, no hard links there, link limits. */
const LINK_FALLBACK = new Set(["EXDEV", "EPERM", "EACCES", "EMLINK", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** "durable": linked to the spool's fsynced file; "unsynced": new data that still needs an fsync. */
async function writeRaw(path: string, raw: RawMessage): Promise<"durable" | "unsynced"> {
  if (raw.file !== undefined) return (await linkOrCopy(raw.file, path)) === "linked" ? "durable" : "unsynced";
  await writeNewFile(path, await raw.read());
  return "unsynced";
}

/**
 * A big attachment is a parser scratch file already: linked like message.eml rather than copied
 * (issue 17: the copy read and wrote every byte of it again). Unlike the spool's file, a scratch
 * file was never fsynced, so it is in the caller's list of files to sync either way.
 */
async function writeAttachment(path: string, attachment: ParsedAttachment): Promise<void> {
  if (attachment.content === undefined && attachment.file !== undefined) await linkOrCopy(attachment.file, path);
  else await writeNewFile(path, attachment.content ?? Buffer.alloc(0));
}

/** A hard link to `from` where the file system allows one; a copy (never overwriting) elsewhere. */
async function linkOrCopy(from: string, to: string): Promise<"linked" | "copied"> {
  try {
    await link(from, to);
    return "linked";
  } catch (error) {
    if (!LINK_FALLBACK.has(errorCode(error) ?? "")) throw error;
  }
  await copyFile(from, to, COPY_FLAGS);
  return "copied";
}

async function writeNewFile(path: string, data: Buffer): Promise<void> {
  // "wx": never follow or overwrite something already there (the temp dir is ours alone).
  const handle = await open(path, "wx", FILE_MODE);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems (some FUSE and network mounts) cannot fsync a directory at all.
    if (errorCode(error) !== "EINVAL") throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Below the handler's path, every directory is mailfetchd's own: a symbolic link there (a
 * local user planting `<path>/<queue>` -> elsewhere) would send customer mail where nobody
 * configured it to go, so it is refused, never followed. The path itself may be a link: the
 * operator chose it.
 */
async function refuseSymlink(path: string, handlerPath: string): Promise<void> {
  const stats = await lstat(path);
  if (!stats.isSymbolicLink()) return;
  const target = await readlink(path).catch(() => "?");
  throw new MailfetchdError(
    `Directory handler: ${path} is a symbolic link (to ${target}); refused: below the handler's path ${handlerPath} mail is written only into real directories, so a link planted there cannot send it elsewhere. The message waits and is retried.`,
    {
      code: "HANDLER_FAILED",
      retryable: true,
      fix: `Remove the link (rm ${path}) so mailfetchd creates the directory itself, and find out who made it; to write elsewhere, set the handler's path to that place.`,
    },
  );
}

async function isExistingDirectory(path: string): Promise<boolean> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return false;
    throw error;
  }
  if (stats.isSymbolicLink()) await refuseSymlink(path, dirname(dirname(path)));
  if (stats.isDirectory()) return true;
  throw new MailfetchdError(`Directory handler: ${path} exists but is not a directory`, {
    code: "HANDLER_FAILED",
    retryable: true,
    fix: `Move ${path} out of the output directory; only mailfetchd should write there.`,
  });
}

/**
 * Removes the temp directories a crash left in `queueDir`. Each is first renamed to a name of
 * the sweep's own (atomic): a writer elsewhere that still owned it then fails its rename and
 * retries, rather than ever renaming a directory that is being emptied into its final place.
 * A crash mid-sweep leaves a temp name of our own, swept next time. Never throws: a failed
 * sweep must not stop delivery.
 */
async function removeLeftoverTempDirs(queueDir: string, before: number, logger: Logger): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(queueDir, { withFileTypes: true });
  } catch (error) {
    if (errorCode(error) === "ENOENT") return; // nothing written to this queue yet
    logger.warn({ dir: queueDir, err: error }, "could not list the output directory for temp dirs left by a crash");
    return;
  }
  let removed = 0;
  for (const entry of entries) {
    if (!OWN_TEMP_NAME.test(entry.name) || !entry.isDirectory()) continue;
    const path = join(queueDir, entry.name);
    if (tempDirsInProgress.has(path)) continue;
    try {
      if ((await lstat(path)).mtimeMs >= before) continue;
      const claimed = join(queueDir, tempName("swept"));
      await rename(path, claimed);
      await rm(claimed, { recursive: true, force: true });
      removed++;
    } catch (error) {
      // Gone already: its writer finished or another sweep took it.
      if (errorCode(error) !== "ENOENT") logger.warn({ dir: path, err: error }, "could not remove a temp dir left by a crash");
    }
  }
  if (removed > 0) logger.info({ dir: queueDir, removed }, "removed temp dirs left by an interrupted delivery");
}

function storageError(error: unknown, id: string, dir: string): MailfetchdError {
  if (error instanceof MailfetchdError) return error;
  const code = errorCode(error);
  const detail = code ?? (error instanceof Error ? error.message : String(error));
  return new MailfetchdError(`Directory handler could not write message ${id} to ${dir}: ${detail}`, {
    code: "HANDLER_FAILED",
    // Storage trouble (full disk, permissions, read-only mount) is fixed outside mailfetchd;
    // retry with backoff rather than dead-lettering mail that was fetched correctly.
    retryable: true,
    fix: fixFor(code, dir),
    cause: error,
  });
}

function fixFor(code: string | undefined, dir: string): string | undefined {
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return `Free space (or raise the quota) on the file system holding ${dir}.`;
    case "EACCES":
    case "EPERM":
      return `Make ${dirname(dirname(dir))} writable by the user mailfetchd runs as.`;
    case "EROFS":
      return `The file system holding ${dir} is read-only: remount it read-write or point the handler's path elsewhere.`;
    case "ENOTDIR":
    case "EEXIST":
      return `A component of ${dir} is a file, not a directory: move it away or change the handler's path.`;
    default:
      return undefined;
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
