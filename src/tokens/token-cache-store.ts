/**
 * Token caches in the state database, sealed with the SecretBox, one row per queue, exposed
 * to MSAL as its cache plugin.
 *
 * MSAL calls afterCacheAccess right after every token response, so a rotated refresh token is
 * written (one synchronous, fully synced SQLite transaction) before the token is used: a crash
 * between a refresh and its write cannot lose the sign-in.
 */
import type { ICachePlugin, TokenCacheContext } from "@azure/msal-node";
import type { StateDatabase } from "../state/database.js";
import type { SecretBox } from "../state/secret-box.js";

export class TokenCacheStore {
  /** updated_at of the rows this process wrote: a different value was written by someone else (`login`). */
  private readonly ownWrites = new Map<string, number>();

  constructor(
    private readonly db: StateDatabase,
    private readonly box: SecretBox,
    /** Told the tokens a cache holds, so logs can be scrubbed of them. */
    private readonly onSecrets: (queue: string, secrets: string[]) => void = () => {},
  ) {}

  read(queue: string): string | undefined {
    const row = this.db.prepare("SELECT key_id, sealed FROM token_cache WHERE queue = ?").get(queue) as
      | { key_id: string; sealed: Buffer }
      | undefined;
    if (!row) return undefined;
    return this.box.open({ keyId: row.key_id, data: row.sealed }, aad(queue)).toString("utf8");
  }

  /** Seals with the key file's first key, so a rotated key replaces the old one row by row. */
  write(queue: string, serializedCache: string): void {
    const sealed = this.box.seal(Buffer.from(serializedCache, "utf8"), aad(queue));
    // Strictly increasing per row, so "changed since" never misses a write in the same millisecond.
    const updatedAt = Math.max(Date.now(), (this.updatedAt(queue) ?? 0) + 1);
    this.db
      .prepare(
        `INSERT INTO token_cache (queue, key_id, sealed, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (queue) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`,
      )
      .run(queue, sealed.keyId, sealed.data, updatedAt);
    this.ownWrites.set(queue, updatedAt);
  }

  remove(queue: string): boolean {
    this.ownWrites.delete(queue);
    return removeTokenCache(this.db, queue);
  }

  /** The key id a queue's cache is sealed with (for `check` and key rotation). */
  keyIdOf(queue: string): string | undefined {
    const row = this.db.prepare("SELECT key_id FROM token_cache WHERE queue = ?").get(queue) as { key_id: string } | undefined;
    return row?.key_id;
  }

  /** Whether this process wrote the row's current version (false after a `login` by the CLI). */
  isOwnWrite(queue: string, updatedAt: number | undefined): boolean {
    return updatedAt !== undefined && this.ownWrites.get(queue) === updatedAt;
  }

  /** When the row last changed: lets a running daemon notice a `login` done by the CLI. */
  updatedAt(queue: string): number | undefined {
    const row = this.db.prepare("SELECT updated_at FROM token_cache WHERE queue = ?").get(queue) as { updated_at: number } | undefined;
    return row?.updated_at;
  }

  /**
   * Every row's updated_at in one query: the sign-in watcher looks every 3 s, and a query per
   * queue (1,000 of them) cost ~1% of a core on its own.
   */
  allUpdatedAt(): Map<string, number> {
    const rows = this.db.prepare("SELECT queue, updated_at FROM token_cache").all() as Array<{ queue: string; updated_at: number }>;
    return new Map(rows.map((row) => [row.queue, row.updated_at]));
  }

  pluginFor(queue: string): ICachePlugin {
    // The row's version when MSAL read it; one access at a time per queue (the provider serialises them).
    let versionRead: number | undefined;
    return {
      beforeCacheAccess: async (context: TokenCacheContext) => {
        // Without a row MSAL keeps what it holds in memory (deserialize merges, it never
        // removes): a provider that sees its row vanish (`logout`) starts a new client.
        versionRead = this.updatedAt(queue);
        const data = this.read(queue);
        if (data !== undefined) {
          context.tokenCache.deserialize(data);
          this.onSecrets(queue, secretsIn(data));
        }
      },
      afterCacheAccess: async (context: TokenCacheContext) => {
        if (!context.cacheHasChanged) return;
        const data = context.tokenCache.serialize();
        this.onSecrets(queue, secretsIn(data));
        // A `logout` or `login` by the CLI while a refresh was on its way wins: writing back what
        // MSAL held would bring a removed sign-in back to life, or replace a newer one.
        if (!this.writeIfUnchanged(queue, data, versionRead)) this.ownWrites.delete(queue);
      },
    };
  }

  /** write(), only while the row is as it was read (absent, or at that version); false when it changed meanwhile. */
  private writeIfUnchanged(queue: string, serializedCache: string, versionRead: number | undefined): boolean {
    return this.db.transaction(() => {
      if (this.updatedAt(queue) !== versionRead) return false;
      this.write(queue, serializedCache);
      return true;
    }).immediate();
  }
}

/** Deletes a queue's cache; needs no key, so `logout` works when the key is lost. */
export function removeTokenCache(db: StateDatabase, queue: string): boolean {
  return db.prepare("DELETE FROM token_cache WHERE queue = ?").run(queue).changes > 0;
}

function aad(queue: string): string {
  return `mailfetchd.token-cache/1:${queue}`;
}

/** The token values in a serialised MSAL cache (its sections map keys to `{ secret }`). */
function secretsIn(serializedCache: string): string[] {
  const cache = JSON.parse(serializedCache) as Record<string, Record<string, { secret?: unknown }> | undefined>;
  const out: string[] = [];
  for (const section of ["AccessToken", "RefreshToken", "IdToken"]) {
    for (const entry of Object.values(cache[section] ?? {})) {
      if (typeof entry.secret === "string") out.push(entry.secret);
    }
  }
  return out;
}
