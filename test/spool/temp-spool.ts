/** A spool on a real SQLite file in a new temp state directory; close the database after each test. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Spool } from "../../src/spool/spool.js";
import type { StateDatabase } from "../../src/store/sqlite/database.js";
import { openSqliteStore, type SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";

export function openTempSpool(): { dir: string; db: StateDatabase; store: SqliteStateStore; spool: Spool } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-spool-"));
  const store = openSqliteStore(dir);
  return { dir, db: store.db, store, spool: new Spool(store, dir) };
}
