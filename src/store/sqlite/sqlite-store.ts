/**
 * The SQLite adapter of the state-store ports (src/store/ports.ts): one database file in the
 * state directory (synchronous=FULL, WAL, cached statements) and the spool directory of raw
 * message files beside it. The default store: one daemon per state directory.
 */
import type { StateStore } from "../ports.js";
import { SqliteActivityStore } from "./activity.js";
import { openStateDatabase, openStateDatabaseReadOnly, type StateDatabase } from "./database.js";
import { SqliteDeadLetterStore } from "./dead-letters.js";
import { SqliteDeliveryStore } from "./deliveries.js";
import { settle } from "./guard.js";
import { SqliteMessageStore } from "./messages.js";
import { SqliteQueueStatusStore } from "./queue-status.js";
import { SpoolDirectory } from "./raw-files.js";
import { SqliteRetentionStore } from "./retention.js";
import { SqliteServerActionStore } from "./server-actions.js";
import { SqliteTokenCacheRows } from "./token-caches.js";

export class SqliteStateStore implements StateStore {
  readonly kind = "sqlite";
  readonly messages: SqliteMessageStore;
  readonly deliveries: SqliteDeliveryStore;
  readonly serverActions: SqliteServerActionStore;
  readonly deadLetters: SqliteDeadLetterStore;
  readonly retention: SqliteRetentionStore;
  readonly raw: SpoolDirectory;
  readonly queueStatus: SqliteQueueStatusStore;
  readonly activity: SqliteActivityStore;
  readonly tokenCaches: SqliteTokenCacheRows;

  /** `db` is public for the adapter's own tests (migrations, schema); the daemon never reaches for it. */
  constructor(
    readonly db: StateDatabase,
    stateDir: string,
  ) {
    this.messages = new SqliteMessageStore(db);
    this.deliveries = new SqliteDeliveryStore(db);
    this.serverActions = new SqliteServerActionStore(db);
    this.deadLetters = new SqliteDeadLetterStore(db);
    this.retention = new SqliteRetentionStore(db);
    this.raw = new SpoolDirectory(stateDir);
    this.queueStatus = new SqliteQueueStatusStore(db);
    this.activity = new SqliteActivityStore(db);
    this.tokenCaches = new SqliteTokenCacheRows(db);
  }

  ping(): Promise<void> {
    return settle(() => void this.db.prepare("SELECT 1").get());
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Opens (creating and migrating it when needed) the state database in `stateDir`. */
export function openSqliteStore(stateDir: string): SqliteStateStore {
  return new SqliteStateStore(openStateDatabase(stateDir), stateDir);
}

/**
 * Opens an existing state database read-only, for commands beside the running daemon
 * (`status`); undefined when the daemon has never run with this state directory.
 */
export function openSqliteStoreReadOnly(stateDir: string): SqliteStateStore | undefined {
  const db = openStateDatabaseReadOnly(stateDir);
  return db && new SqliteStateStore(db, stateDir);
}
