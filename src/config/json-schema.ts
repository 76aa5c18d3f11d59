/**
 * The config's JSON Schema, derived from the zod schema that validates it, so editors (YAML
 * language servers) can check a config as it is written. Published as
 * config/mailfetchd.schema.json (`npm run schema`); a test keeps the file current. Rules that
 * a JSON Schema cannot say (cron syntax, file readability) are checked at start.
 */
import { z } from "zod";
import { configSchema } from "./schema.js";

export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { unrepresentable: "any", io: "input" }),
    $id: "https://mailfetchd.invalid/config.schema.json",
    title: "mailfetchd configuration",
  };
}
