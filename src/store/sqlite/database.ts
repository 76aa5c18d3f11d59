/**
 * The SQLite state database: one file (better-sqlite3) holding token caches, cursors and the
 * spool's index. Only the SQLite adapter (src/store/sqlite/) opens it; the rest of the daemon
 * sees the store ports (src/store/ports.ts).
 */
import Database from "better-sqlite3";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { MailfetchdError } from "../../errors.js";
import { MIGRATIONS } from "./migrations.js";

export type StateDatabase = Database.Database;

export function openStateDatabase(stateDir: string): StateDatabase {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  const file = path.join(stateDir, "state.sqlite");
  const db = new Database(file);
  // The spool's guarantee rests on these: WAL for concurrent readers, FULL so a commit is on
  // disk before we touch the server or advance a cursor, a busy timeout for CLI commands
  // (status, login) that open the same file while the daemon runs.
  db.pragma("busy_timeout = 5000"); // first: switching to WAL needs a lock another process may hold
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      chmodSync(file + suffix, 0o600);
    } catch {
      // -wal/-shm appear lazily; SQLite creates them with the main file's mode.
    }
  }
  migrate(db);
  cacheStatements(db);
  return db;
}

/**
 * The database opened read-only, for commands that run beside the daemon (`status`); undefined
 * when the daemon has never run with this state directory. Read-only never migrates, creates or
 * changes anything; WAL lets it read while the daemon writes, and the busy timeout rides out the
 * daemon's checkpoints. Run as root, SQLite gives any file it must create (the -shm index) to
 * the database's owner, so the daemon's user keeps access.
 */
export function openStateDatabaseReadOnly(stateDir: string): StateDatabase | undefined {
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
  cacheStatements(db);
  return db;
}

/**
 * Each SQL text is compiled once: the subsystems call prepare() at every use, which kept the
 * code plain but compiled the same statements ~1,000 times a minute with 1,000 queues. Shared
 * statements must not be switched into another mode (pluck, raw, expand) nor iterated: nothing
 * here does either.
 */
function cacheStatements(db: StateDatabase): void {
  const compile = db.prepare.bind(db);
  const statements = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = compile(sql);
      statements.set(sql, statement);
    }
    return statement;
  }) as StateDatabase["prepare"];
}

function migrate(db: StateDatabase): void {
  for (const [index, sql] of MIGRATIONS.entries()) {
    const version = index + 1;
    // IMMEDIATE takes the write lock before the version is read: the daemon and a CLI command
    // (login, status) opening a new state directory at the same moment migrate it once.
    db.transaction(() => {
      if ((db.pragma("user_version", { simple: true }) as number) >= version) return;
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    }).immediate();
  }
}
