/**
 * Every port method of the SQLite adapter runs its statements synchronously (better-sqlite3)
 * and hands back a settled promise: callers await it as they would a remote store's. A failure
 * of the database itself (disk full, read-only file, locked) becomes STATE_UNAVAILABLE, with
 * SQLite's own code in the message so an operator can look it up.
 */
import { MailfetchdError } from "../../errors.js";
import type { StateDatabase } from "./database.js";

export function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (cause) {
    return Promise.reject(stateUnavailable(cause));
  }
}

/** `work` in one transaction (IMMEDIATE: the write lock first, so a concurrent CLI waits rather than fails). */
export function inTransaction<T>(db: StateDatabase, work: () => T): Promise<T> {
  return settle(() => db.transaction(work).immediate());
}

/** Each connection's own synchronous setting, read once: nothing else changes it. */
const configuredSynchronous = new WeakMap<StateDatabase, number>();

/**
 * Runs `write` as a commit that does not wait for an fsync (synchronous=NORMAL), then puts the
 * connection's setting back. In WAL mode such a commit survives a crash of the process (its
 * frames are in the WAL file); a power cut may lose the latest such commits, never consistency,
 * and the next fully synced commit (or a checkpoint) flushes them with it, in order. For writes
 * that are advisory, or that are computed again the same way if lost. better-sqlite3 is
 * synchronous: no other statement runs in between. Inside a transaction the setting is left
 * alone (that transaction's commit decides).
 */
export function withoutFsync<T>(db: StateDatabase, write: () => T): T {
  let synchronous = configuredSynchronous.get(db);
  if (synchronous === undefined) {
    synchronous = db.pragma("synchronous", { simple: true }) as number;
    configuredSynchronous.set(db, synchronous);
  }
  if (db.inTransaction || synchronous <= 1) return write(); // <= 1: already NORMAL or OFF
  db.pragma("synchronous = NORMAL");
  try {
    return write();
  } finally {
    db.pragma(`synchronous = ${synchronous}`);
  }
}

export function stateUnavailable(cause: unknown): unknown {
  if (cause instanceof MailfetchdError) return cause;
  const code = (cause as { code?: unknown })?.code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return cause;
  return new MailfetchdError(`The state database cannot be written (${code}).`, {
    code: "STATE_UNAVAILABLE",
    retryable: true,
    fix: "Free space or fix permissions on state.dir; fetching resumes by itself and nothing is changed on the server meanwhile.",
    cause,
  });
}
