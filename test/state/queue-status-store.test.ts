/**
 * The queue status rows on a real SQLite state file. A success is written on every poll of
 * every queue, so it skips the fsync; the connection must come back fully synced for the
 * spool's and the token cache's commits that follow.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openStateDatabase } from "../../src/store/sqlite/database.js";
import { SqliteQueueStatusStore } from "../../src/store/sqlite/queue-status.js";

const FULL = 2;

describe("queue status store", () => {
  it("records successes and failures, and leaves the connection at synchronous=FULL", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-status-"));
    const db = openStateDatabase(dir);
    try {
      const store = new SqliteQueueStatusStore(db);
      expect(db.pragma("synchronous", { simple: true })).toBe(FULL);

      await store.recordFailure("desk", "retrying", { code: "IMAP_UNAVAILABLE", message: "down" }, new Date(1_000));
      await store.recordSuccess("desk", new Date(2_000));
      expect(db.pragma("synchronous", { simple: true })).toBe(FULL);
      await store.recordSuccess("desk", new Date(3_000));

      // What another process (`mailfetchd status`) reads from the file.
      const other = openStateDatabase(dir);
      try {
        const status = await new SqliteQueueStatusStore(other).get("desk");
        expect(status).toMatchObject({ state: "ok", consecutiveFailures: 0, lastSuccessAt: new Date(3_000) });
        expect(status?.lastError?.code).toBe("IMAP_UNAVAILABLE");
      } finally {
        other.close();
      }
      // Inside a transaction the setting is the transaction's business, not changed under it.
      db.transaction(() => void store.recordSuccess("desk", new Date(4_000)))();
      expect(db.pragma("synchronous", { simple: true })).toBe(FULL);
      expect((await store.get("desk"))?.lastSuccessAt).toEqual(new Date(4_000));
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
