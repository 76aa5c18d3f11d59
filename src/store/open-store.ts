/**
 * The one place a state store is chosen: SQLite in state.dir, or PostgreSQL (src/store/postgres/)
 * when the config has `state.postgres`, and nowhere else: every other part of the daemon sees
 * only the ports (src/store/ports.ts).
 *
 * Opening is synchronous so the composition root can build everything in its constructor; an
 * adapter that must connect does so on its first call.
 */
import path from "node:path";
import type { QueueFence, QueueLeaseStore } from "../cluster/ports.js";
import type { PostgresConfig } from "../config/schema.js";
import type { StateStore } from "./ports.js";
import { createPostgresStore } from "./postgres/postgres-store.js";
import { openSqliteStore, openSqliteStoreReadOnly } from "./sqlite/sqlite-store.js";

export interface StoreConfig {
  readonly stateDir: string;
  readonly postgres?: PostgresConfig;
}

export interface SharedStoreOptions {
  /** The daemon's leases: a shared store refuses writes to queues this replica does not hold. */
  readonly fence?: QueueFence;
  /** A shared store's connection broke while idle (logged, never fatal). */
  readonly onConnectionError?: (error: Error) => void;
}

/** A store shared by several replicas also keeps their queue leases. */
export type OpenedStateStore = StateStore & { readonly leases?: QueueLeaseStore };

export function openStateStore(config: StoreConfig, options: SharedStoreOptions = {}): OpenedStateStore {
  if (config.postgres) return openPostgres(config.stateDir, config.postgres, options);
  return openSqliteStore(config.stateDir);
}

/** For commands beside a running daemon (`status`): reads only; undefined when there is no state yet. */
export function openStateStoreReadOnly(config: StoreConfig): OpenedStateStore | undefined {
  // PostgreSQL serves readers beside writers by itself; `status` only reads.
  if (config.postgres) return openPostgres(config.stateDir, config.postgres, {});
  return openSqliteStoreReadOnly(config.stateDir);
}

function openPostgres(stateDir: string, postgres: PostgresConfig, options: SharedStoreOptions): OpenedStateStore {
  return createPostgresStore({
    ...postgres,
    // Parser scratch copies of raw messages: beside the daemon's other scratch files, private.
    scratchDir: path.join(stateDir, "scratch", "raw"),
    ...(options.fence ? { fence: options.fence } : {}),
    ...(options.onConnectionError ? { onIdleError: options.onConnectionError } : {}),
  });
}
