import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkScopes, parseConfig } from "../../src/config/load.js";
import { parseInterval } from "../../src/config/schema.js";
import { ConfigError } from "../../src/errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-config-"));
writeFileSync(path.join(dir, "pw"), "s3cret-password\n", { mode: 0o600 });

const TENANT = "11111111-2222-3333-4444-555555555555";
const CLIENT = "66666666-7777-8888-9999-000000000000";

function valid(extra = ""): string {
  return `
state:
  dir: ./state
  keyFile: ./key
identity:
  tenantId: ${TENANT}
  clientId: ${CLIENT}
queues:
  - name: support
    address: Support@Contoso.com
    signIn:
      passwordFile: pw
    handlers:
      - type: directory
        path: out
${extra}`;
}

function errorOf(text: string): string {
  try {
    parseConfig(text, path.join(dir, "config.yaml"));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("config", () => {
  it("applies defaults, resolves paths and reads the password file", () => {
    const config = parseConfig(valid(), path.join(dir, "config.yaml"));
    const queue = config.queues[0]!;
    expect(config.stateDir).toBe(path.join(dir, "state"));
    expect(queue.address).toBe("support@contoso.com");
    expect(queue.signIn).toEqual({ user: "support@contoso.com", password: "s3cret-password" });
    expect(queue.identity.authority).toBe(`https://login.microsoftonline.com/${TENANT}`);
    expect(queue.identity.scopes).toEqual(["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"]);
    expect(queue.imap).toEqual({ host: "outlook.office365.com", port: 993, tls: true, ca: undefined });
    expect(queue.folder).toBe("INBOX");
    expect(queue.poll).toEqual({ intervalMs: 60_000 });
    expect(queue.handlers[0]).toEqual({ type: "directory", path: path.join(dir, "out") });
    expect(Object.isFrozen(queue.identity)).toBe(true);
  });

  it("names the key, what is wrong and what to write for each problem, all at once", () => {
    const message = errorOf(`
state: { dir: ./s }
queues:
  - name: Bad Name
    address: not-an-address
    pol: 5m
    handlers: []
`);
    expect(message).toContain("state.keyFile: missing");
    expect(message).toContain("queues[0].name: use 1-63 lower-case letters");
    expect(message).toContain("queues[0].address: write a full e-mail address");
    expect(message).toContain("queues[0]: unknown key 'pol'");
    expect(message).toContain("queues[0].handlers: give each queue at least one handler");
  });

  it("has one delivery budget for all queues: 8 messages and 64MB by default, both settable", () => {
    expect(parseConfig(valid(), path.join(dir, "config.yaml")).delivery).toEqual({ messagesInFlight: 8, bytesInFlight: 64 * 1024 * 1024 });
    const set = parseConfig(valid("delivery:\n  messagesInFlight: 4\n  bytesInFlight: 32MB\n"), path.join(dir, "config.yaml"));
    expect(set.delivery).toEqual({ messagesInFlight: 4, bytesInFlight: 32 * 1024 * 1024 });
    const message = errorOf(valid("delivery:\n  messagesInFlight: 0\n  bytesInFlight: lots\n"));
    expect(message).toContain("delivery.messagesInFlight");
    expect(message).toContain("delivery.bytesInFlight");
    expect(message).toContain("25MB");
  });

  it("refuses password, token and header files readable by group or others, with the exact chmod", () => {
    for (const mode of [0o644, 0o666, 0o640]) {
      const file = path.join(dir, `pw-${mode.toString(8)}`);
      writeFileSync(file, "s3cret-password\n", { mode });
      chmodSync(file, mode);
      const message = errorOf(valid().replace("passwordFile: pw", `passwordFile: pw-${mode.toString(8)}`));
      expect(message).toContain(`queues[0].signIn.passwordFile: ${file} is readable by`);
      expect(message).toContain(`(mode 0${mode.toString(8)})`);
      expect(message).toContain(`run \`chmod 600 ${file}\``);
      expect(message).not.toContain("s3cret-password");
    }
    const header = path.join(dir, "header-0644");
    writeFileSync(header, "Bearer crm-token-value-1234\n", { mode: 0o644 });
    chmodSync(header, 0o644);
    const message = errorOf(
      valid().replace(
        "      - type: directory\n        path: out",
        `      - type: webhook\n        url: https://crm.contoso.com/hook\n        headers: { Authorization: { file: header-0644 } }`,
      ),
    );
    expect(message).toContain(`queues[0].handlers[0].headers.Authorization.file: ${header} is readable by group and others (mode 0644)`);
    expect(message).not.toContain("crm-token-value");
  });

  it("trusts the mode of files in systemd's credentials directory (an ACL shows as group bits there)", () => {
    const credentials = path.join(dir, "credentials");
    mkdirSync(credentials, { recursive: true });
    const file = path.join(credentials, "secrets_pw");
    writeFileSync(file, "s3cret-password\n");
    chmodSync(file, 0o440);
    const text = valid().replace("passwordFile: pw", `passwordFile: ${file}`);
    expect(errorOf(text)).toContain("(mode 0440)");
    process.env.CREDENTIALS_DIRECTORY = credentials;
    try {
      expect(parseConfig(text, path.join(dir, "config.yaml")).queues[0]!.signIn.password).toBe("s3cret-password");
    } finally {
      delete process.env.CREDENTIALS_DIRECTORY;
    }
  });

  it("accepts a CA file of any mode (a certificate is public)", () => {
    const ca = path.join(dir, "ca-0644.pem");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n", { mode: 0o644 });
    chmodSync(ca, 0o644);
    expect(parseConfig(valid(`imap: { caFile: ca-0644.pem }`), path.join(dir, "config.yaml")).queues[0]!.imap.ca).toContain("BEGIN CERTIFICATE");
  });

  it("refuses missing tenant and client ids with the admin guide step", () => {
    const message = errorOf(valid().replace(/identity:[\s\S]*?queues:/, "queues:"));
    expect(message).toContain("queues[0].identity.tenantId: missing: write the Directory (tenant) ID (admin guide, section 2.2 step 8)");
    expect(message).toContain("queues[0].identity.clientId: missing: write the Application (client) ID (admin guide, section 2.2 step 7)");
  });

  it("refuses an unreadable password file without printing any secret", () => {
    const message = errorOf(valid().replace("passwordFile: pw", "passwordFile: nope"));
    expect(message).toMatch(/queues\[0\]\.signIn\.passwordFile: cannot read nope \(ENOENT\)/);
  });

  it("refuses a bad poll schedule and accepts cron and intervals", () => {
    expect(errorOf(valid("    poll: sometimes\n"))).toContain("queues[0].poll: write an interval");
    expect(parseConfig(valid("    poll: '*/2 * * * *'\n"), path.join(dir, "c.yaml")).queues[0]!.poll).toEqual({ cron: "*/2 * * * *" });
    expect(parseConfig(valid("    poll: 5m\n"), path.join(dir, "c.yaml")).queues[0]!.poll).toEqual({ intervalMs: 300_000 });
  });

  it("refuses duplicate queue names", () => {
    const twice = valid() + valid().split("queues:\n")[1];
    expect(errorOf(twice)).toContain("queues[1].name: 'support' is used twice");
  });

  it("reports YAML syntax errors", () => {
    expect(errorOf("state: [unclosed")).toContain("not valid YAML");
  });

  it("parses intervals", () => {
    expect(parseInterval("30s")).toBe(30_000);
    expect(parseInterval("2h")).toBe(7_200_000);
    expect(parseInterval("*/5 * * * *")).toBeUndefined();
  });
});

describe("scope check", () => {
  it("accepts the Exchange IMAP scope with offline_access, both host spellings", () => {
    expect(checkScopes(["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"])).toBeUndefined();
    expect(checkScopes(["https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access"])).toBeUndefined();
  });
  it("names the Graph-token mistake", () => {
    expect(checkScopes(["IMAP.AccessAsUser.All", "offline_access"])).toMatch(/Graph token/);
    expect(checkScopes(["https://graph.microsoft.com/IMAP.AccessAsUser.All", "offline_access"])).toMatch(/Graph token/);
  });
  it("refuses mixed resources and a missing offline_access", () => {
    expect(checkScopes(["https://outlook.office.com/IMAP.AccessAsUser.All", "https://graph.microsoft.com/User.Read", "offline_access"])).toMatch(/AADSTS28000/);
    expect(checkScopes(["https://outlook.office.com/IMAP.AccessAsUser.All"])).toMatch(/offline_access/);
  });
});
