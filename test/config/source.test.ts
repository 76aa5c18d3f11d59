/** The queue's `source` key: "imap" by default, the only source accepted so far; anything else is named with its fix. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-config-"));
writeFileSync(path.join(dir, "pw"), "s3cret-password\n", { mode: 0o600 });

function config(sourceLine: string): string {
  return `
state:
  dir: ./state
  keyFile: ./key
identity:
  tenantId: 11111111-2222-3333-4444-555555555555
  clientId: 66666666-7777-8888-9999-000000000000
queues:
  - name: support
    address: support@contoso.com
    ${sourceLine}
    signIn:
      passwordFile: pw
    handlers:
      - type: directory
        path: out
`;
}

describe("queues[].source", () => {
  it("is imap unless the queue says otherwise", () => {
    expect(parseConfig(config(""), path.join(dir, "config.yaml")).queues[0]!.source).toBe("imap");
    expect(parseConfig(config("source: imap"), path.join(dir, "config.yaml")).queues[0]!.source).toBe("imap");
  });

  it("refuses a source mailfetchd does not have, naming the key and what to write", () => {
    let message = "";
    try {
      parseConfig(config("source: graph"), path.join(dir, "config.yaml"));
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain("queues[0].source: write imap (the default): it is the only mail source so far");
  });
});
