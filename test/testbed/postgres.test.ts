/**
 * The PostgreSQL test bed: a real cluster of its own, reachable with the password in its URL,
 * databases to isolate tests in, and an outage (stop) that a client sees and outlives (start).
 */
import { existsSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";

let postgres: Postgres;

beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  await postgres?.close();
});

async function select(url: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("PostgreSQL test bed", () => {
  it("runs a real server on loopback that takes the URL's password and refuses a wrong one", async () => {
    const rows = await select(
      postgres.url(),
      "SELECT current_user AS who, inet_server_addr()::text AS addr, current_setting('server_version_num')::int AS version",
    );
    expect(rows).toEqual([{ who: "mailfetchd", addr: "127.0.0.1/32", version: expect.any(Number) }]);
    const wrong = postgres.url().replace(postgres.password, "not-the-password");
    await expect(select(wrong, "SELECT 1")).rejects.toThrow(/password authentication failed/);
  });

  it("creates separate databases for separate tests", async () => {
    const first = await postgres.createDatabase();
    const second = await postgres.createDatabase();
    await select(first, "CREATE TABLE only_here (x int)");
    expect(await select(first, "SELECT count(*)::int AS n FROM only_here")).toEqual([{ n: 0 }]);
    await expect(select(second, "SELECT * FROM only_here")).rejects.toThrow(/does not exist/);
  });

  it("stops like an outage and comes back on the same port with its data", async () => {
    const url = await postgres.createDatabase();
    await select(url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)");
    await postgres.stop();
    await expect(select(url, "SELECT 1")).rejects.toThrow(/ECONNREFUSED/);
    await postgres.start();
    expect(await select(url, "SELECT x FROM kept")).toEqual([{ x: 7 }]);
  });

  it("removes its directory on close", async () => {
    const other = await startPostgres();
    expect(existsSync(other.dir)).toBe(true);
    await other.close();
    expect(existsSync(other.dir)).toBe(false);
  }, 60_000);
});
