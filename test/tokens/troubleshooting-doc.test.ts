/**
 * docs/troubleshooting.md lists every message the token layer can print, with its fix: a
 * message added or reworded in code without the table fails here.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BY_AADSTS, BY_ERROR_CODE, queueStateOf } from "../../src/tokens/identity-errors.js";

const doc = readFileSync(new URL("../../docs/troubleshooting.md", import.meta.url), "utf8").replaceAll("\\|", "|");

describe("docs/troubleshooting.md", () => {
  it.each(Object.entries(BY_AADSTS))("has AADSTS%s with its message, code, state and fix", (aadsts, rule) => {
    const row = doc.split("\n").find((line) => line.startsWith(`| ${aadsts} |`));
    expect(row, `no row for AADSTS${aadsts}`).toBeDefined();
    expect(row).toContain(`Queue <queue>: ${rule.what}.`);
    expect(row).toContain(`\`${rule.code}\``);
    expect(row).toContain(`| ${queueStateOf(rule.code)} |`);
    expect(row).toContain(rule.fix);
  });

  it.each(Object.entries(BY_ERROR_CODE))("has the answer without a code '%s'", (name, rule) => {
    const row = doc.split("\n").find((line) => line.startsWith(`| \`${name}\` |`));
    expect(row, `no row for ${name}`).toBeDefined();
    expect(row).toContain(rule.what);
  });

  it("has every IMAP authentication code and every queue state", () => {
    for (const code of [
      "IMAP_AUTH_REJECTED",
      "IMAP_AUTH_UNAVAILABLE",
      "IMAP_NOT_CONNECTED",
      "IMAP_FOLDER_NOT_FOUND",
      "IDENTITY_NEEDS_SIGN_IN",
      "IDENTITY_UNAVAILABLE",
      "IDENTITY_THROTTLED",
      "SECRET_UNREADABLE",
    ]) {
      expect(doc).toContain(`\`${code}\``);
    }
    for (const state of ["retrying", "needs-password", "needs-sign-in", "needs-admin", "misconfigured"]) expect(doc).toContain(`| \`${state}\` |`);
  });
});
