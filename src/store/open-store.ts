/**
 * The one place a state store is chosen: SQLite in state.dir today. A second adapter (e.g.
 * PostgreSQL, src/store/postgres/) is picked here from the config, and nowhere else: every
 * other part of the daemon sees only the ports (src/store/ports.ts).
 *
 * Opening is synchronous so the composition root can build everything in its constructor; an
 * adapter that must connect does so on its first call.
 */
import type { StateStore } from "./ports.js";
import { openSqliteStore, openSqliteStoreReadOnly } from "./sqlite/sqlite-store.js";

export interface StoreConfig {
  readonly stateDir: string;
}

export function openStateStore(config: StoreConfig): StateStore {
  return openSqliteStore(config.stateDir);
}

/** For commands beside a running daemon (`status`): reads only; undefined when there is no state yet. */
export function openStateStoreReadOnly(config: StoreConfig): StateStore | undefined {
  return openSqliteStoreReadOnly(config.stateDir);
}
