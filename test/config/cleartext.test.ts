/**
 * Clear text on the network: http:// webhooks and `imap.tls: false` are for loopback only,
 * unless the operator opts out with `allowCleartext: true`, which the daemon then warns about
 * at every start.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Daemon } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { createLogger, SecretRegistry } from "../../src/log.js";
import { writeNewKeyFile } from "../../src/state/secret-box.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-cleartext-"));
writeNewKeyFile(path.join(dir, "key"));

function config(options: { imap?: string; url: string; webhookExtra?: string }): string {
  return `
state: { dir: ./state, keyFile: ./key }
identity: { tenantId: 11111111-2222-3333-4444-555555555555, clientId: 66666666-7777-8888-9999-000000000000 }
${options.imap ? `imap: ${options.imap}` : ""}
queues:
  - name: support
    address: support@contoso.com
    handlers:
      - type: webhook
        url: ${options.url}
${options.webhookExtra ?? ""}
`;
}

const parse = (text: string) => parseConfig(text, path.join(dir, "config.yaml"));

function errorOf(text: string): string {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("clear text on the network", () => {
  it("refuses an http:// webhook and imap.tls: false to a host that is not loopback, with the opt-out named", () => {
    const message = errorOf(config({ imap: "{ host: imap.contoso.com, tls: false }", url: "http://crm.contoso.com/hook" }));
    expect(message).toContain("queues[0].handlers[0].url: http:// to crm.contoso.com sends every message");
    expect(message).toContain("use https://, or, if the network between is trusted, set allowCleartext: true");
    expect(message).toContain("queues[0].imap.tls: false to imap.contoso.com sends the access token");
    expect(message).toContain("set imap.allowCleartext: true");
  });

  it("accepts clear text to loopback (the test bed) without an opt-out", () => {
    for (const host of ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"]) {
      const imapHost = host.replace(/^\[|\]$/g, "");
      expect(() => parse(config({ imap: `{ host: "${imapHost}", port: 1143, tls: false }`, url: `http://${host}:8080/hook` })), host).not.toThrow();
    }
  });

  it("does not count a DNS name that merely starts like loopback", () => {
    expect(errorOf(config({ url: "http://127.0.0.1.evil.example/hook" }))).toContain("http:// to 127.0.0.1.evil.example");
  });

  it("accepts the explicit opt-out and warns loudly at start", async () => {
    const loaded = parse(
      config({
        imap: "{ host: imap.contoso.com, tls: false, allowCleartext: true }",
        url: "http://crm.contoso.com/hook",
        webhookExtra: "        allowCleartext: true",
      }),
    );
    const lines: string[] = [];
    const secrets = new SecretRegistry();
    const logger = createLogger({ level: "info", secrets, destination: { write: (line: string) => void lines.push(line) } });
    const daemon = new Daemon(loaded, logger, secrets);
    await daemon.stop();
    const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; key?: string }).filter((line) => line.level === 40);
    expect(warnings.map((w) => w.key)).toEqual(["queues[support].imap.allowCleartext", "queues[support].handlers[webhook].allowCleartext"]);
    expect(warnings[0]!.msg).toMatch(/^CLEARTEXT: the access token and every message cross the network to imap.contoso.com unencrypted/);
  });
});
