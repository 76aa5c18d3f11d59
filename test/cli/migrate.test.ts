/** `mailfetchd migrate` as a process, against a real PostgreSQL: applies, then finds nothing to do; an outage is a clear error without the password. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";
import { CLI } from "../../tools/testbed/helpers/daemon-process.js";

let postgres: Postgres;
const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-migrate-"));

beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  await postgres?.close();
});

function configWith(url: string | undefined): string {
  const file = path.join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  if (url !== undefined) writeFileSync(`${file}.url`, url, { mode: 0o600 });
  writeFileSync(
    file,
    `state:
  dir: ./state
  keyFile: ./key
${url === undefined ? "" : `  postgres:\n    urlFile: ${path.basename(file)}.url\n`}identity:
  tenantId: 11111111-2222-3333-4444-555555555555
  clientId: 66666666-7777-8888-9999-000000000000
queues:
  - name: support
    address: support@contoso.com
    handlers:
      - type: directory
        path: out
`,
  );
  return file;
}

const run = (config: string) => {
  const result = spawnSync(process.execPath, [CLI, "migrate", "--config", config], { encoding: "utf8" });
  return { status: result.status, out: result.stdout, err: result.stderr };
};

describe("mailfetchd migrate", () => {
  it("creates the schema, then finds it up to date", async () => {
    const config = configWith(await postgres.createDatabase());
    expect(run(config)).toMatchObject({ status: 0, out: "Applied migration 1: the PostgreSQL schema is at version 1.\n" });
    expect(run(config)).toMatchObject({ status: 0, out: "The PostgreSQL schema is up to date (version 1).\n" });
  });

  it("says there is nothing to do for SQLite", () => {
    expect(run(configWith(undefined))).toMatchObject({ status: 0, out: expect.stringContaining("Nothing to do") });
  });

  it("fails with what to check when PostgreSQL cannot be reached, never printing the password", async () => {
    const url = (await postgres.createDatabase()).replace(`:${postgres.port}/`, ":1/");
    const result = run(configWith(url));
    expect(result.status).toBe(1);
    expect(result.err).toMatch(/PostgreSQL state store: cannot connect.*ECONNREFUSED/);
    expect(result.err).toContain("state.postgres");
    expect(result.err).not.toContain(postgres.password);
  });
});
