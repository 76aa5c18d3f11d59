/** A spool on a real SQLite file in a new temp state directory; close the database after each test. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Spool } from "../../../src/spool/spool.js";
import { openStateDatabase, type StateDatabase } from "../../../src/state/database.js";

export function openTempSpool(): { dir: string; db: StateDatabase; spool: Spool } {
  const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-spool-"));
  const db = openStateDatabase(dir);
  return { dir, db, spool: new Spool(db, dir) };
}
