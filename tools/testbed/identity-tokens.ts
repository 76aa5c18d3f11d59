/**
 * What the identity stand-in hands out: scopes read the way Entra ID reads them, and tokens
 * that look like Microsoft's (sizes, prefixes, the id_token claims MSAL needs).
 */
import { createHash, randomBytes } from "node:crypto";

/** Scopes that ask for a kind of token rather than access to a resource. */
const RESERVED_SCOPES = new Set(["openid", "profile", "email", "offline_access"]);
/** Both names of the Office 365 Exchange Online resource; tokens for either open IMAP. */
const EXCHANGE_RESOURCES = new Set(["https://outlook.office.com", "https://outlook.office365.com"]);
// A scope without a resource URI ("IMAP.AccessAsUser.All", "User.Read") means Microsoft Graph.
const GRAPH_RESOURCE = "https://graph.microsoft.com";

/** Which API a token opens: Exchange (IMAP, via introspection), Microsoft Graph, or something else. */
export type Audience = "exchange" | "graph" | "other";

export interface RequestedScopes {
  /** The scopes naming a resource, in request order: what `scope` in the answer echoes. */
  readonly resourceScopes: string[];
  /** Distinct resources asked for; Entra ID refuses more than one per request (AADSTS28000). */
  readonly resources: Set<string>;
  readonly offlineAccess: boolean;
  readonly openid: boolean;
  readonly audience: Audience;
}

export function readScopes(scopeParameter: string): RequestedScopes {
  const scopes = scopeParameter.split(" ").filter((scope) => scope.length > 0);
  const resourceScopes = scopes.filter((scope) => !RESERVED_SCOPES.has(scope.toLowerCase()));
  const resources = new Set(resourceScopes.map(resourceOf));
  const onlyExchange = resources.size > 0 && [...resources].every((resource) => resource === "exchange");
  return {
    resourceScopes,
    resources,
    offlineAccess: scopes.some((scope) => scope.toLowerCase() === "offline_access"),
    openid: scopes.some((scope) => scope.toLowerCase() === "openid"),
    // Only reserved scopes get a Graph token too (for User.Read), never an Exchange one.
    audience: onlyExchange ? "exchange" : resources.size === 0 || [...resources].every((resource) => resource === GRAPH_RESOURCE) ? "graph" : "other",
  };
}

function resourceOf(scope: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/[^/]+)\//i.exec(scope);
  if (!match?.[1]) return GRAPH_RESOURCE;
  const resource = match[1].toLowerCase();
  return EXCHANGE_RESOURCES.has(resource) ? "exchange" : resource;
}

/**
 * An opaque bearer token about 2 KB long, shaped like Microsoft's JWT access tokens
 * ("eyJ0eXAi..."), so size limits (XOAUTH2 lines, headers, logs) are exercised. Clients must
 * never parse access tokens, so the middle part is random rather than claims.
 */
export function mintAccessToken(): string {
  const header = base64url(JSON.stringify({ typ: "JWT", nonce: base64url(randomBytes(32)), alg: "RS256", x5t: "testbed", kid: "testbed" }));
  return `${header}.${base64url(randomBytes(1_200))}.${base64url(randomBytes(256))}`;
}

/**
 * A Graph access token as Microsoft issues them today: a JWT whose payload Graph (and
 * `mailfetchd check`) reads: aud https://graph.microsoft.com and `scp`, the delegated Graph
 * permissions granted, space-separated and without the resource prefix. The signature is random
 * (the Graph stand-in looks the token up rather than verifying it). About 2 KB, like the real ones.
 */
export function mintGraphAccessToken(claims: {
  readonly username: string;
  readonly objectId: string;
  readonly tenantId: string;
  readonly scp: readonly string[];
  readonly expiresAt: number;
}): string {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ typ: "JWT", nonce: base64url(randomBytes(32)), alg: "RS256", x5t: "testbed", kid: "testbed" }));
  const payload = {
    aud: GRAPH_RESOURCE,
    iss: `https://sts.windows.net/${claims.tenantId}/`,
    iat: now,
    nbf: now,
    exp: Math.floor(claims.expiresAt / 1000),
    oid: claims.objectId,
    scp: claims.scp.join(" "),
    tid: claims.tenantId,
    upn: claims.username,
    // Real tokens carry many more claims (acct, amr, xms_*); padding keeps the size realistic.
    xms_tcdt: base64url(randomBytes(600)),
  };
  return `${header}.${base64url(JSON.stringify(payload))}.${base64url(randomBytes(256))}`;
}

/** "https://graph.microsoft.com/Mail.ReadWrite" or "Mail.ReadWrite" -> "Mail.ReadWrite", as `scp` lists it. */
export function permissionName(scope: string): string {
  return scope.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]+\//i, "");
}

/** Microsoft's refresh tokens are opaque, ~1-1.5 KB, and start like this one. */
export function mintRefreshToken(): string {
  return `1.AXEA${base64url(randomBytes(900))}`;
}

export function mintDeviceCode(): string {
  return `DAQABAAEAAAD${base64url(randomBytes(160))}`;
}

/** Nine letters and digits, like Microsoft's ("FQK5HW3UF"); no 0/O or 1/I to misread. */
export function mintUserCode(): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  return Array.from(randomBytes(9), (byte) => alphabet[byte % alphabet.length]).join("");
}

export interface IdTokenClaims {
  readonly issuer: string;
  readonly clientId: string;
  readonly tenantId: string;
  readonly objectId: string;
  readonly username: string;
}

/**
 * The id_token MSAL needs to cache an account (without it acquireTokenSilent finds nothing).
 * MSAL does not check the signature, so a random one will do.
 */
export function mintIdToken(claims: IdTokenClaims, now = Math.floor(Date.now() / 1000)): string {
  const header = { typ: "JWT", alg: "RS256", kid: "testbed" };
  const payload = {
    aud: claims.clientId,
    iss: claims.issuer,
    iat: now,
    nbf: now,
    exp: now + 3_600,
    name: displayNameOf(claims.username),
    oid: claims.objectId,
    preferred_username: claims.username,
    sub: base64url(createHash("sha256").update(`${claims.objectId}:${claims.clientId}`).digest()),
    tid: claims.tenantId,
    ver: "2.0",
  };
  return `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}.${base64url(randomBytes(256))}`;
}

/** MSAL builds the account's home id from this: "<uid>.<utid>". */
export function clientInfo(objectId: string, tenantId: string): string {
  return base64url(JSON.stringify({ uid: objectId, utid: tenantId }));
}

/** A stable GUID per user name, so a user's account id survives a stand-in restart. */
export function objectIdOf(username: string): string {
  const hex = createHash("sha256").update(username.toLowerCase()).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function displayNameOf(username: string): string {
  return username.split("@")[0] ?? username;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}
