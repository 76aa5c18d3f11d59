/** The state-store conformance suite on a real PostgreSQL (src/testbed/postgres.ts), one fresh database per test. */
import { afterAll, beforeAll } from "vitest";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";
import { describeStateStore } from "./conformance.js";

let postgres: Postgres;

beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  await postgres?.close();
});

describeStateStore("postgres", async () => {
  const store = await openPostgresStore({ url: await postgres.createDatabase() });
  return { store, close: () => store.close() };
});
