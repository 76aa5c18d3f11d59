/**
 * The identity stand-in against the real @azure/msal-node (its HTTPS, discovery, cache and
 * error classification), plus wire-level checks where MSAL would hide what was answered.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthError, InteractionRequiredAuthError, PublicClientApplication, ServerError, type AuthenticationResult } from "@azure/msal-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCertificates } from "../../tools/testbed/certs.js";
import { startIdentityStandIn, type IdentityStandIn } from "../../tools/testbed/identity-standin.js";
import { httpsNetworkClient } from "./https-network-client.js";
import { getJson, postForm } from "./raw-https.js";

const CLIENT_ID = "9f4c0e1a-0000-4000-8000-000000000001";
const ALICE = "alice@contoso.example";
const ALICE_PASSWORD = "correct horse battery staple";
const IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All";
// What MSAL sends for it: the resource scope plus the three it always adds.
const IMAP_REQUEST_SCOPE = `${IMAP_SCOPE} offline_access openid profile`;
const DEFAULT_LIFETIME_S = 4_500;

let dir: string;
let caPem: string;
let standIn: IdentityStandIn;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mailfetchd-identity-test-"));
  const certs = await createTestCertificates(dir);
  caPem = await readFile(certs.caFile, "utf8");
  standIn = await startIdentityStandIn({ certFile: certs.certFile, keyFile: certs.keyFile, deviceCodeIntervalSeconds: 0.05 });
  standIn.addUser({ username: ALICE, password: ALICE_PASSWORD });
});

afterAll(async () => {
  await standIn?.close();
  await rm(dir, { recursive: true, force: true });
});

function newApp(authority = standIn.authority): PublicClientApplication {
  return new PublicClientApplication({
    auth: { clientId: CLIENT_ID, authority, knownAuthorities: [new URL(standIn.origin).host] },
    system: { networkClient: httpsNetworkClient(caPem) },
  });
}

async function signIn(app: PublicClientApplication, password = ALICE_PASSWORD): Promise<AuthenticationResult> {
  return present(await app.acquireTokenByUsernamePassword({ scopes: [IMAP_SCOPE], username: ALICE, password }));
}

/** msal-node types its interactive results as nullable; a null here is a failed test. */
function present<T>(value: T | null): T {
  if (value === null) throw new Error("msal-node returned null");
  return value;
}

async function isActiveForExchange(token: string): Promise<boolean> {
  const answer = await postForm(standIn.introspectionUrl, { token });
  return answer.body.active === true;
}

function rawPasswordGrant(scope = IMAP_REQUEST_SCOPE) {
  return postForm(
    `${standIn.authority}/oauth2/v2.0/token`,
    { grant_type: "password", client_id: CLIENT_ID, username: ALICE, password: ALICE_PASSWORD, scope },
    { ca: caPem },
  );
}

function rawRefresh(refreshToken: string) {
  return postForm(
    `${standIn.authority}/oauth2/v2.0/token`,
    { grant_type: "refresh_token", client_id: CLIENT_ID, refresh_token: refreshToken, scope: IMAP_REQUEST_SCOPE },
    { ca: caPem },
  );
}

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  try {
    await promise;
  } catch (error) {
    return error as AuthError;
  }
  throw new Error("expected a rejection");
}

