/**
 * The state database opened read-only, for commands that run beside the daemon (`status`).
 * Read-only never migrates, creates or changes anything; WAL lets it read while the daemon
 * writes, and the busy timeout rides out the daemon's checkpoints. Run as root, SQLite gives
 * any file it must create (the -shm index) to the database's owner, so the daemon's user
 * keeps access.
 */
import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import path from "node:path";
import { MailfetchdError } from "../errors.js";
import type { StateDatabase } from "../state/database.js";

/** undefined when the daemon has never run with this state directory. */
export function openStateReadOnly(stateDir: string): StateDatabase | undefined {
  const file = path.join(stateDir, "state.sqlite");
  if (!existsSync(file)) return undefined;
  let db: StateDatabase;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    db.prepare("SELECT 1 FROM queue_status LIMIT 1").get();
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? "error";
    throw new MailfetchdError(`Cannot read the state database ${file} (${code}).`, {
      code: "STATE_NOT_FOUND",
      retryable: code === "SQLITE_BUSY",
      fix: /CANTOPEN|EACCES|PERM/.test(code)
        ? "Run this command as the daemon's user or as root (the state directory is private to the daemon, mode 0700)."
        : "Check state.dir in the config; if the daemon is an older version, start it once so it upgrades its state.",
      cause,
    });
  }
  return db;
}
