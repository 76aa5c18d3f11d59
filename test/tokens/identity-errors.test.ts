/**
 * Every identity platform error of the shared notes' table, produced on demand by the identity
 * stand-in and received through the real MSAL client and our network module, maps to a queue
 * state and a message that says what is wrong and what to do (naming the admin guide step where
 * that is the cause). Also the HTTP-level failures: 429 with Retry-After, 5xx, timeouts, an
 * unreachable endpoint, and an unknown tenant (which MSAL reports only at discovery).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import type { TokenGrant } from "../../tools/testbed/identity-standin.js";
import { queueStateOf } from "../../src/tokens/identity-errors.js";
import { ConcurrencyLimiter } from "../../src/tokens/identity-http-client.js";
import { failure, startTokenFixture, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const USER = "desk@example.test";
const PASSWORD = "desk-Pa55word!";

let fx: TokenFixture;
let queueNumber = 0;

beforeAll(async () => {
  fx = await startTokenFixture();
  fx.bed.identity.addUser({ username: USER, password: PASSWORD });
});

afterAll(async () => {
  await fx?.close();
});

/** A queue of its own per case: no cache, no remembered failure from another case. */
function freshQueue(options: { password?: boolean } = {}): QueueConfig {
  const name = `q${++queueNumber}`;
  return fx.queues([{ name, address: USER, password: options.password === false ? undefined : PASSWORD }])[0]!;
}

/** A queue signed in with the password, then seen without one: only its refresh token can help. */
async function signedInWithoutPassword(): Promise<QueueConfig> {
  const withPassword = freshQueue();
  await fx.provider(withPassword).getAccessToken();
  return fx.queues([{ name: withPassword.name, address: USER }])[0]!;
}

interface Case {
  readonly aadsts: number;
  readonly grant: TokenGrant;
  readonly code: string;
  readonly state: string;
  readonly retryable: boolean;
  /** Something the fix must say: the admin guide step, the key, or the command. */
  readonly fixSays: RegExp;
}

const PASSWORD_CASES: Case[] = [
  { aadsts: 50126, grant: "password", code: "IDENTITY_BAD_PASSWORD", state: "needs-password", retryable: false, fixSays: /signIn\.passwordFile/ },
  { aadsts: 50034, grant: "password", code: "IDENTITY_USER_NOT_FOUND", state: "misconfigured", retryable: false, fixSays: /section 3 step 5/ },
  { aadsts: 50057, grant: "password", code: "IDENTITY_ACCOUNT_DISABLED", state: "needs-admin", retryable: false, fixSays: /Full Access/ },
  { aadsts: 50055, grant: "password", code: "IDENTITY_PASSWORD_EXPIRED", state: "needs-password", retryable: false, fixSays: /signIn\.passwordFile/ },
  { aadsts: 50053, grant: "password", code: "IDENTITY_ACCOUNT_LOCKED", state: "needs-password", retryable: false, fixSays: /signIn\.passwordFile/ },
  { aadsts: 50076, grant: "password", code: "IDENTITY_MFA_REQUIRED", state: "needs-sign-in", retryable: false, fixSays: /mailfetchd login q\d+/ },
  { aadsts: 50079, grant: "password", code: "IDENTITY_MFA_REQUIRED", state: "needs-sign-in", retryable: false, fixSays: /mailfetchd login q\d+/ },
  { aadsts: 53003, grant: "password", code: "IDENTITY_CONDITIONAL_ACCESS", state: "needs-admin", retryable: false, fixSays: /Conditional Access/ },
  { aadsts: 530035, grant: "password", code: "IDENTITY_CONDITIONAL_ACCESS", state: "needs-admin", retryable: false, fixSays: /security defaults/ },
  { aadsts: 65001, grant: "password", code: "IDENTITY_NO_CONSENT", state: "needs-admin", retryable: false, fixSays: /section 2\.2 step 10\.5/ },
  { aadsts: 700016, grant: "password", code: "IDENTITY_APP_NOT_FOUND", state: "misconfigured", retryable: false, fixSays: /section 2\.2 step 7/ },
  { aadsts: 90002, grant: "password", code: "IDENTITY_TENANT_NOT_FOUND", state: "misconfigured", retryable: false, fixSays: /section 2\.2 step 8/ },
  { aadsts: 7000218, grant: "password", code: "IDENTITY_NOT_PUBLIC_CLIENT", state: "needs-admin", retryable: false, fixSays: /section 2\.2 step 9/ },
  { aadsts: 700025, grant: "password", code: "IDENTITY_SECRET_SENT", state: "misconfigured", retryable: false, fixSays: /client secret/ },
  { aadsts: 9001023, grant: "password", code: "CONFIG_INVALID", state: "misconfigured", retryable: false, fixSays: /identity\.authority/ },
  { aadsts: 50196, grant: "password", code: "IDENTITY_THROTTLED", state: "retrying", retryable: true, fixSays: /backs off/ },
  { aadsts: 28000, grant: "password", code: "IDENTITY_SCOPE_MIXED", state: "misconfigured", retryable: false, fixSays: /identity\.scopes/ },
  { aadsts: 700022, grant: "password", code: "IDENTITY_SCOPE_MIXED", state: "misconfigured", retryable: false, fixSays: /identity\.scopes/ },
  { aadsts: 900144, grant: "password", code: "IDENTITY_ERROR", state: "retrying", retryable: true, fixSays: /bug/ },
];

