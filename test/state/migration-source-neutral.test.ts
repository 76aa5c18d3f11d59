/**
 * A state directory from before source-neutral locations (schema 5: messages.uid_validity/uid,
 * cursors.last_uid, server_actions.uid) keeps working: its cursor, owed actions, pending
 * deliveries and spooled locations carry on in the IMAP encoding, files keep their names, and a
 * dead letter too large to download still rewinds the cursor when retried.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { imapLocation } from "../../src/imap/imap-location.js";
import { Spool } from "../../src/spool/spool.js";
import { SqliteStateStore } from "../../src/store/sqlite/sqlite-store.js";
import { spoolKey } from "../../src/spool/stable-id.js";
import { openStateDatabase, type StateDatabase } from "../../src/store/sqlite/database.js";
import { databaseAtSchema } from "./schema-at.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import { acceptImap, imapCursor } from "../../tools/testbed/helpers/imap-messages.js";

let db: StateDatabase | undefined;
afterEach(() => db?.close());

/** The number of the migration under test: the first after release 5 of the schema. */
const SCHEMA_BEFORE = 6;
const QUEUE = { name: "support", address: "support@contoso.com" };
const RAW = Buffer.from("Message-ID: <before@example.com>\r\nFrom: a@example.com\r\nSubject: before\r\n\r\nspooled by an older release\r\n");

/** The spool key release 5 gave a location: the file name must not change with the upgrade. */
function legacyKey(queue: string, folder: string, uidValidity: string, uid: number): string {
  const hash = createHash("sha256");
  for (const field of [queue, folder, uidValidity, String(uid)]) hash.update(`${Buffer.byteLength(field)}:`).update(field);
  return `s${hash.digest("hex").slice(0, 31)}`;
}

/**
 * Schema 5 with: UID 3 spooled (one pending and one delivered delivery, \Seen owed), UID 4 too
 * large (headers only, dead), the cursor at 4, and an action owed under an older UIDVALIDITY.
 */
function stateDirBefore(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-migration-"));
  const old = databaseAtSchema(dir, SCHEMA_BEFORE);
  const sha = createHash("sha256").update(RAW).digest("hex");
  const insert = old.prepare(
    `INSERT INTO messages (id, stable_id, queue, folder, uid_validity, uid, size, header_message_id, content_sha256, spooled_at, headers_only)
     VALUES (?, ?, 'support', 'INBOX', '7', ?, ?, 'before@example.com', ?, ?, ?)`,
  );
  const spooled = insert.run(legacyKey("support", "INBOX", "7", 3), null, 3, RAW.length, sha, Date.now(), 0).lastInsertRowid;
  const tooLarge = insert.run(legacyKey("support", "INBOX", "7", 4), "mtoolarge0000000000000000000000", 4, 90_000_000, sha, Date.now(), 1).lastInsertRowid;
  old.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at) VALUES (?, 'a', 'pending', 0)").run(spooled);
  old.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, delivered_at) VALUES (?, 'b', 'delivered', 0, 1)").run(spooled);
  old.prepare("INSERT INTO deliveries (message_seq, handler, state, next_attempt_at, last_error) VALUES (?, 'a', 'dead', 0, 'too large')").run(tooLarge);
  old.prepare("INSERT INTO cursors (queue, folder, uid_validity, last_uid, updated_at) VALUES ('support', 'INBOX', '7', 4, 0)").run();
  old
    .prepare("INSERT INTO server_actions (queue, folder, uid_validity, uid, action, target, created_at) VALUES ('support', 'INBOX', '7', 3, 'seen', NULL, 0)")
    .run();
  old
    .prepare("INSERT INTO server_actions (queue, folder, uid_validity, uid, action, target, created_at) VALUES ('support', 'INBOX', '6', 9, 'move', 'Done', 0)")
    .run();
  old.close();
  mkdirSync(path.join(dir, "spool", "support"), { recursive: true });
  writeFileSync(path.join(dir, "spool", "support", `${legacyKey("support", "INBOX", "7", 3)}.eml`), RAW);
  return dir;
}

describe("migration to source-neutral locations", () => {
  it("carries the cursor, owed actions, pending deliveries and spooled locations over in the IMAP encoding", async () => {
    const dir = stateDirBefore();
    db = openStateDatabase(dir);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    const spool = new Spool(new SqliteStateStore(db, dir), dir);

    expect(await spool.cursor("support", "imap", "INBOX")).toBe("7:4");
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 4 });
    expect(await spool.pendingServerActions("support", "imap", "INBOX")).toEqual([
      { item: "6:9", action: "move", target: "Done" },
      { item: "7:3", action: "seen", target: undefined },
    ]);

    const [due] = await spool.dueDeliveries("support", Date.now(), 10);
    expect(due).toMatchObject({
      handler: "a",
      spoolKey: spoolKey("support", imapLocation({ folder: "INBOX", uidValidity: "7", uid: 3 })),
      location: { kind: "imap", folder: "INBOX", item: "7:3" },
    });
    expect((await spool.readRaw("support", due!.spoolKey)).equals(RAW)).toBe(true);
    expect((await spool.deadLetters("support"))[0]?.source).toEqual({ kind: "imap", folder: "INBOX", item: "7:4", uidValidity: "7", uid: 4 });

    // The location spooled before the upgrade is recognised: nothing is spooled or delivered twice.
    expect((await acceptImap(spool, QUEUE, { handlers: ["a", "b"] }, { folder: "INBOX", uidValidity: "7", uid: 3, size: RAW.length, raw: RAW })).isNew).toBe(
      false,
    );
    expect(await spool.backlog("support")).toBe(1);
  });

  it("still rewinds the cursor for a too-large dead letter that is retried", async () => {
    const dir = stateDirBefore();
    db = openStateDatabase(dir);
    const spool = new Spool(new SqliteStateStore(db, dir), dir);
    expect(await spool.retryDeadLetter("support", "mtoolarge0000000000000000000000")).toBe(1);
    expect(await imapCursor(spool, "support", "INBOX")).toEqual({ uidValidity: "7", lastUid: 3 });
  });
});
