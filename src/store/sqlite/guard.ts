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