describe("identity stand-in with msal-node", () => {
  it("signs in with a password, caches the account and answers silently from the cache", async () => {
    const app = newApp();
    const result = await signIn(app);

    expect(result.account?.username).toBe(ALICE);
    expect(result.account?.tenantId).toBe(standIn.tenantId);
    expect(result.scopes).toEqual([IMAP_SCOPE]);
    expect(result.accessToken.length).toBeGreaterThan(1_000);
    // expires_in = lifetime + 300 (MSAL's early-renewal margin); MSAL counts in whole seconds.
    const secondsLeft = ((result.expiresOn?.getTime() ?? 0) - Date.now()) / 1000;
    expect(secondsLeft).toBeGreaterThan(DEFAULT_LIFETIME_S + 300 - 5);
    expect(secondsLeft).toBeLessThanOrEqual(DEFAULT_LIFETIME_S + 300 + 1);
    expect(await app.getTokenCache().getAllAccounts()).toHaveLength(1);
    expect(standIn.tokenRequests.at(-1)).toMatchObject({ grantType: "password", username: ALICE, outcome: 200 });

    const requestsBefore = standIn.tokenRequests.length;
    const silent = await app.acquireTokenSilent({ account: result.account!, scopes: [IMAP_SCOPE] });
    expect(silent.fromCache).toBe(true);
    expect(silent.accessToken).toBe(result.accessToken);
    expect(standIn.tokenRequests).toHaveLength(requestsBefore);
  });

  it("expires access tokens after their real lifetime, and MSAL refreshes them with the refresh token", async () => {
    standIn.setAccessTokenLifetime(2);
    try {
      const app = newApp();
      const first = await signIn(app);
      expect(await isActiveForExchange(first.accessToken)).toBe(true);

      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(await isActiveForExchange(first.accessToken)).toBe(false);

      const refreshed = await app.acquireTokenSilent({ account: first.account!, scopes: [IMAP_SCOPE] });
      expect(refreshed.fromCache).toBe(false);
      expect(refreshed.accessToken).not.toBe(first.accessToken);
      expect(standIn.tokenRequests.at(-1)).toMatchObject({ grantType: "refresh_token", username: ALICE, outcome: 200 });
      expect(await isActiveForExchange(refreshed.accessToken)).toBe(true);
    } finally {
      standIn.setAccessTokenLifetime(DEFAULT_LIFETIME_S);
    }
  });

  it("answers a wrong password as Microsoft does; MSAL reports invalid_grant with errorNo 50126", async () => {
    const error = await rejection(signIn(newApp(), "wrong"));
    expect(error).toBeInstanceOf(ServerError);
    expect(error.errorCode).toBe("invalid_grant");
    // msal-node types errorNo as string, but it carries error_codes[0] as sent: a number.
    expect((error as ServerError).errorNo).toBe(50126);

    const raw = await postForm(
      `${standIn.authority}/oauth2/v2.0/token`,
      { grant_type: "password", client_id: CLIENT_ID, username: ALICE, password: "wrong", scope: IMAP_REQUEST_SCOPE },
      { ca: caPem },
    );
    expect(raw.status).toBe(400);
    expect(raw.body).toMatchObject({ error: "invalid_grant", error_codes: [50126] });
    expect(raw.body.error_description).toMatch(
      /^AADSTS50126: Error validating credentials due to invalid username or password\.\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/,
    );
    expect(raw.body.trace_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(raw.body.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  });

  it("fails the next request with an injected AADSTS code: 7000218 is invalid_client over HTTP 401, once", async () => {
    standIn.failNext(7000218);
    const error = await rejection(signIn(newApp()));
    expect(error).toBeInstanceOf(ServerError);
    expect(error.errorCode).toBe("invalid_client");
    expect((error as ServerError).errorNo).toBe(7000218);
    expect(standIn.tokenRequests.at(-1)?.outcome).toBe(401);

    const next = await signIn(newApp());
    expect(next.account?.username).toBe(ALICE);
  });

  it("classifies answers the way MSAL does: consent and MFA need interaction, a revoked grant is a ServerError", async () => {
    standIn.failNext(65001);
    const consent = await rejection(signIn(newApp()));
    expect(consent).toBeInstanceOf(InteractionRequiredAuthError);
    expect(consent).toMatchObject({ errorCode: "invalid_grant", subError: "consent_required", errorNo: 65001 });

    standIn.failNext(50076);
    const mfa = await rejection(signIn(newApp()));
    expect(mfa).toBeInstanceOf(InteractionRequiredAuthError);
    expect(mfa).toMatchObject({ errorCode: "invalid_grant", subError: "basic_action", errorNo: 50076 });

    const app = newApp();
    const signedIn = await signIn(app);
    standIn.revokeRefreshTokens(ALICE);
    const revoked = await rejection(app.acquireTokenSilent({ account: signedIn.account!, scopes: [IMAP_SCOPE], forceRefresh: true }));
    expect(revoked).toBeInstanceOf(ServerError);
    expect(revoked).not.toBeInstanceOf(InteractionRequiredAuthError);
    expect(revoked).toMatchObject({ errorCode: "invalid_grant", errorNo: 50173 });
  });

  it("limits an injected failure to one grant type", async () => {
    const app = newApp();
    standIn.failNext(700082, { grant: "refresh_token" });
    const signedIn = await signIn(app); // a password grant: not affected
    const expired = await rejection(app.acquireTokenSilent({ account: signedIn.account!, scopes: [IMAP_SCOPE], forceRefresh: true }));
    expect(expired).toMatchObject({ errorCode: "invalid_grant", subError: "bad_token", errorNo: 700082 });
  });

  it("signs in by device code once the user code is approved", async () => {
    let userCode = "";
    const result = present(
      await newApp().acquireTokenByDeviceCode({
        scopes: [IMAP_SCOPE],
        deviceCodeCallback: (response) => {
          userCode = response.userCode;
          setTimeout(() => standIn.approveDeviceCode(response.userCode, ALICE), 150);
        },
      }),
    );
    expect(userCode).toMatch(/^[A-Z2-9]{9}$/);
    expect(result.account?.username).toBe(ALICE);
    const polls = standIn.tokenRequests.filter((request) => request.grantType === "device_code");
    expect(polls.length).toBeGreaterThanOrEqual(2); // at least one authorization_pending first
    expect(polls.at(-1)).toMatchObject({ username: ALICE, outcome: 200 });
    expect(await isActiveForExchange(result.accessToken)).toBe(true);
  });

  it("ends a declined device code sign-in; MSAL reports post_request_failed naming the error", async () => {
    const error = await rejection(
      newApp().acquireTokenByDeviceCode({
        scopes: [IMAP_SCOPE],
        deviceCodeCallback: (response) => setTimeout(() => standIn.declineDeviceCode(response.userCode), 100),
      }),
    );
    expect(error).toBeInstanceOf(AuthError);
    expect(error.errorCode).toBe("post_request_failed");
    expect(error.errorMessage).toBe("authorization_declined");
  });

  it("lists every issued secret for leak scans", async () => {
    const app = newApp();
    const result = await signIn(app);
    const cache = JSON.parse(app.getTokenCache().serialize()) as { RefreshToken: Record<string, { secret: string }> };
    const refreshTokens = Object.values(cache.RefreshToken).map((entry) => entry.secret);
    expect(refreshTokens).toHaveLength(1);
    expect(standIn.secretsIssued).toContain(result.accessToken);
    expect(standIn.secretsIssued).toContain(refreshTokens[0]);
    expect(standIn.secretsIssued).toContain(ALICE_PASSWORD);
  });
});

describe("identity stand-in on the wire", () => {
  it("rotates refresh tokens: each use returns a new one, and the redeemed one gets AADSTS70000", async () => {
    const signedIn = await rawPasswordGrant();
    const first = signedIn.body.refresh_token as string;
    expect(first).toMatch(/^1\.A/);

    const refreshed = await rawRefresh(first);
    expect(refreshed.status).toBe(200);
    const second = refreshed.body.refresh_token as string;
    expect(second).not.toBe(first);

    const reused = await rawRefresh(first);
    expect(reused.status).toBe(400);
    expect(reused.body).toMatchObject({ error: "invalid_grant", error_codes: [70000] });
    expect((await rawRefresh(second)).status).toBe(200);
  });

  it("issues a token for a Graph scope that Exchange then rejects, and refuses scopes of two resources", async () => {
    const graph = await rawPasswordGrant("IMAP.AccessAsUser.All offline_access openid profile");
    expect(graph.status).toBe(200);
    expect(graph.body.scope).toBe("IMAP.AccessAsUser.All");
    expect(await isActiveForExchange(graph.body.access_token as string)).toBe(false);

    const office365 = await rawPasswordGrant("https://outlook.office365.com/IMAP.AccessAsUser.All offline_access openid profile");
    expect(await isActiveForExchange(office365.body.access_token as string)).toBe(true);

    const mixed = await rawPasswordGrant(`${IMAP_SCOPE} https://graph.microsoft.com/User.Read offline_access`);
    expect(mixed.status).toBe(400);
    expect(mixed.body.error_codes).toEqual([28000]);
  });

  it("answers an unknown tenant with AADSTS90002, at discovery as invalid_tenant", async () => {
    const token = await postForm(`${standIn.origin}/no-such-tenant/oauth2/v2.0/token`, { grant_type: "password", client_id: CLIENT_ID }, { ca: caPem });
    expect(token.status).toBe(400);
    expect(token.body).toMatchObject({ error: "invalid_request", error_codes: [90002] });

    const discovery = await getJson(`${standIn.origin}/no-such-tenant/v2.0/.well-known/openid-configuration`, { ca: caPem });
    expect(discovery.status).toBe(400);
    expect(discovery.body).toMatchObject({ error: "invalid_tenant", error_codes: [90002] });

    const known = await getJson(`${standIn.authority}/v2.0/.well-known/openid-configuration`, { ca: caPem });
    expect(known.body).toMatchObject({
      issuer: `${standIn.origin}/${standIn.tenantId}/v2.0`,
      token_endpoint: `${standIn.authority}/oauth2/v2.0/token`,
      device_authorization_endpoint: `${standIn.authority}/oauth2/v2.0/devicecode`,
    });
  });

  it("fails at the HTTP level on request: 429 with Retry-After, 500, no answer, refused connections", async () => {
    standIn.failHttpNext({ status: 429, retryAfterSeconds: 7 });
    const throttled = await rawPasswordGrant();
    expect(throttled.status).toBe(429);
    expect(throttled.headers["retry-after"]).toBe("7");

    standIn.failHttpNext({ status: 500 });
    expect((await rawPasswordGrant()).status).toBe(500);

    standIn.failHttpNext({ hang: true });
    await expect(
      postForm(`${standIn.authority}/oauth2/v2.0/token`, { grant_type: "password", client_id: CLIENT_ID }, { ca: caPem, timeoutMs: 300 }),
    ).rejects.toThrow("timeout");

    standIn.setDown(true);
    await expect(rawPasswordGrant()).rejects.toThrow();
    standIn.setDown(false);
    expect((await rawPasswordGrant()).status).toBe(200);

    expect(standIn.tokenRequests.slice(-5).map((request) => request.outcome)).toEqual([429, 500, "hung", "refused", 200]);
  });

  it("with a configured client id, refuses other apps (700016) and public clients sending a secret (700025)", async () => {
    const strict = await startIdentityStandIn({
      certFile: join(dir, "cert.pem"),
      keyFile: join(dir, "key.pem"),
      clientId: CLIENT_ID,
      // Long enough that three requests sent together overlap even on a loaded machine.
      tokenResponseDelayMs: 1_000,
    });
    try {
      strict.addUser({ username: ALICE, password: ALICE_PASSWORD });
      const token = (form: Record<string, string>) =>
        postForm(
          `${strict.authority}/oauth2/v2.0/token`,
          { grant_type: "password", username: ALICE, password: ALICE_PASSWORD, scope: IMAP_REQUEST_SCOPE, ...form },
          { ca: caPem },
        );

      const otherApp = await token({ client_id: "00000000-0000-0000-0000-000000000bad" });
      expect(otherApp.body).toMatchObject({ error: "unauthorized_client", error_codes: [700016] });
      const withSecret = await token({ client_id: CLIENT_ID, client_secret: "s3cret" });
      expect(withSecret.status).toBe(401);
      expect(withSecret.body).toMatchObject({ error: "invalid_client", error_codes: [700025] });

      // tokenResponseDelayMs keeps requests in flight long enough to overlap.
      const answers = await Promise.all([1, 2, 3].map(() => token({ client_id: CLIENT_ID })));
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
      expect(strict.maxConcurrentTokenRequests).toBe(3);
    } finally {
      await strict.close();
    }
  });
});