const REFRESH_CASES: Case[] = [700082, 50173, 70043, 70000, 70008, 9002313].map((aadsts) => ({
  aadsts,
  grant: "refresh_token" as const,
  code: "IDENTITY_SIGN_IN_EXPIRED",
  state: "needs-sign-in",
  retryable: false,
  fixSays: /mailfetchd login q\d+/,
}));

describe("identity platform errors, answered by the stand-in, through MSAL", () => {
  it.each(PASSWORD_CASES)("AADSTS$aadsts on a password sign-in: $code, $state", async (c) => {
    const queue = freshQueue();
    fx.bed.identity.failNext(c.aadsts, { grant: c.grant });
    const error = await failure(fx.provider(queue).getAccessToken());
    expect({ code: error.code, retryable: error.retryable, state: queueStateOf(error.code) }).toEqual({ code: c.code, retryable: c.retryable, state: c.state });
    expect(error.message).toContain(`Queue ${queue.name}:`);
    expect(error.message).toContain(`AADSTS${c.aadsts}`);
    expect(error.fix).toMatch(c.fixSays);
  });

  it.each(REFRESH_CASES)("AADSTS$aadsts on a refresh, no password configured: $code, $state", async (c) => {
    const queue = await signedInWithoutPassword();
    fx.bed.identity.failNext(c.aadsts, { grant: c.grant });
    const error = await failure(fx.provider(queue).getAccessToken({ forceRefresh: true }));
    expect({ code: error.code, retryable: error.retryable, state: queueStateOf(error.code) }).toEqual({ code: c.code, retryable: c.retryable, state: c.state });
    expect(error.message).toContain(`AADSTS${c.aadsts}`);
    expect(error.fix).toMatch(c.fixSays);
  });

  it("AADSTS90055 (tenant throttled, HTTP 429): retrying, never handed to MSAL's own throttling", async () => {
    const queue = freshQueue();
    fx.bed.identity.failNext(90055);
    const error = await failure(fx.provider(queue).getAccessToken());
    expect(error.code).toBe("IDENTITY_THROTTLED");
    expect(queueStateOf(error.code)).toBe("retrying");
  });

  it("a refused sign-in is remembered: asking again sends nothing until the cache changes", async () => {
    const queue = freshQueue();
    const provider = fx.provider(queue);
    fx.bed.identity.failNext(50126);
    await failure(provider.getAccessToken());
    const before = fx.bed.identity.tokenRequests.length;
    for (let i = 0; i < 3; i++) expect((await failure(provider.getAccessToken())).code).toBe("IDENTITY_BAD_PASSWORD");
    expect(fx.bed.identity.tokenRequests.length).toBe(before);
  });
});

