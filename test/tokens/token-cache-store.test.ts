/**
 * The token cache store's MSAL plugin (real SQLite, real sealing): a sign-in removed or
 * replaced by the CLI while a token request is on its way is not overwritten by what MSAL held.
 */
import type { TokenCacheContext } from "@azure/msal-node";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteTokenCacheRows } from "../../src/store/sqlite/token-caches.js";
import { TokenCacheStore } from "../../src/tokens/token-cache-store.js";
import { openTempSpool } from "../spool/temp-spool.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SecretBox, writeNewKeyFile } from "../../src/state/secret-box.js";

const keyFile = path.join(mkdtempSync(path.join(tmpdir(), "mailfetchd-key-")), "token.key");
writeNewKeyFile(keyFile);
const testSecretBox = () => SecretBox.fromFile(keyFile);

let close: (() => void) | undefined;
afterEach(() => close?.());

/** What MSAL's cache looks like to the plugin: it serialises to `serialized`, and changed. */
function context(serialized: string): TokenCacheContext {
  return { cacheHasChanged: true, tokenCache: { serialize: () => serialized, deserialize: () => undefined } } as unknown as TokenCacheContext;
}

function open() {
  const { db, store } = openTempSpool();
  close = () => db.close();
  return { db, store: new TokenCacheStore(store.tokenCaches, testSecretBox()) };
}

const CACHE = (n: number) => JSON.stringify({ RefreshToken: { a: { secret: `refresh-${n}` } } });

describe("TokenCacheStore plugin", () => {
  it("writes what MSAL changed while nobody else touched the row", async () => {
    const { store } = open();
    const plugin = store.pluginFor("desk");
    await plugin.beforeCacheAccess(context(""));
    await plugin.afterCacheAccess(context(CACHE(1)));
    expect(await store.read("desk")).toBe(CACHE(1));
    expect(store.isOwnWrite("desk", await store.updatedAt("desk"))).toBe(true);
  });

  it("does not bring back a sign-in that `logout` removed while a refresh was on its way", async () => {
    const { store } = open();
    await store.write("desk", CACHE(1));
    const plugin = store.pluginFor("desk");
    await plugin.beforeCacheAccess(context(""));
    await store.remove("desk"); // the CLI's logout, in another process
    await plugin.afterCacheAccess(context(CACHE(2)));
    expect(await store.read("desk")).toBeUndefined();
  });

  it("does not replace a newer sign-in that `login` stored meanwhile", async () => {
    const { db, store } = open();
    await store.write("desk", CACHE(1));
    const plugin = store.pluginFor("desk");
    await plugin.beforeCacheAccess(context(""));
    // The CLI's login, in another process: another store on the same database.
    await new TokenCacheStore(new SqliteTokenCacheRows(db), testSecretBox()).write("desk", CACHE(3));
    await plugin.afterCacheAccess(context(CACHE(2)));
    expect(await store.read("desk")).toBe(CACHE(3));
  });
});
