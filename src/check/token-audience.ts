/**
 * Is an access token for Exchange Online (IMAP) rather than Microsoft Graph? The most common
 * mistake in the wild, and one IMAP only reports as "AUTHENTICATE failed".
 *
 * Microsoft's access tokens for Exchange are JWTs today, so their `aud` and `scp` claims tell.
 * Clients must not rely on that (Microsoft may encrypt or change them at any time), so a token
 * that is not a readable JWT is judged by the scopes the identity platform said it granted.
 */

const EXCHANGE_AUDIENCES = new Set(["https://outlook.office.com", "https://outlook.office365.com", "00000002-0000-0ff1-ce00-000000000000"]);
const GRAPH_AUDIENCES = new Set(["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"]);
const IMAP_SCOPE = /^(https:\/\/outlook\.office(365)?\.com\/)?IMAP\.AccessAsUser\.All$/i;
const EXCHANGE_IMAP_SCOPE = /^https:\/\/outlook\.office(365)?\.com\/IMAP\.AccessAsUser\.All$/i;

const FIX =
  "Request https://outlook.office.com/IMAP.AccessAsUser.All (identity.scopes), and give the app the delegated permission IMAP.AccessAsUser.All of Office 365 Exchange Online with admin consent (admin guide section 2.2 step 10; the guide's Microsoft Graph permissions alone do not allow IMAP).";

export interface AudienceJudgement {
  readonly ok: boolean;
  /** What was seen; names claims and scopes, never the token. */
  readonly detail: string;
  readonly fix?: string;
}

export function judgeTokenAudience(accessToken: string, grantedScopes: readonly string[]): AudienceJudgement {
  const claims = readJwtClaims(accessToken);
  if (claims && typeof claims.aud === "string") {
    const aud = claims.aud.replace(/\/+$/, "").toLowerCase();
    const scp = typeof claims.scp === "string" ? claims.scp.split(" ") : [];
    if (GRAPH_AUDIENCES.has(aud)) return { ok: false, detail: `the token is for Microsoft Graph (aud ${claims.aud}), which IMAP rejects`, fix: FIX };
    if (!EXCHANGE_AUDIENCES.has(aud)) return { ok: false, detail: `the token is for ${claims.aud}, not Exchange Online`, fix: FIX };
    if (!scp.some((s) => IMAP_SCOPE.test(s))) {
      return { ok: false, detail: `the Exchange token does not carry IMAP.AccessAsUser.All (scp: ${scp.join(" ") || "none"})`, fix: FIX };
    }
    return { ok: true, detail: `aud ${claims.aud}, scp includes IMAP.AccessAsUser.All` };
  }
  const granted = grantedScopes.join(" ") || "none";
  if (grantedScopes.some((s) => EXCHANGE_IMAP_SCOPE.test(s))) {
    return { ok: true, detail: `the token is opaque (not a readable JWT); judged by the scopes granted: ${granted}` };
  }
  return { ok: false, detail: `the token is opaque and the scopes granted are not Exchange's IMAP scope: ${granted}`, fix: FIX };
}

/** The payload of a JWT, or undefined when the token is not one (opaque or encrypted). */
export function readJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    return payload && typeof payload === "object" && !Array.isArray(payload) ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