describe("transport failures of the identity endpoint", () => {
  it("HTTP 429 with Retry-After: throttled with the hint, and no request leaves before it passes", async () => {
    const queue = freshQueue();
    const provider = fx.provider(queue);
    fx.bed.identity.failHttpNext({ status: 429, retryAfterSeconds: 7 });
    const error = await failure(provider.getAccessToken());
    expect(error.code).toBe("IDENTITY_THROTTLED");
    expect(error.retryAfterMs).toBe(7_000);
    const before = fx.bed.identity.tokenRequests.length;
    const again = await failure(provider.getAccessToken());
    expect(again.code).toBe("IDENTITY_THROTTLED");
    expect(again.retryAfterMs).toBeGreaterThan(5_000);
    expect(fx.bed.identity.tokenRequests.length).toBe(before);
  });

  it.each([500, 503] as const)("HTTP %i: unavailable, retrying; the next attempt goes out and works", async (status) => {
    const queue = freshQueue();
    const provider = fx.provider(queue);
    fx.bed.identity.failHttpNext({ status });
    const error = await failure(provider.getAccessToken());
    expect(error.code).toBe("IDENTITY_UNAVAILABLE");
    expect(queueStateOf(error.code)).toBe("retrying");
    expect(error.message).toContain(`HTTP ${status}`);
    // No local throttling by MSAL after a 5xx: the retry reaches the endpoint at once.
    await expect(provider.getAccessToken()).resolves.toMatchObject({ token: expect.any(String) });
  });

  it("no answer within the timeout: unavailable, retrying", async () => {
    const queue = freshQueue();
    const provider = fx.provider(queue, { identityTimeoutMs: 500 });
    await provider.getAccessToken(); // discovery done; the next request is the token request
    fx.bed.identity.failHttpNext({ hang: true });
    const error = await failure(provider.getAccessToken({ forceRefresh: true }));
    expect(error.code).toBe("IDENTITY_UNAVAILABLE");
    expect(error.message).toMatch(/no answer within 500 ms/);
  });

  it("connections dropped: unavailable, retrying", async () => {
    const queue = freshQueue();
    fx.bed.identity.setDown(true);
    try {
      const error = await failure(fx.provider(queue).getAccessToken());
      expect(error.code).toBe("IDENTITY_UNAVAILABLE");
      expect(error.retryable).toBe(true);
    } finally {
      fx.bed.identity.setDown(false);
    }
  });

  it("an unknown tenant, which MSAL only reports as a failed discovery: tenant not found, misconfigured", async () => {
    const queue = freshQueue();
    const wrongTenant = { ...queue, identity: { ...queue.identity, authority: `${fx.bed.identity.origin}/0badbad0-0000-4000-8000-000000000000` } };
    const error = await failure(fx.provider(wrongTenant).getAccessToken());
    expect(error.code).toBe("IDENTITY_TENANT_NOT_FOUND");
    expect(queueStateOf(error.code)).toBe("misconfigured");
    expect(error.fix).toMatch(/section 2\.2 step 8/);
  });

  it("an authority nobody answers at: unavailable, retrying (not a tenant error)", async () => {
    const queue = freshQueue();
    const nowhere = { ...queue, identity: { ...queue.identity, authority: `https://127.0.0.1:1/${fx.bed.identity.tenantId}` } };
    const error = await failure(fx.provider(nowhere, { limiter: new ConcurrencyLimiter(1) }).getAccessToken());
    expect(error.code).toBe("IDENTITY_UNAVAILABLE");
    expect(error.message).toMatch(/ECONNREFUSED/);
  });
});
