/** A state database as an older release left it: the first `version` migrations applied, no more. */
import Database from "better-sqlite3";
import path from "node:path";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";

export function databaseAtSchema(dir: string, version: number): Database.Database {
  const db = new Database(path.join(dir, "state.sqlite"));
  for (const [index, sql] of MIGRATIONS.slice(0, version).entries()) {
    db.exec(sql);
    db.pragma(`user_version = ${index + 1}`);
  }
  return db;
}
