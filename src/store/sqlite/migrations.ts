/**
 * Numbered schema migrations, applied in order; `PRAGMA user_version` records the last one.
 * Never edit a released migration: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: token caches, cursors, the spool index and per-handler deliveries
  `
  CREATE TABLE token_cache (
    queue       TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    sealed      BLOB NOT NULL,           -- AES-256-GCM, see src/state/secret-box.ts
    updated_at  INTEGER NOT NULL
  );

  CREATE TABLE cursors (
    queue        TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uid_validity TEXT NOT NULL,
    last_uid     INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, folder)
  );

  CREATE TABLE messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- spool order
    id             TEXT NOT NULL,                      -- the stable id (idempotency key)
    queue          TEXT NOT NULL,
    folder         TEXT NOT NULL,
    uid_validity   TEXT NOT NULL,
    uid            INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    internal_date  INTEGER,
    header_message_id TEXT,
    content_sha256 TEXT NOT NULL,
    spooled_at     INTEGER NOT NULL,
    UNIQUE (queue, id)
  );

  CREATE TABLE deliveries (
    message_seq     INTEGER NOT NULL REFERENCES messages(seq) ON DELETE CASCADE,
    handler         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (message_seq, handler)
  );
  CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
  `,
  // 2: each queue's condition, written by the daemon, read by `status` and the HTTP surface
  `
  CREATE TABLE queue_status (
    queue                TEXT PRIMARY KEY,
    state                TEXT NOT NULL,
    last_success_at      INTEGER,
    last_error_code      TEXT,
    last_error_message   TEXT,
    last_error_fix       TEXT,
    last_error_at        INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    token_expires_at     INTEGER,
    updated_at           INTEGER NOT NULL
  );
  `,
  // 3: server-side actions owed after spooling (done in a later session if a crash intervenes),
  //    and messages too large to download (kept as headers only, dead-lettered)
  `
  CREATE TABLE server_actions (
    queue        TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uid_validity TEXT NOT NULL,
    uid          INTEGER NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('seen', 'move', 'delete')),
    target       TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, folder, uid_validity, uid)
  );
  ALTER TABLE messages ADD COLUMN headers_only INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: retention: a delivered message's spool file is removed (pruned_at set); its row stays
  //    longer, as a tombstone that recognises a re-fetch after a UIDVALIDITY change
  `
  ALTER TABLE messages ADD COLUMN pruned_at INTEGER;
  CREATE INDEX messages_spooled_at ON messages (spooled_at);
  `,
  // 5: a message's place in the spool is its source location, no longer its stable id
  //    (two different messages that share Message-ID, Date and From had one id, and the second
  //    was taken for a repeat). `id` keeps naming the spool file: for rows from before this
  //    migration it is their stable id, for new rows a key derived from the source location.
  //    `stable_id` is the id handlers see: computed from the parsed content (NULL until then),
  //    copied from `id` for older rows so ids already handed out stay valid.
  //    A delivery of a message whose content was already spooled (a re-served copy) ends in
  //    the new state 'repeat': the earlier copy, with the same stable id, is delivered instead.
  `
  ALTER TABLE messages ADD COLUMN stable_id TEXT;
  UPDATE messages SET stable_id = id;
  ALTER TABLE messages ADD COLUMN awaiting_refetch INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX messages_stable_id ON messages (queue, stable_id);
  CREATE INDEX messages_source ON messages (queue, folder, uid_validity, uid);
  CREATE INDEX messages_content ON messages (queue, content_sha256);

  CREATE TABLE deliveries_v5 (
    message_seq     INTEGER NOT NULL REFERENCES messages(seq) ON DELETE CASCADE,
    handler         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'dropped', 'repeat')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (message_seq, handler)
  );
  INSERT INTO deliveries_v5 SELECT message_seq, handler, state, attempts, next_attempt_at, last_error, delivered_at FROM deliveries;
  DROP TABLE deliveries;
  ALTER TABLE deliveries_v5 RENAME TO deliveries;
  CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
  `,
  // 6: per queue and UTC hour, deliveries and failures (for the status page's 24-hour chart;
  //    src/state/queue-activity.ts). Delivered counts of the last 24 hours are filled in from
  //    the deliveries, so the chart is not empty after the upgrade; failures were never kept.
  `
  CREATE TABLE queue_activity (
    hour              INTEGER NOT NULL,   -- ms since epoch / 3,600,000 (UTC hours)
    queue             TEXT NOT NULL,
    delivered         INTEGER NOT NULL DEFAULT 0,   -- handlers that accepted a message
    delivery_failures INTEGER NOT NULL DEFAULT 0,   -- attempts retried or parked as dead letters
    fetch_failures    INTEGER NOT NULL DEFAULT 0,   -- fetch cycles that failed
    PRIMARY KEY (hour, queue)
  ) WITHOUT ROWID;
  INSERT INTO queue_activity (hour, queue, delivered)
    SELECT d.delivered_at / 3600000, m.queue, COUNT(*) FROM deliveries d JOIN messages m ON m.seq = d.message_seq
    WHERE d.state = 'delivered' AND d.delivered_at >= (CAST(strftime('%s', 'now') AS INTEGER) - 86400) * 1000
    GROUP BY 1, 2;
  `,
  // 7: source-neutral locations. A message's place
  //    at its source is its source kind, folder and an item id only the source's adapter reads
  //    (IMAP: "<uidValidity>:<uid>", src/imap/imap-location.ts); a folder's cursor is opaque text
  //    (IMAP: "<uidValidity>:<lastUid>"; Graph will store a deltaLink there); owed server-side
  //    actions are addressed by the item id. Rows from before are IMAP's: they are rewritten in
  //    that encoding, so cursors, owed actions and "already spooled?" carry on where they were.
  //    `id` (the spool file's name) is kept as it is.
  `
  ALTER TABLE messages ADD COLUMN source_kind TEXT NOT NULL DEFAULT 'imap';
  ALTER TABLE messages ADD COLUMN item_id TEXT NOT NULL DEFAULT '';
  UPDATE messages SET item_id = uid_validity || ':' || uid;
  DROP INDEX messages_source;
  ALTER TABLE messages DROP COLUMN uid_validity;
  ALTER TABLE messages DROP COLUMN uid;
  CREATE INDEX messages_location ON messages (queue, source_kind, folder, item_id);

  CREATE TABLE cursors_v7 (
    queue        TEXT NOT NULL,
    source_kind  TEXT NOT NULL,
    folder       TEXT NOT NULL,
    position     TEXT NOT NULL,          -- opaque to all but the source's adapter
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, source_kind, folder)
  );
  INSERT INTO cursors_v7 SELECT queue, 'imap', folder, uid_validity || ':' || last_uid, updated_at FROM cursors;
  DROP TABLE cursors;
  ALTER TABLE cursors_v7 RENAME TO cursors;

  CREATE TABLE server_actions_v7 (
    queue        TEXT NOT NULL,
    source_kind  TEXT NOT NULL,
    folder       TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('seen', 'move', 'delete')),
    target       TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (queue, source_kind, folder, item_id)
  );
  INSERT INTO server_actions_v7
    SELECT queue, 'imap', folder, uid_validity || ':' || uid, action, target, created_at FROM server_actions ORDER BY queue, folder, uid_validity, uid;
  DROP TABLE server_actions;
  ALTER TABLE server_actions_v7 RENAME TO server_actions;
  `,
];
