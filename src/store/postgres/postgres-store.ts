/**
 * The PostgreSQL state store: every port of src/store/ports.ts on one connection pool, for
 * several replicas sharing their queues. Opening it creates or migrates the schema (under an
 * advisory lock, ./migrations.ts). With a fence (the daemon, once it holds leases), every write
 * of a queue's state is refused (STATE_FENCED) unless this replica holds the queue's lease at
 * its epoch; without one (the CLI's operator commands, `migrate`) writes are not fenced.
 */
import { tmpdir } from "node:os";
import type pg from "pg";
import type { QueueFence } from "../../cluster/ports.js";
import type { StateStore } from "../ports.js";
import { Connection, createPool, storeError, type PostgresConnectionOptions } from "./connection.js";
import { PostgresQueueLeases } from "./leases.js";
import { PostgresMessages } from "./message-store.js";
import { migratePostgres } from "./migrations.js";
import { PostgresActivity, PostgresQueueStatus, PostgresTokenCaches } from "./queue-records.js";
import { PostgresRawMessages } from "./raw-store.js";

export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /** Where parser scratch copies of raw messages go (default: the system temp directory). */
  readonly scratchDir?: string;
  /** Set by the daemon: queue-scoped writes check this replica's lease. */
  readonly fence?: QueueFence;
  /** Told about connections that break while idle (PostgreSQL restarted): logged, never fatal. */
  readonly onIdleError?: (error: Error) => void;
}

export interface PostgresStateStore extends StateStore {
  readonly kind: "postgres";
  /** The queue leases on the same pool. */
  readonly leases: PostgresQueueLeases;
}

/** Opens the store and migrates its schema now: rejects when PostgreSQL cannot be reached. */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStateStore> {
  const store = createPostgresStore(options);
  try {
    await store.ping();
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  return store;
}

/**
 * The store at once, connecting and migrating on its first call (src/store/open-store.ts opens
 * stores synchronously): a daemon started while PostgreSQL is down comes up, reports the store
 * unavailable, and carries on when PostgreSQL answers.
 */
export function createPostgresStore(options: PostgresStoreOptions): PostgresStateStore {
  const pool = createPool(options, options.onIdleError ?? (() => undefined));
  const db = new Connection(pool, options.url, async () => void (await migrate(pool, options.url)));
  // Lease rounds on connections of their own: a renewal never waits for a free connection
  // behind downloads and commits (under load, waiting cost leases and moved queues for nothing).
  const leasePool = createPool({ ...options, maxConnections: 2 }, options.onIdleError ?? (() => undefined));
  const leaseDb = new Connection(leasePool, options.url, () => db.ready());
  const messages = new PostgresMessages(db, options.fence);
  return {
    kind: "postgres",
    messages,
    deliveries: messages,
    serverActions: messages,
    deadLetters: messages,
    retention: messages,
    raw: new PostgresRawMessages(db, options.fence, options.scratchDir ?? tmpdir()),
    queueStatus: new PostgresQueueStatus(db),
    activity: new PostgresActivity(db),
    tokenCaches: new PostgresTokenCaches(db, options.fence),
    leases: new PostgresQueueLeases(leaseDb),
    async ping() {
      await db.query("reach PostgreSQL", "SELECT 1");
    },
    close: async () => {
      await Promise.all([db.end(), leaseDb.end()]);
    },
  };
}

/** Creates or migrates the schema; returns the versions applied (`mailfetchd migrate` reports them). */
export async function migrate(pool: pg.Pool, url: string | undefined): Promise<number[]> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw storeError(error, url, "connect to create or migrate the schema");
  }
  try {
    return await migratePostgres(client);
  } catch (error) {
    throw storeError(error, url, "create or migrate the schema");
  } finally {
    client.release();
  }
}
