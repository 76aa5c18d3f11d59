/** The queue's `source` key: "imap" by default or "graph"; anything else is named with its fix. Each source gets its own default scopes. */
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
      parseConfig(config("source: ews"), path.join(dir, "config.yaml"));
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain("queues[0].source: write imap (the default) or graph");
  });

  it("gives a graph queue Graph's scopes (Mail.ReadWrite; .Shared for another user's mailbox) and the Graph host", () => {
    const own = parseConfig(config("source: graph"), path.join(dir, "config.yaml")).queues[0]!;
    expect(own.source).toBe("graph");
    expect(own.identity.scopes).toEqual(["https://graph.microsoft.com/Mail.ReadWrite", "offline_access"]);
    expect(own.graph.host).toBe("https://graph.microsoft.com");
    const shared = parseConfig(
      config("source: graph\n    graph: { host: 'https://graph.example.test/' }").replace(
        "passwordFile: pw",
        "passwordFile: pw\n      user: agent@contoso.com",
      ),
      path.join(dir, "config.yaml"),
    ).queues[0]!;
    expect(shared.identity.scopes).toContain("https://graph.microsoft.com/Mail.ReadWrite.Shared");
    expect(shared.graph.host).toBe("https://graph.example.test");
    expect(parseConfig(config(""), path.join(dir, "config.yaml")).queues[0]!.identity.scopes).toEqual([
      "https://outlook.office.com/IMAP.AccessAsUser.All",
      "offline_access",
    ]);
  });

  it("refuses IMAP scopes on a graph queue, naming what to write", () => {
    const withImapScopes = config("source: graph\n    identity: { scopes: [https://outlook.office.com/IMAP.AccessAsUser.All, offline_access] }");
    expect(() => parseConfig(withImapScopes, path.join(dir, "config.yaml"))).toThrow(
      /Microsoft Graph scopes only.*remove https:\/\/outlook\.office\.com\/IMAP\.AccessAsUser\.All/,
    );
  });
});
