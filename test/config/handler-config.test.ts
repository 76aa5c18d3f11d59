/** Config validation and resolution of the webhook and command handler blocks. */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-handler-config-"));
const KEY = `whsec_${randomBytes(32).toString("base64")}`;
writeFileSync(path.join(dir, "hook.key"), `${KEY}\n`, { mode: 0o600 });
writeFileSync(path.join(dir, "short.key"), `whsec_${randomBytes(8).toString("base64")}\n`, { mode: 0o600 });
writeFileSync(path.join(dir, "crm.token"), "Bearer crm-token-value-1234\n", { mode: 0o600 });
writeFileSync(path.join(dir, "route-mail"), "#!/bin/sh\nexit 0\n");
chmodSync(path.join(dir, "route-mail"), 0o755);
writeFileSync(path.join(dir, "not-executable"), "#!/bin/sh\nexit 0\n");
chmodSync(path.join(dir, "not-executable"), 0o644);

function config(handlers: string): string {
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
    handlers:
${handlers}`;
}

const parse = (handlers: string) => parseConfig(config(handlers), path.join(dir, "config.yaml"));

function errorOf(handlers: string): string {
  try {
    parse(handlers);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("webhook handler config", () => {
  it("applies defaults, reads the key and header files, and lists what was read as secrets", () => {
    const [handler] = parse(`      - type: webhook
        url: https://crm.contoso.com/hooks/mail
        secretFile: hook.key
        headers:
          X-Tenant: contoso
          Authorization: { file: crm.token }
`).queues[0]!.handlers;
    expect(handler).toEqual({
      type: "webhook",
      name: undefined,
      url: "https://crm.contoso.com/hooks/mail",
      secret: KEY,
      format: "json",
      timeoutMs: 30_000,
      inlineAttachmentsUpTo: 1024 * 1024,
      headers: { "X-Tenant": "contoso", Authorization: "Bearer crm-token-value-1234" },
      secretValues: [KEY, "Bearer crm-token-value-1234"],
    });
  });

  it("takes format, timeout and the inline limit as written", () => {
    const [handler] = parse(`      - type: webhook
        name: crm-raw
        url: http://127.0.0.1:8080/mail
        format: raw
        timeout: 5s
        inlineAttachmentsUpTo: 256KB
`).queues[0]!.handlers;
    expect(handler).toMatchObject({ name: "crm-raw", format: "raw", timeoutMs: 5_000, inlineAttachmentsUpTo: 256 * 1024 });
  });

  it("refuses what would leak or break, naming the key and the fix, all at once", () => {
    const message = errorOf(`      - type: webhook
        url: https://user:pw@crm.contoso.com/hook
        headers:
          Authorization: Bearer abc123
          webhook-id: mine
          X-Api-Key: inline-key
        format: xml
        timeout: soon
`);
    expect(message).toContain("queues[0].handlers[0].url: remove the user:password@ part");
    expect(message).toContain("queues[0].handlers[0].headers.Authorization: looks like a credential");
    expect(message).toContain("{ file: PATH }");
    expect(message).toContain("queues[0].handlers[0].headers.X-Api-Key: looks like a credential");
    expect(message).toContain("queues[0].handlers[0].headers.webhook-id: set by mailfetchd itself");
    expect(message).toContain("queues[0].handlers[0].format: write json");
    expect(message).toContain("queues[0].handlers[0].timeout: write a duration");
    expect(message).not.toContain("abc123");
  });

  it("refuses a key that is not the spec's form, without printing it", () => {
    const message = errorOf(`      - type: webhook
        url: https://crm.contoso.com/hook
        secretFile: short.key
`);
    expect(message).toContain("queues[0].handlers[0].secretFile: short.key:");
    expect(message).toContain("the spec wants 24 to 64");
    expect(message).toContain("openssl rand -base64 32");
  });

  it("refuses a non-HTTP URL", () => {
    expect(
      errorOf(`      - type: webhook
        url: ftp://crm.contoso.com/hook
`),
    ).toContain("queues[0].handlers[0].url: write an https://");
  });
});

describe("command handler config", () => {
  it("resolves a program path beside the config, keeps bare names for PATH, applies defaults", () => {
    const handlers = parse(`      - type: command
        command: [./route-mail, --queue, support]
      - type: command
        name: logger
        command: [logger, -t, mailfetchd]
        timeout: 10s
        env: { CRM_URL: "https://crm.contoso.com", CRM_TOKEN: { file: crm.token } }
        cwd: .
`).queues[0]!.handlers;
    expect(handlers[0]).toEqual({
      type: "command",
      name: undefined,
      command: [path.join(dir, "route-mail"), "--queue", "support"],
      timeoutMs: 60_000,
      env: {},
      cwd: undefined,
      secretValues: [],
    });
    expect(handlers[1]).toMatchObject({
      command: ["logger", "-t", "mailfetchd"],
      timeoutMs: 10_000,
      env: { CRM_URL: "https://crm.contoso.com", CRM_TOKEN: "Bearer crm-token-value-1234" },
      cwd: dir,
      secretValues: ["Bearer crm-token-value-1234"],
    });
  });

  it("refuses reserved or credential-like inline env and an empty command, naming key and fix", () => {
    const message = errorOf(`      - type: command
        command: [route-mail]
        env: { MAILFETCHD_ID: x, DB_PASSWORD: hunter2 }
      - type: command
        command: []
`);
    expect(message).toContain("queues[0].handlers[0].env.MAILFETCHD_ID: MAILFETCHD_* variables carry the message's metadata");
    expect(message).toContain("queues[0].handlers[0].env.DB_PASSWORD: looks like a credential");
    expect(message).toContain("queues[0].handlers[1].command: write the program and its arguments as a list");
    expect(message).not.toContain("hunter2");
  });

  it("takes uid and gid together (to run the program as another user), and refuses one alone", () => {
    const asNobody = `      - type: command
        command: [logger]
        uid: 65534
        gid: 65534
`;
    if (process.getuid?.() === 0) expect(parse(asNobody).queues[0]!.handlers[0]).toMatchObject({ uid: 65534, gid: 65534 });
    else expect(errorOf(asNobody)).toContain("not root, so it cannot start programs as uid 65534");
    expect(
      errorOf(`      - type: command
        command: [logger]
        uid: 65534
`),
    ).toContain("queues[0].handlers[0].gid: missing: give both uid and gid");
    expect(
      errorOf(`      - type: command
        command: [logger]
        uid: -1
        gid: 0
`),
    ).toContain("queues[0].handlers[0].uid:");
  });

  it("refuses a program that cannot run and a missing cwd (checked once the shape is valid)", () => {
    const message = errorOf(`      - type: command
        command: [./not-executable]
        cwd: ./no-such-dir
`);
    expect(message).toContain(`queues[0].handlers[0].command[0]: ${path.join(dir, "not-executable")} cannot be run (EACCES)`);
    expect(message).toContain(`queues[0].handlers[0].cwd: ${path.join(dir, "no-such-dir")} is not a usable directory (ENOENT)`);
  });
});
