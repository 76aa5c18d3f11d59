/**
 * The PostgreSQL schema, as numbered migrations applied in order; `mailfetchd_schema` records
 * the last one. Never edit a released migration: append a new one.
 *
 * Same tables and meanings as the SQLite store (src/store/sqlite/migrations.ts), at its latest
 * schema, plus what several replicas share: queue leases with their fencing epochs, the live
 * replicas, and the raw message bytes (so a message survives the replica that fetched it).
 * Times are milliseconds since the epoch (bigint), as the ports speak them, except lease times:
 * those are the database's own clock (timestamptz, now()), so replicas' clocks cannot disagree.
 */
import type pg from "pg";

export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: everything, at once
  `
  CREATE TABLE token_cache (
    queue       text PRIMARY KEY,
    key_id      text NOT NULL,
    sealed      bytea NOT NULL,            -- AES-256-GCM, src/state/secret-box.ts: the store never sees a token
    updated_at  bigint NOT NULL            -- the row's version, strictly increasing
  );

  CREATE TABLE cursors (
    queue        text NOT NULL,
    source_kind  text NOT NULL,
    folder       text NOT NULL,
    position     text NOT NULL,            -- opaque to all but the source's adapter
    updated_at   bigint NOT NULL,
    PRIMARY KEY (queue, source_kind, folder)
  );

  CREATE TABLE messages (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- spool order
    id                text NOT NULL,       -- the spool key: names the raw bytes
    stable_id         text,                -- the id handlers see (NULL until parsed)
    queue             text NOT NULL,
    source_kind       text NOT NULL,
    folder            text NOT NULL,
    item_id           text NOT NULL,
    size              bigint NOT NULL,
    internal_date     bigint,
    header_message_id text,
    content_sha256    text NOT NULL,
    spooled_at        bigint NOT NULL,
    headers_only      boolean NOT NULL DEFAULT false,
    awaiting_refetch  boolean NOT NULL DEFAULT false,
    pruned_at         bigint
  );
  CREATE INDEX messages_location ON messages (queue, source_kind, folder, item_id);
  CREATE INDEX messages_stable_id ON messages (queue, stable_id);
  CREATE INDEX messages_content ON messages (queue, content_sha256);
  CREATE INDEX messages_spooled_at ON messages (spooled_at);

  CREATE TABLE deliveries (
    message_seq     bigint NOT NULL REFERENCES messages (seq) ON DELETE CASCADE,
    handler         text NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'dropped', 'repeat')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    last_error      text,
    delivered_at    bigint,
    PRIMARY KEY (message_seq, handler)
  );
  -- Only the few waiting rows, not the millions delivered.
  CREATE INDEX deliveries_waiting ON deliveries (message_seq) WHERE state IN ('pending', 'dead');

  CREATE TABLE server_actions (
    queue        text NOT NULL,
    source_kind  text NOT NULL,
    folder       text NOT NULL,
    item_id      text NOT NULL,
    action       text NOT NULL CHECK (action IN ('seen', 'move', 'delete')),
    target       text,
    created_at   bigint NOT NULL,
    owed_order   bigint GENERATED ALWAYS AS IDENTITY,   -- the order they were owed in
    PRIMARY KEY (queue, source_kind, folder, item_id)
  );

  CREATE TABLE queue_status (
    queue                text PRIMARY KEY,
    state                text NOT NULL,
    last_success_at      bigint,
    last_error_code      text,
    last_error_message   text,
    last_error_fix       text,
    last_error_at        bigint,
    consecutive_failures integer NOT NULL DEFAULT 0,
    token_expires_at     bigint,
    updated_at           bigint NOT NULL
  );

  CREATE TABLE queue_activity (
    hour              bigint NOT NULL,     -- ms since epoch / 3,600,000 (UTC hours)
    queue             text NOT NULL,
    delivered         integer NOT NULL DEFAULT 0,
    delivery_failures integer NOT NULL DEFAULT 0,
    fetch_failures    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, queue)
  );

  -- Raw messages in parts of at most 1 MiB: written as they download (bounded memory), read in order.
  CREATE TABLE raw_parts (
    queue  text NOT NULL,
    key    text NOT NULL,
    part   integer NOT NULL,
    bytes  bytea NOT NULL,
    PRIMARY KEY (queue, key, part)
  );

  -- One row per queue: which replica owns it, at which fencing epoch, until when.
  CREATE TABLE queue_leases (
    queue        text PRIMARY KEY,
    owner        text,                     -- replica id; NULL once released
    epoch        bigint NOT NULL DEFAULT 0,  -- grows on every change of owner: the fencing token
    lease_until  timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at  timestamptz,
    renewed_at   timestamptz,
    takeovers    bigint NOT NULL DEFAULT 0  -- times the queue changed hands after its owner's lease ran out
  );

  -- Live replicas (heartbeat), so each can compute the same spread of queues.
  CREATE TABLE replicas (
    id           text PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    seen_until   timestamptz NOT NULL
  );
  `,
];

/** Any fixed number: the key of the advisory lock two starting replicas migrate under. */
const MIGRATION_LOCK = 0x6d61696c; // "mail"

/**
 * Applies the missing migrations in one transaction under a transaction-scoped advisory lock
 * (safe behind PgBouncer in transaction mode): two replicas starting together migrate once,
 * the second waits and finds nothing to do. Returns the versions applied.
 */
export async function migratePostgres(client: pg.PoolClient): Promise<number[]> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await client.query("CREATE TABLE IF NOT EXISTS mailfetchd_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
    const { rows } = await client.query<{ version: number | null }>("SELECT max(version) AS version FROM mailfetchd_schema");
    const current = rows[0]?.version ?? 0;
    const applied: number[] = [];
    for (const [index, sql] of POSTGRES_MIGRATIONS.entries()) {
      const version = index + 1;
      if (version <= current) continue;
      await client.query(sql);
      await client.query("INSERT INTO mailfetchd_schema (version) VALUES ($1)", [version]);
      applied.push(version);
    }
    await client.query("COMMIT");
    return applied;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** The schema version of the database (0 before the first migration). */
export async function postgresSchemaVersion(client: pg.PoolClient | pg.Pool): Promise<number> {
  const { rows } = await client.query<{ exists: boolean }>("SELECT to_regclass('mailfetchd_schema') IS NOT NULL AS exists");
  if (!rows[0]?.exists) return 0;
  const version = await client.query<{ version: number | null }>("SELECT max(version) AS version FROM mailfetchd_schema");
  return version.rows[0]?.version ?? 0;
}
