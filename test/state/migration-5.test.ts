/**
 * A state directory from before migration 5 (stable id = spool key) keeps working: ids already
 * handed out stay, pending deliveries go out under them, a re-served copy of exactly the same
 * bytes is recognised under the old id.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { Spool } from "../../src/spool/spool.js";
import { SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import { openStateDatabase, type StateDatabase } from "../../src/store/sqlite/database.js";
import { databaseAtSchema } from "./schema-at.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import { acceptImap, uidValidityOf } from "../../tools/testbed/helpers/imap-messages.js";

let db: StateDatabase | undefined;
afterEach(() => db?.close());

const LEGACY_ID = "m0123456789abcdef0123456789abcde";
const RAW = Buffer.from("Message-ID: <old@example.com>\r\nFrom: a@example.com\r\nSubject: before\r\n\r\nspooled by an older release\r\n");

/** A state directory as release 4 of the schema left it: one message, one pending and one delivered delivery. */
function legacyStateDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-migration-"));
  const old = databaseAtSchema(dir, 4);
  const sha = createHash("sha256").update(RAW).digest("hex");
  const seq = old
    .prepare(
      "INSERT INTO messages (id, queue, folder, uid_validity, uid, size, header_message_id, content_sha256, spooled_at) VALUES (?, 'support', 'INBOX', '7', 3, ?, 'old@example.com', ?, ?)",
    )
    .run(LEGACY_ID, RAW.length, sha, Date.now()).lastInsertRowid;
  old.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at) VALUES (?, 'a', 'pending', 0)").run(seq);
  old.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, delivered_at) VALUES (?, 'b', 'delivered', 0, 1)").run(seq);
  old.prepare("INSERT INTO cursors (queue, folder, uid_validity, last_uid, updated_at) VALUES ('support', 'INBOX', '7', 3, 0)").run();
  old.close();
  mkdirSync(path.join(dir, "spool", "support"), { recursive: true });
  writeFileSync(path.join(dir, "spool", "support", `${LEGACY_ID}.eml`), RAW);
  return dir;
}

describe("migration 5 (spool key and stable id apart)", () => {
  it("keeps the ids already handed out and the deliveries as they were", async () => {
    const dir = legacyStateDir();
    db = openStateDatabase(dir);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    const spool = new Spool(new SqliteStateStore(db, dir), dir);
    const [due] = await spool.dueDeliveries("support", Date.now(), 10);
    expect(due).toMatchObject({ spoolKey: LEGACY_ID, stableId: LEGACY_ID, handler: "a", location: { kind: "imap", folder: "INBOX", item: "7:3" } });
    expect((await spool.readRaw("support", due!.spoolKey)).equals(RAW)).toBe(true);
    expect(await spool.backlog("support")).toBe(1);

    // After a UIDVALIDITY change the same bytes come again: spooled at their new location,
    // recognised as the old message, under its old id.
    await acceptImap(
      spool,
      { name: "support", address: "support@contoso.com" },
      { handlers: ["a", "b"] },
      { folder: "INBOX", uidValidity: "8", uid: 1, size: RAW.length, raw: RAW },
    );
    const copy = (await spool.dueDeliveries("support", Date.now(), 10)).find((d) => uidValidityOf(d) === "8")!;
    expect(copy.stableId).toBeUndefined();
    expect(await spool.assignStableId("support", copy, "m-some-content-id")).toEqual({ stableId: LEGACY_ID, repeatOf: due!.seq });
    expect(await spool.backlog("support")).toBe(1);
  });
});
