import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configJsonSchema } from "../../src/config/json-schema.js";

describe("published JSON Schema", () => {
  it("is current with the config schema (regenerate with `npm run schema`)", () => {
    const published = JSON.parse(readFileSync("config/mailfetchd.schema.json", "utf8"));
    expect(published).toEqual(configJsonSchema());
  });

  it("describes the keys an editor should complete", () => {
    const schema = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }>; additionalProperties: boolean };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["state", "identity", "imap", "poll", "queues", "http", "retention"]));
    expect(schema.additionalProperties).toBe(false);
  });
});
