/**
 * `check`'s audience judgement (pure logic): a readable JWT is judged by its aud and scp
 * claims, an opaque token by the scopes the identity platform said it granted.
 */
import { describe, expect, it } from "vitest";
import { judgeTokenAudience, readJwtClaims } from "../../src/check/token-audience.js";

function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ typ: "JWT", alg: "RS256" })}.${part(claims)}.${Buffer.from("signature").toString("base64url")}`;
}

const IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All";

describe("judgeTokenAudience", () => {
  it("passes an Exchange token with the IMAP permission (both resource names, and the app id)", () => {
    for (const aud of ["https://outlook.office.com", "https://outlook.office365.com/", "00000002-0000-0ff1-ce00-000000000000"]) {
      expect(judgeTokenAudience(jwt({ aud, scp: "IMAP.AccessAsUser.All User.Read" }), [IMAP])).toMatchObject({ ok: true });
    }
  });

  it("fails a Graph token, naming Graph and the fix (admin guide step 10)", () => {
    const judged = judgeTokenAudience(jwt({ aud: "https://graph.microsoft.com", scp: "IMAP.AccessAsUser.All" }), ["IMAP.AccessAsUser.All"]);
    expect(judged.ok).toBe(false);
    expect(judged.detail).toContain("Microsoft Graph");
    expect(judged.fix).toMatch(/section 2\.2 step 10/);
  });

  it("fails an Exchange token without IMAP.AccessAsUser.All (the permission was never added)", () => {
    const judged = judgeTokenAudience(jwt({ aud: "https://outlook.office.com", scp: "EWS.AccessAsUser.All" }), [IMAP]);
    expect(judged).toMatchObject({ ok: false, detail: expect.stringContaining("does not carry IMAP.AccessAsUser.All") });
  });

  it("judges an opaque token by the granted scopes", () => {
    const opaque = "eyJ0eXAiOiJKV1QifQ.bm90IGpzb24.c2ln";
    expect(readJwtClaims(opaque)).toBeUndefined();
    expect(judgeTokenAudience(opaque, [IMAP])).toMatchObject({ ok: true, detail: expect.stringContaining("opaque") });
    expect(judgeTokenAudience(opaque, ["User.Read"])).toMatchObject({ ok: false });
    expect(judgeTokenAudience("not-a-jwt", [])).toMatchObject({ ok: false });
  });
});
