/**
 * Token caches in the state store, sealed with the SecretBox, one row per queue, exposed to
 * MSAL as its cache plugin. The store (TokenCacheRows, src/store/ports.ts) only ever sees
 * sealed bytes.
 *
 * MSAL calls afterCacheAccess right after every token response, so a rotated refresh token is
 * written (one fully synced write) before the token is used: a crash between a refresh and its
 * write cannot lose the sign-in.
 */
import type { ICachePlugin, TokenCacheContext } from "@azure/msal-node";
import type { SecretBox } from "../state/secret-box.js";
import type { TokenCacheRows } from "../store/ports.js";

export class TokenCacheStore {
  /** The version of the rows this process wrote: a different value was written by someone else (`login`). */
  private readonly ownWrites = new Map<string, number>();

  constructor(
    private readonly rows: TokenCacheRows,
    private readonly box: SecretBox,
    /** Told the tokens a cache holds, so logs can be scrubbed of them. */
    private readonly onSecrets: (queue: string, secrets: string[]) => void = () => {},
  ) {}

  async read(queue: string): Promise<string | undefined> {
    const row = await this.rows.read(queue);
    return row && this.open(queue, row);
  }

  /** Seals with the key file's first key, so a rotated key replaces the old one row by row. Writes whatever the row holds now. */
  async write(queue: string, serializedCache: string): Promise<void> {
    await this.writeIf(queue, serializedCache, "any");
  }

  remove(queue: string): Promise<boolean> {
    this.ownWrites.delete(queue);
    return this.rows.remove(queue);
  }

  /** The key id a queue's cache is sealed with (for `check` and key rotation). */
  async keyIdOf(queue: string): Promise<string | undefined> {
    return (await this.rows.read(queue))?.keyId;
  }

  /** Whether this process wrote the row's current version (false after a `login` by the CLI). */
  isOwnWrite(queue: string, updatedAt: number | undefined): boolean {
    return updatedAt !== undefined && this.ownWrites.get(queue) === updatedAt;
  }

  /** The row's version: lets a running daemon notice a `login` done by the CLI. */
  async updatedAt(queue: string): Promise<number | undefined> {
    return (await this.rows.read(queue))?.updatedAt;
  }

  /**
   * Every row's version in one query: the sign-in watcher looks every 3 s, and a query per
   * queue (1,000 of them) cost ~1% of a core on its own.
   */
  allUpdatedAt(): Promise<Map<string, number>> {
    return this.rows.versions();
  }

  pluginFor(queue: string): ICachePlugin {
    // The row's version when MSAL read it; one access at a time per queue (the provider serialises them).
    let versionRead: number | undefined;
    return {
      beforeCacheAccess: async (context: TokenCacheContext) => {
        // Without a row MSAL keeps what it holds in memory (deserialize merges, it never
        // removes): a provider that sees its row vanish (`logout`) starts a new client.
        const row = await this.rows.read(queue);
        versionRead = row?.updatedAt;
        const data = row && this.open(queue, row);
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
        if (!(await this.writeIf(queue, data, versionRead))) this.ownWrites.delete(queue);
      },
    };
  }

  /** Writes while the row is as expected (absent, at that version, or "any"); false when it changed meanwhile. */
  private async writeIf(queue: string, serializedCache: string, expected: number | undefined | "any"): Promise<boolean> {
    const sealed = this.box.seal(Buffer.from(serializedCache, "utf8"), aad(queue));
    const version = await this.rows.write(queue, sealed.keyId, sealed.data, expected);
    if (version === undefined) return false;
    this.ownWrites.set(queue, version);
    return true;
  }

  private open(queue: string, row: { readonly keyId: string; readonly sealed: Buffer }): string {
    return this.box.open({ keyId: row.keyId, data: row.sealed }, aad(queue)).toString("utf8");
  }
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
