/**
 * `mailfetchd migrate`: creates or migrates the PostgreSQL state store's schema now, for
 * operators who prefer to do it before starting replicas (the daemon does it too, under the
 * same advisory lock, so replicas starting together never race). SQLite needs no command: its
 * schema is migrated whenever the daemon or a command opens the state file.
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { createPool } from "../store/postgres/connection.js";
import { postgresSchemaVersion } from "../store/postgres/migrations.js";
import { migrate } from "../store/postgres/postgres-store.js";
import { configPathOf, withConfigOption } from "./common.js";

export function registerMigrate(program: Command): void {
  withConfigOption(program.command("migrate").description("create or migrate the PostgreSQL state store's schema (state.postgres)")).action(
    async (options: { config?: string }) => {
      const config = loadConfig(configPathOf(options));
      if (!config.postgres) {
        process.stdout.write("Nothing to do: the state is in SQLite (no state.postgres in the config), which is migrated whenever it is opened.\n");
        return;
      }
      const pool = createPool(config.postgres, () => undefined);
      try {
        const applied = await migrate(pool, config.postgres.url);
        const version = await postgresSchemaVersion(pool);
        process.stdout.write(
          applied.length === 0
            ? `The PostgreSQL schema is up to date (version ${version}).\n`
            : `Applied migration${applied.length > 1 ? "s" : ""} ${applied.join(", ")}: the PostgreSQL schema is at version ${version}.\n`,
        );
      } finally {
        await pool.end();
      }
    },
  );
}
