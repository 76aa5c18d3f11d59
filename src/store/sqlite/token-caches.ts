/**
 * TokenCacheRows on SQLite: one sealed cache per queue. A write is one fully synced transaction,
 * so a rotated refresh token is on disk before the token is used.
 */
import type { SealedTokenCache, TokenCacheRows } from "../ports.js";
import type { StateDatabase } from "./database.js";
import { inTransaction, settle } from "./guard.js";

export class SqliteTokenCacheRows implements TokenCacheRows {
  constructor(private readonly db: StateDatabase) {}

  read(queue: string): Promise<SealedTokenCache | undefined> {
    return settle(() => {
      const row = this.db.prepare("SELECT key_id, sealed, updated_at FROM token_cache WHERE queue = ?").get(queue) as
        { key_id: string; sealed: Buffer; updated_at: number } | undefined;
      return row && { keyId: row.key_id, sealed: row.sealed, updatedAt: row.updated_at };
    });
  }

  /** IMMEDIATE: the version is read under the write lock, so a `login` in another process cannot slip in between. */
  write(queue: string, keyId: string, sealed: Buffer, expected: number | undefined | "any"): Promise<number | undefined> {
    return inTransaction(this.db, () => {
      const current = (this.db.prepare("SELECT updated_at FROM token_cache WHERE queue = ?").get(queue) as { updated_at: number } | undefined)?.updated_at;
      if (expected !== "any" && current !== expected) return undefined;
      // Strictly increasing per row, so "changed since" never misses a write in the same millisecond.
      const updatedAt = Math.max(Date.now(), (current ?? 0) + 1);
      this.db
        .prepare(
          `INSERT INTO token_cache (queue, key_id, sealed, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (queue) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`,
        )
        .run(queue, keyId, sealed, updatedAt);
      return updatedAt;
    });
  }

  remove(queue: string): Promise<boolean> {
    return settle(() => this.db.prepare("DELETE FROM token_cache WHERE queue = ?").run(queue).changes > 0);
  }

  /** The sign-in watcher looks every 3 s: one query for every queue (a query per queue cost ~1% of a core at 1,000). */
  versions(): Promise<Map<string, number>> {
    return settle(() => {
      const rows = this.db.prepare("SELECT queue, updated_at FROM token_cache").all() as Array<{ queue: string; updated_at: number }>;
      return new Map(rows.map((row) => [row.queue, row.updated_at]));
    });
  }
}
