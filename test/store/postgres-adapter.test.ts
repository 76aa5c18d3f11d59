/**
 * What is particular to the PostgreSQL store, on a real PostgreSQL (the shared conformance
 * suite covers the ports' semantics): the schema migrated once by replicas starting together,
 * raw bytes in the database in parts, a scratch copy for the parser, the errors of an outage
 * (retryable, no password in them) and work resuming when PostgreSQL is back.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { Readable } from "node:stream";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MailfetchdError } from "../../src/errors.js";
import { StreamSourceError } from "../../src/spool/spool-file-writer.js";
import { createPostgresStore, openPostgresStore, type PostgresStateStore } from "../../src/store/postgres/postgres-store.js";
import { POSTGRES_MIGRATIONS } from "../../src/store/postgres/migrations.js";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";

let postgres: Postgres;
const opened: PostgresStateStore[] = [];

beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const store of opened) await store.close().catch(() => undefined);
  await postgres?.close();
});

const databaseOf = (url: string) => new URL(url).pathname.slice(1);

async function open(url: string): Promise<PostgresStateStore> {
  const store = await openPostgresStore({ url });
  opened.push(store);
  return store;
}

describe("PostgreSQL store", () => {
  it("creates the schema once when several replicas open a new database together", async () => {
    const url = await postgres.createDatabase();
    await Promise.all([open(url), open(url), open(url), open(url)]);
    const versions = await postgres.query<{ version: number }>("SELECT version FROM mailfetchd_schema ORDER BY version", [], databaseOf(url));
    expect(versions.map((v) => v.version)).toEqual(POSTGRES_MIGRATIONS.map((_, i) => i + 1));
  });

  it("keeps raw bytes in the database in 1 MiB parts, streamed, with their hash and head", async () => {
    const url = await postgres.createDatabase();
    const store = await open(url);
    const big = Buffer.alloc(2.5 * 1024 * 1024, "x");
    big.write("Subject: big\r\n\r\n");
    async function* chunks() {
      for (let i = 0; i < big.length; i += 64 * 1024) yield big.subarray(i, i + 64 * 1024);
    }
    const written = await store.raw.write("q1", "key-1", chunks(), 100);
    expect(written.head).toEqual(big.subarray(0, 100));
    expect(written.sha256).toBe(createHash("sha256").update(big).digest("hex"));
    expect((await store.raw.read("q1", "key-1")).equals(big)).toBe(true);
    const parts = await postgres.query<{ n: number }>("SELECT length(bytes) AS n FROM raw_parts WHERE key = 'key-1' ORDER BY part", [], databaseOf(url));
    expect(parts.map((r) => r.n)).toEqual([1048576, 1048576, 524288]);

    // Writing a key again replaces its bytes.
    await store.raw.write("q1", "key-1", Buffer.from("short"), 100);
    expect((await store.raw.read("q1", "key-1")).toString()).toBe("short");

    const file = await store.raw.localFile("q1", "key-1");
    expect(readFileSync(file.path, "utf8")).toBe("short");
    expect(statSync(file.path).mode & 0o077).toBe(0);
    await file.release();
    expect(existsSync(file.path)).toBe(false);

    await store.raw.remove("q1", "key-1");
    await expect(store.raw.read("q1", "key-1")).rejects.toThrow(/no raw message/);
  });

  it("tells a broken download from a broken store, and keeps nothing of it", async () => {
    const store = await open(await postgres.createDatabase());
    const broken = Readable.from(
      (async function* () {
        yield Buffer.from("Subject: half\r\n");
        throw new Error("connection reset by the mail server");
      })(),
    );
    const error = await store.raw.write("q1", "key-2", broken, 100).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamSourceError);
    await expect(store.raw.read("q1", "key-2")).rejects.toThrow(/no raw message/);
  });

  it("rejects with a retryable STATE_UNAVAILABLE without the password while PostgreSQL is down, and carries on when it is back", async () => {
    const url = await postgres.createDatabase();
    const store = await open(url);
    await store.queueStatus.recordSuccess("q1", new Date());
    await postgres.stop();
    try {
      for (const attempt of [() => store.ping(), () => store.queueStatus.recordSuccess("q1", new Date()), () => store.messages.cursor("q1", "imap", "INBOX")]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MailfetchdError);
        expect(error).toMatchObject({ code: "STATE_UNAVAILABLE", retryable: true, fix: expect.stringContaining("state.postgres") });
        expect(JSON.stringify({ message: (error as Error).message, fix: (error as MailfetchdError).fix, cause: String((error as Error).cause) })).not.toContain(
          postgres.password,
        );
      }
    } finally {
      await postgres.start();
    }
    await store.ping();
    expect((await store.queueStatus.get("q1"))?.state).toBe("ok");
  }, 60_000);

  it("a connection cut while a download streams into its transaction rejects the write (STATE_UNAVAILABLE), and the process lives on", async () => {
    const store = await open(await postgres.createDatabase());
    let cut!: () => void;
    const cutDone = new Promise<void>((resolve) => (cut = resolve));
    async function* slowDownload() {
      yield Buffer.from("Subject: slow\r\n\r\n");
      // PostgreSQL goes away between two chunks: the client is idle inside the transaction.
      await postgres.stop();
      await new Promise((resolve) => setTimeout(resolve, 200));
      cut();
      yield Buffer.from("the rest of the body");
    }
    try {
      const written = store.raw.write("q1", "key-slow", slowDownload(), 100);
      await cutDone;
      await expect(written).rejects.toMatchObject({ code: "STATE_UNAVAILABLE", retryable: true });
    } finally {
      await postgres.start();
    }
    await store.raw.write("q1", "key-slow", Buffer.from("Subject: again\r\n\r\nbody"), 100);
    expect((await store.raw.read("q1", "key-slow")).toString()).toContain("again");
  }, 60_000);

  it("comes up during an outage and creates its schema at its first call once PostgreSQL is back", async () => {
    const url = await postgres.createDatabase();
    await postgres.stop();
    let store: PostgresStateStore;
    try {
      store = createPostgresStore({ url });
      opened.push(store);
      await expect(store.ping()).rejects.toMatchObject({ code: "STATE_UNAVAILABLE", retryable: true });
      await expect(store.deliveries.backlog("q1")).rejects.toMatchObject({ code: "STATE_UNAVAILABLE" });
    } finally {
      await postgres.start();
    }
    expect(await store.deliveries.backlog("q1")).toBe(0);
    const versions = await postgres.query<{ version: number }>("SELECT version FROM mailfetchd_schema", [], databaseOf(url));
    expect(versions).toHaveLength(POSTGRES_MIGRATIONS.length);
  }, 60_000);

  it("refuses to open with a wrong password, naming neither password", async () => {
    const url = postgres.url().replace(postgres.password, "wrong-secret-123");
    const error = await openPostgresStore({ url }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "STATE_UNAVAILABLE" });
    expect((error as Error).message).toMatch(/password authentication failed/);
    expect((error as Error).message).not.toContain("wrong-secret-123");
  });
});
