/** The state-store conformance suite on real SQLite files, one fresh state directory per test. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { describeStateStore } from "./conformance.js";

describeStateStore("sqlite", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "mailfetchd-store-"));
  const store = openSqliteStore(dir);
  return {
    store,
    close: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
