/** state.postgres: the URL read from a secret file (never shown), TLS options, the lease time. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-pgconfig-"));
const URL_TEXT = "postgres://mailfetchd:pg-s3cret@db.internal:5432/mailfetchd";
writeFileSync(path.join(dir, "pg-url"), `${URL_TEXT}\n`, { mode: 0o600 });
writeFileSync(path.join(dir, "pg-url-open"), `${URL_TEXT}\n`, { mode: 0o644 });
writeFileSync(path.join(dir, "not-a-url"), "host=db.internal password=pg-s3cret\n", { mode: 0o600 });
writeFileSync(path.join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\n", { mode: 0o644 });

function config(postgres: string) {
  return parseConfig(
    `
state:
  dir: ./state
  keyFile: ./key
  postgres:
${postgres}
identity:
  tenantId: 11111111-2222-3333-4444-555555555555
  clientId: 66666666-7777-8888-9999-000000000000
queues:
  - name: support
    address: support@contoso.com
    handlers:
      - type: directory
        path: out
`,
    path.join(dir, "config.yaml"),
  );
}

function errorOf(postgres: string): string {
  try {
    config(postgres);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("state.postgres", () => {
  it("reads the URL from its file, with the default lease and no TLS unless asked", () => {
    expect(config("    urlFile: pg-url").postgres).toEqual({ url: URL_TEXT, leaseMs: 15_000 });
  });

  it("takes the PG* environment when no URL file is given, and TLS options", () => {
    expect(config("    caFile: ca.pem\n    lease: 30s\n    replicaId: node-1\n    maxConnections: 20").postgres).toEqual({
      tls: { ca: "-----BEGIN CERTIFICATE-----\n", rejectUnauthorized: true },
      leaseMs: 30_000,
      replicaId: "node-1",
      maxConnections: 20,
    });
    expect(config("    tls: true\n    rejectUnauthorized: false").postgres?.tls).toEqual({ rejectUnauthorized: false });
  });

  it("refuses a URL file others can read, or one without a URL, never showing its text", () => {
    const open = errorOf("    urlFile: pg-url-open");
    expect(open).toContain("state.postgres.urlFile");
    const wrong = errorOf("    urlFile: not-a-url");
    expect(wrong).toMatch(/state\.postgres\.urlFile: not-a-url does not hold a PostgreSQL URL/);
    for (const message of [open, wrong]) expect(message).not.toContain("pg-s3cret");
  });

  it("refuses a lease under a second and unknown keys", () => {
    expect(errorOf("    lease: 500ms")).toMatch(/state\.postgres\.lease.*at least 1s/);
    expect(errorOf("    password: x")).toMatch(/unknown key 'password'/);
  });
});
